"""What the store holds of a project, as the session hands it over and gets it back.

`Content` is a whole project: a `ClassifierState` (classes, each example's vectors and JPEG,
k, unknown threshold, cap, rule), the session's own settings (`ProjectSettings`) and each
example's batch. `NewExample` is one example a change adds. `ProjectSettings` is stored as JSON
and read back as strictly as a project file's settings (knn.core.project).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.classifier import ClassifierState
from ..core.limits import MAX_EXAMPLES_PER_CLASS, MAX_META_BYTES
from ..core.voting import DEFAULT_CENTRED, DEFAULT_CENTROID_WEIGHT, DEFAULT_VOTE, LEGACY_VOTE, VOTES
from .errors import UnreadableProject

BACKBONE_ID = re.compile(r"[a-z0-9][a-z0-9_.]{0,63}")
"""What a backbone id looks like (the project file checks the same)."""


LEGACY_RULE = {"vote": LEGACY_VOTE, "centroid_weight": DEFAULT_CENTROID_WEIGHT, "centred": False}
"""The rule of every project stored before schema 3 (settings without `vote`, `centroid_weight`,
`centred`)."""


@dataclass(frozen=True)
class ProjectSettings:
    """A project's settings: the backbone its vectors come from, and what the page lets a user set.

    The rule (`vote`, `centroid_weight`, `centred`, as `KNNClassifier` takes them) defaults to a
    new project's; a project stored before schema 3 was given the rule it was made with when its
    database was upgraded (knn.persist.database)."""

    backbone: str
    k: int = 3
    unknown_threshold: float | None = None
    max_examples_per_class: int = MAX_EXAMPLES_PER_CLASS
    augment: bool = False
    mirror: bool = False
    vote: str = DEFAULT_VOTE
    centroid_weight: float = DEFAULT_CENTROID_WEIGHT
    centred: bool = DEFAULT_CENTRED

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: object) -> ProjectSettings:
        """Settings read back from the store; UnreadableProject names the first bad field."""
        if not isinstance(text, str) or len(text.encode("utf-8", "replace")) > MAX_META_BYTES:
            raise UnreadableProject("its settings are missing or too large")
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise UnreadableProject("its settings are not valid JSON") from None
        if isinstance(raw, dict) and set(raw) == set(cls.__dataclass_fields__) - set(LEGACY_RULE):
            # Written by a process of schema 2 still running beside this one during a rolling
            # deploy (the migration gave every older row its rule): the rule it was made with.
            raw = {**raw, **LEGACY_RULE}
        if not isinstance(raw, dict) or set(raw) != set(cls.__dataclass_fields__):
            raise UnreadableProject("its settings do not have the expected fields")

        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        checks = {
            "backbone": (lambda v: isinstance(v, str) and BACKBONE_ID.fullmatch(v), "a backbone id"),
            "k": (lambda v: is_int(v) and v >= 1, "a whole number of at least 1"),
            "unknown_threshold": (
                lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool) and -1 <= v <= 1),
                "a similarity in -1..1 or null",
            ),
            "max_examples_per_class": (lambda v: is_int(v) and v >= 1, "a whole number of at least 1"),
            "augment": (lambda v: isinstance(v, bool), "true or false"),
            "mirror": (lambda v: isinstance(v, bool), "true or false"),
            "vote": (lambda v: v in VOTES, "one of " + ", ".join(VOTES)),
            "centroid_weight": (
                lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
                "a share of the vote in 0..1",
            ),
            "centred": (lambda v: isinstance(v, bool), "true or false"),
        }
        for key, (check, expected) in checks.items():
            if not check(raw[key]):
                raise UnreadableProject(f"its setting {key!r} is {raw[key]!r}, expected {expected}")
        return cls(**raw)


@dataclass(frozen=True)
class NewExample:
    """One example a change adds: the classifier's id for it, its class, vectors [V, D], JPEG, batch."""

    example_id: int
    label: str
    vectors: np.ndarray
    image: bytes | None
    batch: int


@dataclass(frozen=True)
class Content:
    """A whole project. `batches` has one entry per example, in `state`'s order; `state.ids` are
    the classifier's example ids (a state read back has ids 0..N-1, as `KNNClassifier.from_state`
    numbers them)."""

    state: ClassifierState
    settings: ProjectSettings
    batches: Sequence[int] = field(default=())

    def examples(self) -> list[NewExample]:
        """Every example as a `NewExample`, in order."""
        state = self.state
        counts = state.vector_counts()
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ids = state.ids if state.ids is not None else np.arange(len(counts))
        batches = list(self.batches) if len(self.batches) else list(range(len(counts)))
        return [
            NewExample(
                int(ids[i]),
                state.classes[int(state.labels[i])],
                state.embeddings[starts[i] : starts[i + 1]],
                state.images[i],
                int(batches[i]),
            )
            for i in range(len(counts))
        ]
