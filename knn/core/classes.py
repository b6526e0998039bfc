"""The classes of a classifier: names in order, each one's index and example count, and the
alphabetical rank that breaks the last ties. Not thread-safe: the classifier's lock guards it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .inputs import ClassifierError
from .limits import MAX_CLASSES
from .names import normalise_name
from .voting import name_rank


class ClassList:
    """Class names in creation order, at most `limit` of them; renaming keeps a class's place.
    Names are looked up and stored normalised (knn.core.names)."""

    def __init__(
        self, names: list[str] | None = None, counts: list[int] | None = None, limit: int = MAX_CLASSES
    ) -> None:
        self.limit = limit
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
        return self._find(label) is not None

    def _find(self, label: object) -> int | None:
        if isinstance(label, str) and label in self._index:
            return self._index[label]
        try:
            return self._index.get(normalise_name(label))
        except ClassifierError:
            return None

    def index(self, label: str) -> int:
        found = self._find(label)
        if found is None:
            raise ClassifierError(f"there is no class named {label!r}")
        return found

    def rank(self) -> list[int]:
        """Each class's position in alphabetical order (cached until a name changes)."""
        if self._rank is None:
            self._rank = name_rank(self.names).tolist()
        return self._rank

    def add(self, label: str) -> str:
        """Add a class at the end; returns its (normalised) name."""
        label = normalise_name(label)
        if label in self._index:
            raise ClassifierError(f"a class named {label!r} already exists")
        if len(self.names) >= self.limit:
            raise ClassifierError(
                f"there are {len(self.names)} classes, the most one classifier holds; delete one first"
            )
        self.names.append(label)
        self.counts.append(0)
        self._changed()
        return label

    def rename(self, old: str, new: str) -> str:
        """Rename a class in place; returns its new (normalised) name."""
        new = normalise_name(new)
        index = self.index(old)
        if new == self.names[index]:
            return new
        if new in self._index:
            raise ClassifierError(f"a class named {new!r} already exists")
        self.names[index] = new
        self._changed()
        return new

    def remove(self, label: str) -> int:
        """Remove a class; returns the index it had (later classes move up one place)."""
        index = self.index(label)
        del self.names[index]
        del self.counts[index]
        self._changed()
        return index

    def check_room(self, labels: Sequence[str], per_class: int) -> None:
        """Refuse (ClassifierError) examples of these normalised `labels` that would make more
        classes than `limit` or more than `per_class` examples in a class; changes nothing."""
        new = len({label for label in labels if label not in self})
        if len(self) + new > self.limit:
            raise ClassifierError(
                f"this would make {len(self) + new} classes; one classifier holds at most "
                f"{self.limit}: delete a class first"
            )
        for label, extra in Counter(labels).items():
            have = self.counts[self.index(label)] if label in self else 0
            if have + extra > per_class:
                raise ClassifierError(
                    f"class {label!r} has {have:,} examples and the limit is {per_class:,} per class; "
                    "remove some examples first (or raise max_examples_per_class)"
                )

    def copy(self) -> ClassList:
        return ClassList(self.names, self.counts, self.limit)
