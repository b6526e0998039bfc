"""What the version-checked adaptations of third-party libraries (knn.serving) all check first."""
from __future__ import annotations

import inspect
from typing import Callable, Sequence


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
    try:
        return inspect.getsource(obj)
    except (TypeError, OSError):
        return None
