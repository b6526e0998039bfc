"""The teaching coach: what the stored examples say would make the classifier better.

From each example's nearest other examples (knn.core.neighbors) and one sum of embeddings per
class, never an N x N matrix:

- each class's leave-one-out accuracy (how often its examples are recognised by the others);
- the most confused pair of classes: how many examples of one have their nearest example in the
  other ("7 of 20 examples of mug are nearer to cup");
- examples that look mislabelled: none of their nearest others is of their own class (or one is,
  and it is itself as cut off, since wrong labels come in batches of similar photos, or all the
  others are of one class), in a class that otherwise
  holds together and is not simply mixed with the class they look like (that is a confused pair,
  not a few examples mislabelled);
- classes with fewer than `FEW_EXAMPLES` examples, and classes whose examples are near-duplicates of
  each other (a Record of a still scene): their mean pairwise similarity, from the norm of the sum
  of their normalised embeddings, is at least `SAME_SCENE_SIMILARITY`.

`Hesitation` watches the live prediction: when the two best classes stay within
`HESITATION_MARGIN` of each other for `HESITATION_SECONDS`, the user is asked to add the frame to
the right one; that hint, or its end, stands `HESITATION_HOLD_SECONDS` before the next change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .classifier import ClassifierState
from .evaluation import Evaluation, evaluate_neighbors
from .neighbors import Neighbors, example_ids
from .voting import name_rank, vote_one

FEW_EXAMPLES = 3
"""A class with fewer examples than this is told to get more."""
SUSPECT_NEIGHBORS = 4
"""An example none of whose this many nearest others is of its own class looks mislabelled (or one
is, and either that one is itself as cut off or the others are all of one class). The others need
not agree (rock-paper-scissors: a paper photo filed under
rock has paper and scissors photos nearest); they vote for where it may belong."""
SUSPECT_SHARE = 1 / 3
"""When more than this share of a class is cut off like that, the class does not hold together (it
is confused with others), and none of its examples is called mislabelled."""
MIXED_SHARE = 1 / 4
"""Two classes each with this share of examples whose nearest is in the other are one mixed pair:
no example of either is called mislabelled for the other."""
CONFUSED_SHARE = 0.1
"""The most confused pair becomes a tip once this share of a class is nearer to the other."""
MOST_SUSPECTS = 12
"""Suspects reported at most (the clearest first)."""
SAME_SCENE_SIMILARITY = 0.94
"""Mean pairwise similarity at which a class's examples are near-duplicates. MobileNetV2 at 224:
frames of one still photo with camera noise 0.96; ten COIL-20 turntable frames 5° apart 0.85-0.93;
ten different photos of one rock-paper-scissors gesture 0.69-0.75."""
HESITATION_MARGIN = 0.4
"""The two best classes' confidences within this of each other count as undecided (with k=3, two
neighbors of one class and one of another are about 0.67 against 0.33)."""
HESITATION_SECONDS = 3.0
HESITATION_HOLD_SECONDS = 10.0
"""A reported hesitation, or its end, stands at least this long before the next change is
reported: a camera moved between classes turned the hint and its buttons on and off every 4-8 s,
under the user's pointer, each time with a redraw of the whole page (docs/performance.md)."""


@dataclass(frozen=True)
class Suspect:
    """An example that looks mislabelled: where it may belong (`nearer_to`), best first: the vote of
    its other-class nearest examples, then the class it is most like on average."""

    example_id: int
    label: str
    nearer_to: tuple[str, ...]
    agreeing: int  # how many of its `looked_at` nearest others are of nearer_to[0]
    looked_at: int
    image: bytes | None = field(repr=False, default=None)


@dataclass(frozen=True)
class Confusion:
    """`count` of the `total` examples of `label` have their nearest example in `other` (and
    `back` of `other`'s `other_total` in `label`)."""

    label: str
    other: str
    count: int
    total: int
    back: int
    other_total: int


