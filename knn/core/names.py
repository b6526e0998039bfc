"""Class names: one normalisation wherever a name enters (typed, a folder's name, a project file).

Unicode NFC (so the two ways to write "é" are one name), every run of spaces of any kind made one
ordinary space, leading and trailing spaces and invisible format characters dropped. Refused,
with a message: text that is not valid Unicode (lone surrogates, e.g. from a folder whose name is
not UTF-8), control characters (newlines, tabs), line and paragraph separators (they would split
labels.txt), direction overrides (they make a name display as another), an empty name and one
longer than `MAX_NAME_CHARS`. So " a " and "a", or a bare zero-width space and "", are the same.
"""

from __future__ import annotations

import re
import unicodedata

from .inputs import ClassifierError
from .limits import MAX_NAME_CHARS

_SPACES = re.compile(r"\s+")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalise_name(label: object) -> str:
    """The canonical form of a class name; ClassifierError (with the reason) if it cannot be one."""
    if not isinstance(label, str):
        raise ClassifierError(f"a class name must be text, got {type(label).__name__}")
    if any("\ud800" <= ch <= "\udfff" for ch in label):
        raise ClassifierError(f"a class name must be valid Unicode text; {label!r} is not (rename it)")
    name = unicodedata.normalize("NFC", label)
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise ClassifierError(f"a class name cannot contain control characters (newlines, tabs, ...): {label!r}")
        if category in ("Zl", "Zp"):
            raise ClassifierError(f"a class name cannot contain line or paragraph separators: {label!r}")
        if ch in _BIDI:
            raise ClassifierError(f"a class name cannot contain text-direction overrides: {label!r}")
    name = _SPACES.sub(" ", name)
    name = _strip_invisible(name)
    if not name:
        raise ClassifierError("a class name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ClassifierError(f"a class name can have at most {MAX_NAME_CHARS} characters; this one has {len(name)}")
    return name


def _strip_invisible(name: str) -> str:
    """Drop spaces and format characters (zero-width space, BOM, ...) at both ends."""

    def invisible(ch: str) -> bool:
        return ch.isspace() or unicodedata.category(ch) == "Cf"

    start, end = 0, len(name)
    while start < end and invisible(name[start]):
        start += 1
    while end > start and invisible(name[end - 1]):
        end -= 1
    return name[start:end]
