"""How knn.serving adapts a third-party library: find what it needs, check it, then apply, or warn once
and leave the library stock.

Each adaptation module declares one `Adaptation` per change: its package, the version it was read
against (tests/test_adapt.py holds it equal to requirements.txt's pin), what it needs of the
library (`check`), its one-line reason and the number or test that keeps it (docs/adaptations.md).
`adapt` does the rest, so an upgrade of the library is a decision, never a silent change.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

_LOG = logging.getLogger(__name__)

MODULES = ("rtc", "socket_drain", "consent", "ice", "camera_context", "camera_peer", "clicks", "upload_urls")
"""The knn.serving modules that declare adaptations (`declared` reads them)."""


@dataclass(frozen=True)
class Adaptation:
    """One change to (or read of) a library's internals, and what keeps it.

    Attributes:
        name: how KNN_STOCK names it (knn.serving.settings), e.g. "socket_drain".
        package: the distribution it adapts, as requirements.txt names it.
        checked: the version its `check` and `change` were read against.
        reason: why it exists, in a line.
        kept_by: the measurement or test that keeps it.
        lost: what the server or page does without it: the warning's first words.
        find: imports and returns the library objects it reads or changes.
        check: what is missing or changed in them (one message each); empty when it fits.
        change: applies it to them with a value (idempotent); None when the adaptation only reads a
            private attribute, which the page then uses where `adapt` said it may.
    """

    name: str
    package: str
    checked: str
    reason: str
    kept_by: str
    lost: str
    find: Callable[[], Any]
    check: Callable[[Any], list[str]]
    change: Callable[[Any, Any], None] | None = None


_warned: set[tuple[str, tuple[str, ...]]] = set()


def adapt(adaptation: Adaptation, value: object = None, *, version: str | None = None, found: object = None) -> bool:
    """Check `adaptation` against the installed library and apply it with `value`; True if it applies.

    Otherwise (another version, a missing attribute or source) the library is left stock and one
    warning per adaptation and process says what is lost and why. `version` and `found` stand for
    the installed package and `adaptation.find()` (tests pass others).
    """
    problems = []
    if version is None:
        try:
            version = importlib.metadata.version(adaptation.package)
        except importlib.metadata.PackageNotFoundError:
            version = "(not installed)"
    if version != adaptation.checked:
        problems.append(
            f"{adaptation.package} {version} is not the version this was checked against ({adaptation.checked})"
        )
    if found is None:
        try:
            found = adaptation.find()
        except (ImportError, AttributeError) as exc:
            problems.append(f"{adaptation.package} has changed: {exc}")
    if found is not None:
        problems += adaptation.check(found)
    if problems:
        if (adaptation.name, tuple(problems)) not in _warned:  # a second start of the process: no second warning
            _warned.add((adaptation.name, tuple(problems)))
            _LOG.warning("%s (%s); %s is left stock.", adaptation.lost, "; ".join(problems), adaptation.package)
        return False
    if adaptation.change is not None:
        adaptation.change(found, value)
    return True


def declared() -> list[Adaptation]:
    """Every adaptation the knn.serving modules declare, in `MODULES` order."""
    found = []
    for name in MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        found += [value for value in vars(module).values() if isinstance(value, Adaptation)]
    return found


# ---- what the checks read ------------------------------------------------------------------------


def changed_signature(name: str, function: Callable | None, parameters: Sequence[str]) -> list[str]:
    """A problem when `function` (called `name` in the message) is missing or takes other parameters."""
    if not callable(function):
        return [f"{name} is missing"]
    found = list(inspect.signature(function).parameters)
    return [] if found == list(parameters) else [f"{name} takes {found}, expected {list(parameters)}"]


def source_of(obj: object) -> str | None:
    """The source text of a module, class or function; None where Python has none (a C or
    frozen module, an object made at run time)."""
    if not isinstance(obj, (ModuleType, type)) and not callable(obj):  # e.g. None: a library lost it
        return None
    try:
        return inspect.getsource(obj)
    except (TypeError, OSError):
        return None


def unread_source(name: str, obj: object, text: str, problem: str) -> list[str]:
    """A problem when the source of `obj` (called `name` in the message) is missing or lacks `text`."""
    source = source_of(obj)
    if source is None:
        return [f"the source of {name} is missing"]
    return [] if text in source else [problem]


def with_layer(cls: type, attribute: str, value: object, make: Callable[[type], type]) -> type:
    """`cls` with an adaptation's subclass layer whose `attribute` is `value`: `make(cls)` builds the
    layer; where `cls` already has it (applied before, perhaps under another adaptation's layer),
    a subclass only changes the value, so applying twice adds the behaviour once and keeps the others'."""
    if getattr(cls, attribute, None) is not None:
        return type(cls.__name__, (cls,), {attribute: value})
    layer = make(cls)
    setattr(layer, attribute, value)
    return layer