@dataclass(frozen=True)
class Coaching:
    """Everything the coach says about one state of the examples."""

    evaluation: Evaluation
    counts: dict[str, int]
    confused: Confusion | None
    suspects: tuple[Suspect, ...]
    few: tuple[str, ...]  # classes with 1 to FEW_EXAMPLES - 1 examples
    empty: tuple[str, ...]  # classes with no example
    same_scene: dict[str, float]  # class -> mean pairwise similarity, for near-duplicate classes

    def tips(self) -> list[str]:
        """What to do next, most useful first, in plain text (the page escapes it)."""
        taught = [c for c, n in self.counts.items() if n]
        tips = []
        if taught and self.empty:
            tips.append(
                f"{_names(self.empty)} {'has' if len(self.empty) == 1 else 'have'} no examples yet: "
                "show the camera what belongs there and press Add or Record."
            )
        for label in self.few:
            n = self.counts[label]
            tips.append(
                f"“{label}” has only {n} example{'s' * (n != 1)}: add a few more, and vary the angle, "
                "distance and light."
            )
        for label, similarity in self.same_scene.items():
            tips.append(
                f"The {self.counts[label]} examples of “{label}” are near-duplicates of each other "
                f"(similarity {similarity:.2f}): vary the angle, distance and light."
            )
        c = self.confused
        if c is not None and c.count >= CONFUSED_SHARE * c.total:
            tips.append(
                f"{c.count} of {c.total} examples of “{c.label}” are nearer to “{c.other}”"
                + (f" (and {c.back} of {c.other_total} of “{c.other}” nearer to “{c.label}”)" if c.back else "")
                + ": add more varied examples of both."
            )
        if self.suspects:
            n = len(self.suspects)
            tips.append(
                f"{n} example{'s look' if n != 1 else ' looks'} mislabelled: "
                f"{'their' if n != 1 else 'its'} nearest examples all belong to other classes (below)."
            )
        return tips

    def accuracy(self, label: str) -> float:
        """The class's leave-one-out accuracy; nan with fewer than FEW_EXAMPLES examples (with two and
        k = 3, the one other example is outvoted: 0% would say nothing)."""
        if self.counts.get(label, 0) < FEW_EXAMPLES:
            return math.nan
        return self.evaluation.per_class.get(label, math.nan)


def _names(labels: Iterable[str]) -> str:
    quoted = [f"“{label}”" for label in labels]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def neighbors_needed(k: int) -> int:
    """How many nearest others `coach` needs per example for a classifier with this k."""
    return max(k, SUSPECT_NEIGHBORS)


def coach(state: ClassifierState, neighbors: Neighbors) -> Coaching:
    """What to teach next, from a state and each example's nearest others (at least
    `neighbors_needed(state.k)` of them, or all N - 1)."""
    classes = list(state.classes)
    labels = np.asarray(state.labels, np.int64)
    per_class = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), np.int64)
    counts = dict(zip(classes, per_class.tolist(), strict=True))
    nearer = _nearer_counts(labels, neighbors, len(classes))
    sums = _class_sums(state.own_embeddings(), labels, len(classes))
    return Coaching(
        evaluation=evaluate_neighbors(state, neighbors),
        counts=counts,
        confused=_most_confused(nearer, classes, per_class),
        suspects=_suspects(state, labels, neighbors, per_class, nearer),
        few=tuple(c for c in classes if 0 < counts[c] < FEW_EXAMPLES),
        empty=tuple(c for c in classes if counts[c] == 0),
        same_scene=_same_scene(classes, sums, per_class),
    )


def _class_sums(own: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, D] float64: the sum of each class's own embeddings (zeros for an empty class)."""
    sums = np.zeros((n_classes, own.shape[1] if own.ndim == 2 else 0))
    for c in np.unique(labels).tolist():  # one class's rows at a time: no float64 copy of them all
        sums[c] = own[labels == c].sum(axis=0, dtype=np.float64)
    return sums


def _nearer_counts(labels: np.ndarray, neighbors: Neighbors, n_classes: int) -> np.ndarray:
    """[C, C]: how many examples of class c have their single nearest other example in class d."""
    nearer = np.zeros((n_classes, n_classes), np.int64)
    if neighbors.width and len(labels):
        first = neighbors.index[:, 0]
        has = first >= 0
        np.add.at(nearer, (labels[has], labels[first[has]]), 1)
    return nearer


def _most_confused(nearer: np.ndarray, classes: list[str], per_class: np.ndarray) -> Confusion | None:
    off = nearer.copy()
    np.fill_diagonal(off, 0)
    pair = off + off.T
    if not pair.size or pair.max() == 0:
        return None
    a, b = np.unravel_index(int(np.argmax(np.triu(pair, 1))), pair.shape)
    if off[b, a] / max(per_class[b], 1) > off[a, b] / max(per_class[a], 1):  # say it in the worse direction
        a, b = b, a
    return Confusion(classes[a], classes[b], int(off[a, b]), int(per_class[a]), int(off[b, a]), int(per_class[b]))


