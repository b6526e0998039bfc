"""The teaching coach: what the stored examples say would make the classifier better.

From each example's nearest other examples (knn.core.neighbours) and one sum per class, never an
N x N matrix:

- each class's leave-one-out accuracy (how often its examples are recognised by the others);
- the most confused pair of classes: how many examples of one have their nearest example in the
  other ("7 of 20 examples of mug are nearer to cup");
- examples that look mislabelled: their nearest others belong to other classes (all of them, or
  all but one as cut off from the class as itself), while the rest of their own class holds together (when a third of a class or more
  points to one other class, that is a confused pair, not a few wrong labels);
- classes with fewer than `FEW_EXAMPLES` examples, and classes whose examples are near-duplicates of
  each other (a Record of a still scene): their mean pairwise similarity, from the norm of the sum
  of their normalised embeddings, is at least `SAME_SCENE_SIMILARITY`.

`Hesitation` watches the live prediction: when the two best classes stay within
`HESITATION_MARGIN` of each other for `HESITATION_SECONDS`, the user is asked to add the frame to
the right one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .classifier import ClassifierState
from .evaluation import Evaluation, evaluate_neighbours
from .neighbours import Neighbours, example_ids
from .voting import name_rank, vote_one

FEW_EXAMPLES = 3
"""A class with fewer examples than this is told to get more."""
SUSPECT_NEIGHBOURS = 4
"""An example none of whose this many nearest others is of its own class looks mislabelled (or
one is, itself as cut off: wrong labels come in batches of similar photos); the class they vote
for is where it may belong. They need not agree on one class (rock-paper-scissors: a paper photo
filed under rock has paper and scissors photos nearest)."""
SUSPECT_SHARE = 1 / 3
"""When more than this share of a class points to one other class, the two are confused, and no
example of it is called mislabelled."""
MIXED_SHARE = 0.5
"""Two classes whose examples have their nearest in the other class this often (both ways together,
per example of the pair on average) are mixed, and no example of either is called mislabelled."""
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
neighbours of one class and one of another are about 0.67 against 0.33)."""
HESITATION_SECONDS = 3.0


@dataclass(frozen=True)
class Suspect:
    """An example whose nearest others all belong to other classes: `nearer_to`, best first (by
    the classifier's vote; the first is where leave-one-out puts it)."""

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
            tips.append(f"{_names(self.empty)} {'has' if len(self.empty) == 1 else 'have'} no examples yet: "
                        "show the camera what belongs there and press Add or Record.")
        for label in self.few:
            n = self.counts[label]
            tips.append(f"“{label}” has only {n} example{'s' * (n != 1)}: add a few more, and vary the angle, "
                        "distance and light.")
        for label, similarity in self.same_scene.items():
            tips.append(f"The {self.counts[label]} examples of “{label}” are near-duplicates of each other "
                        f"(similarity {similarity:.2f}): vary the angle, distance and light.")
        c = self.confused
        if c is not None and c.count >= CONFUSED_SHARE * c.total:
            tips.append(f"{c.count} of {c.total} examples of “{c.label}” are nearer to “{c.other}”"
                        + (f" (and {c.back} of {c.other_total} of “{c.other}” nearer to “{c.label}”)" if c.back else "")
                        + ": add more varied examples of both.")
        if self.suspects:
            n = len(self.suspects)
            tips.append(f"{n} example{'s look' if n != 1 else ' looks'} mislabelled: "
                        f"{'their' if n != 1 else 'its'} nearest examples all belong to other classes (below).")
        return tips

    def accuracy(self, label: str) -> float:
        """The class's leave-one-out accuracy; nan with fewer than FEW_EXAMPLES examples (with two and
        k = 3, the one other example is outvoted: 0% would say nothing)."""
        if self.counts.get(label, 0) < FEW_EXAMPLES:
            return math.nan
        return self.evaluation.per_class.get(label, math.nan)


def _names(labels) -> str:
    quoted = [f"“{label}”" for label in labels]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def neighbours_needed(k: int) -> int:
    """How many nearest others `coach` needs per example for a classifier with this k."""
    return max(k, SUSPECT_NEIGHBOURS)


def coach(state: ClassifierState, neighbours: Neighbours) -> Coaching:
    """What to teach next, from a state and each example's nearest others (at least
    `neighbours_needed(state.k)` of them, or all N - 1)."""
    classes = list(state.classes)
    labels = np.asarray(state.labels, np.int64)
    per_class = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), np.int64)
    counts = dict(zip(classes, per_class.tolist()))
    nearer = _nearer_counts(labels, neighbours, len(classes))
    return Coaching(
        evaluation=evaluate_neighbours(state, neighbours),
        counts=counts,
        confused=_most_confused(nearer, classes, per_class),
        suspects=_suspects(state, labels, neighbours, per_class, nearer),
        few=tuple(c for c in classes if 0 < counts[c] < FEW_EXAMPLES),
        empty=tuple(c for c in classes if counts[c] == 0),
        same_scene=_same_scene(state, labels, per_class),
    )


def _nearer_counts(labels: np.ndarray, neighbours: Neighbours, n_classes: int) -> np.ndarray:
    """[C, C]: how many examples of class c have their single nearest other example in class d."""
    nearer = np.zeros((n_classes, n_classes), np.int64)
    if neighbours.width and len(labels):
        first = neighbours.index[:, 0]
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


