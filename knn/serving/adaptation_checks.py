"""What the version-checked adaptations of third-party libraries (knn.serving) all check first."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from types import ModuleType


def unchecked_version(package: str, version: str, checked: Sequence[str]) -> list[str]:
    """A problem when `version` of `package` is not one an adaptation was read against."""
    if version in checked:
        return []
    return [f"{package} {version} is not a version this was checked against ({', '.join(checked)})"]


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