def _suspects(
    state: ClassifierState, labels: np.ndarray, neighbors: Neighbors, per_class: np.ndarray, nearer: np.ndarray
) -> tuple[Suspect, ...]:
    """Examples cut off from their class among their nearest others, in classes that otherwise
    hold together and are not simply mixed with the class they look like."""
    width = min(SUSPECT_NEIGHBORS, neighbors.width)
    if width < SUSPECT_NEIGHBORS or not len(labels):
        return ()
    index, sims = neighbors.index[:, :width], neighbors.sims[:, :width]
    near = labels[index]
    # Two classes each with a good share of examples whose nearest is in the other are one mixed
    # pair: kin. An example near its class's kin is confused, not mislabelled.
    share = nearer / np.maximum(per_class[:, None], 1)
    kin = ((share >= MIXED_SHARE) & (share.T >= MIXED_SHARE)) | np.eye(len(per_class), dtype=bool)
    same = kin[labels[:, None], near]
    own = same.sum(axis=1)
    partner = index[np.arange(len(labels)), same.argmax(axis=1)]  # its one kin neighbor, if any
    # None of its nearest is of its class (or kin); or one is, and either it is itself as cut off
    # (wrong labels come in batches of similar photos, each the other's nearest) or all the others
    # are of one class.
    others = np.where(same, -1, near)
    one_class = (others[:, :, None] == others[:, None, :]) & (others[:, :, None] >= 0)
    cut_off = (own == 0) | ((own == 1) & ((own[partner] <= 1) | (one_class.sum(axis=2).max(axis=1) == width - 1)))
    holds = np.bincount(labels[cut_off], minlength=len(per_class)) <= SUSPECT_SHARE * per_class
    found = np.flatnonzero(cut_off & holds[labels] & (per_class[labels] > SUSPECT_NEIGHBORS))
    rank = name_rank(state.classes).tolist()
    ids = example_ids(state)
    suspects = [_suspect(state, int(ids[i]), int(i), near[i][~same[i]], sims[i][~same[i]], rank) for i in found]
    suspects.sort(key=lambda s: (-s.agreeing, s.example_id))
    return tuple(suspects[:MOST_SUSPECTS])


def _suspect(
    state: ClassifierState, example_id: int, i: int, near: np.ndarray, sims: np.ndarray, rank: list[int]
) -> Suspect:
    """Where it may belong: the classes its other nearest examples (`near`, not of its class or kin)
    vote for, best first."""
    own = state.labels[i]
    pairs = [(float(sim), int(c)) for sim, c in zip(sims, near, strict=True)]
    confidences, winner = vote_one([p[0] for p in pairs], [p[1] for p in pairs], len(state.classes), rank)
    order = [
        winner,
        *[
            c
            for c in np.argsort(-np.asarray(confidences), kind="stable").tolist()
            if confidences[c] > 0 and c != winner
        ],
    ]
    agreeing = sum(1 for _, c in pairs if c == winner)
    image = state.images[i] if i < len(state.images) else None
    return Suspect(
        example_id, state.classes[own], tuple(state.classes[c] for c in order), agreeing, SUSPECT_NEIGHBORS, image
    )


def _same_scene(classes: list[str], sums: np.ndarray, per_class: np.ndarray) -> dict[str, float]:
    """Classes (of FEW_EXAMPLES or more examples) whose examples are near-duplicates: their mean
    pairwise similarity from the norm of their sum (each own embedding has norm 1)."""
    out = {}
    for c, n in enumerate(per_class.tolist()):
        if n >= FEW_EXAMPLES:
            mean = (float(sums[c] @ sums[c]) - n) / (n * (n - 1))
            if mean >= SAME_SCENE_SIMILARITY:
                out[classes[c]] = mean
    return out


class Hesitation:
    """Whether the live prediction has wavered between the same two classes for a while."""

    def __init__(
        self,
        margin: float = HESITATION_MARGIN,
        seconds: float = HESITATION_SECONDS,
        hold: float = HESITATION_HOLD_SECONDS,
    ) -> None:
        self.margin, self.seconds, self.hold = margin, seconds, hold
        self._pair: tuple[str, str] | None = None
        self._since = 0.0
        self._reported: tuple[str, str, float] | None = None
        self._reported_at = -math.inf

    def update(self, confidences: dict[str, float] | None, now: float) -> tuple[str, str, float] | None:
        """Feed the latest confidences (None: no prediction). Returns (best, second, seconds
        undecided) once the same two classes have been within the margin for `seconds`; a change
        of that answer (another pair, or none) shows only `hold` seconds after the last change."""
        current, reported = self._undecided(confidences, now), self._reported
        if current is None or reported is None:
            changed = (current is None) != (reported is None)
        else:
            changed = set(current[:2]) != set(reported[:2])
        if changed and now - self._reported_at < self.hold:
            return reported  # the standing answer holds a while yet
        if changed:
            self._reported_at = now
        self._reported = current
        return current

    def reset(self) -> None:
        """The user answered (or the camera stopped): nothing to report, at once."""
        self._pair = self._reported = None

    def _undecided(self, confidences: dict[str, float] | None, now: float) -> tuple[str, str, float] | None:
        pair = _close_pair(confidences, self.margin)
        if pair is None:
            self._pair = None
            return None
        if self._pair is None or set(pair) != set(self._pair):  # a new pair starts the clock
            self._pair, self._since = pair, now
        elapsed = now - self._since
        return (*pair, elapsed) if elapsed >= self.seconds else None


def _close_pair(confidences: dict[str, float] | None, margin: float) -> tuple[str, str] | None:
    if not confidences:
        return None
    ranked = sorted(confidences.items(), key=lambda kv: -kv[1])
    if len(ranked) < 2 or ranked[1][1] <= 0 or ranked[0][1] - ranked[1][1] > margin:
        return None
    return ranked[0][0], ranked[1][0]
