"""The classes of a classifier: names in order, each one's index and example count, and the
alphabetical rank that breaks the last ties. Not thread-safe: the classifier's lock guards it."""
from __future__ import annotations

from .checks import ClassifierError, check_name
from .voting import name_rank


class ClassList:
    """Class names in creation order; renaming keeps a class's place."""

    def __init__(self, names: list[str] | None = None, counts: list[int] | None = None) -> None:
        self.names: list[str] = list(names or [])
        self.counts: list[int] = list(counts or [0] * len(self.names))
        self._index: dict[str, int] = {}
        self._rank: list[int] | None = None
        self._changed()

    def _changed(self) -> None:
        self._index = {name: i for i, name in enumerate(self.names)}
        self._rank = None

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def index(self, label: str) -> int:
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise ClassifierError(f"there is no class named {label!r}") from None

    def rank(self) -> list[int]:
        """Each class's position in alphabetical order (cached until a name changes)."""
        if self._rank is None:
            self._rank = name_rank(self.names).tolist()
        return self._rank

    def add(self, label: str) -> None:
        label = check_name(label)
        if label in self._index:
            raise ClassifierError(f"a class named {label!r} already exists")
        self.names.append(label)
        self.counts.append(0)
        self._changed()

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        index = self.index(old)
        if new == old:
            return
        if new in self._index:
            raise ClassifierError(f"a class named {new!r} already exists")
        self.names[index] = new
        self._changed()

    def remove(self, label: str) -> int:
        """Remove a class; returns the index it had (later classes move up one place)."""
        index = self.index(label)
        del self.names[index]
        del self.counts[index]
        self._changed()
        return index

    def copy(self) -> "ClassList":
        return ClassList(self.names, self.counts)