def _suspects(state: ClassifierState, labels: np.ndarray, neighbours: Neighbours,
              per_class: np.ndarray, nearer: np.ndarray) -> tuple[Suspect, ...]:
    width = min(SUSPECT_NEIGHBOURS, neighbours.width)
    if width < SUSPECT_NEIGHBOURS or not len(labels):
        return ()
    index, sims = neighbours.index[:, :width], neighbours.sims[:, :width]
    near = labels[index]
    # None of its nearest is of its own class, which had room to show up (four others at least); or
    # one is, and that one is as cut off from the class (two similar photos filed wrong together).
    same = near == labels[:, None]
    own = same.sum(axis=1)
    partner = index[np.arange(len(labels)), same.argmax(axis=1)]
    candidate = ((own == 0) | ((own == 1) & (own[partner] <= 1))) & (per_class[labels] > SUSPECT_NEIGHBOURS)
    found = np.flatnonzero(candidate)
    if not len(found):
        return ()
    # Where it may belong: its other-class neighbours vote (a handful of rows: plain Python).
    rank = name_rank(state.classes).tolist()
    votes = [vote_one(*zip(*[(float(sim), int(c)) for sim, c in zip(sims[i], near[i]) if c != labels[i]]),
                      len(per_class), rank) for i in found]
    confidences = np.asarray([v[0] for v in votes]).reshape(len(found), len(per_class))
    other = np.asarray([v[1] for v in votes], np.int64)
    agreeing = (near[found] == other[:, None]).sum(axis=1)
    # Many examples of one class nearer to another, or the two mixed both ways: the classes are
    # confused, not a few examples mislabelled.
    pointing = np.zeros((len(per_class), len(per_class)), np.int64)
    np.add.at(pointing, (labels[found], other), 1)
    mixed = (nearer + nearer.T) > MIXED_SHARE * (per_class[:, None] + per_class[None, :]) / 2
    confused = (pointing > SUSPECT_SHARE * per_class[:, None]) | mixed
    keep = ~confused[labels[found], other]
    found, other, agreeing, confidences = found[keep], other[keep], agreeing[keep], confidences[keep]
    ids = example_ids(state)
    order = np.lexsort((ids[found], -sims[found, 0], -agreeing))[:MOST_SUSPECTS]
    return tuple(_suspect(state, int(ids[found[j]]), int(found[j]), int(other[j]), confidences[j],
                          int(agreeing[j]), width) for j in order)


def _suspect(state: ClassifierState, example_id: int, i: int, winner: int, confidences: np.ndarray,
             agreeing: int, width: int) -> Suspect:
    others = [c for c in np.argsort(-confidences, kind="stable").tolist() if confidences[c] > 0 and c != winner]
    nearer_to = tuple(state.classes[c] for c in [winner, *others])
    image = state.images[i] if i < len(state.images) else None
    return Suspect(example_id, state.classes[state.labels[i]], nearer_to, agreeing, width, image)


def _same_scene(state: ClassifierState, labels: np.ndarray, per_class: np.ndarray) -> dict[str, float]:
    """Classes (of FEW_EXAMPLES or more examples) whose examples are near-duplicates."""
    if not len(labels):
        return {}
    own = state.own_embeddings().astype(np.float64)
    order = np.argsort(labels, kind="stable")
    present = np.flatnonzero(per_class)
    sums = np.add.reduceat(own[order], np.searchsorted(labels[order], present), axis=0)
    out = {}
    for c, total in zip(present.tolist(), sums):
        n = int(per_class[c])
        if n >= FEW_EXAMPLES:
            mean = (float(total @ total) - n) / (n * (n - 1))  # each own embedding has norm 1
            if mean >= SAME_SCENE_SIMILARITY:
                out[state.classes[c]] = mean
    return out


class Hesitation:
    """Whether the live prediction has wavered between the same two classes for a while."""

    def __init__(self, margin: float = HESITATION_MARGIN, seconds: float = HESITATION_SECONDS) -> None:
        self.margin, self.seconds = margin, seconds
        self._pair: tuple[str, str] | None = None
        self._since = 0.0

    def update(self, confidences: dict[str, float] | None, now: float) -> tuple[str, str, float] | None:
        """Feed the latest confidences (None: no prediction). Returns (best, second, seconds
        undecided) once the same two classes have been within the margin for `seconds`."""
        pair = _close_pair(confidences, self.margin)
        if pair is None:
            self._pair = None
            return None
        if self._pair is None or set(pair) != set(self._pair):  # a new pair starts the clock
            self._pair, self._since = pair, now
        elapsed = now - self._since
        return (*pair, elapsed) if elapsed >= self.seconds else None

    def reset(self) -> None:
        self._pair = None


def _close_pair(confidences: dict[str, float] | None, margin: float) -> tuple[str, str] | None:
    if not confidences:
        return None
    ranked = sorted(confidences.items(), key=lambda kv: -kv[1])
    if len(ranked) < 2 or ranked[1][1] <= 0 or ranked[0][1] - ranked[1][1] > margin:
        return None
    return ranked[0][0], ranked[1][0]
