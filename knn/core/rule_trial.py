"""The coach's trial of other vote rules on the user's own examples: is another rule really better?

Leave-one-group-out (knn.core.evaluation.group_winners) of the current rule and each candidate on
the stored vectors, with no re-embedding: a group is an upload batch or a Record burst (or one
Add), whose frames are near-duplicates, so no example is recognised by its own twin. Each
candidate is paired with the current rule on the same examples and judged by an exact two-sided
sign test (McNemar's) on the examples exactly one of the two gets right. A candidate is offered
only when it is more accurate, the test says the difference is real (p < `ALPHA`, Holm-corrected
for the candidates tried together) and every class has `MIN_EXAMPLES` examples from `MIN_GROUPS` groups.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .classifier import ClassifierState
from .evaluation import group_winners
from .voting import DEFAULT_CENTROID_WEIGHT

MIN_EXAMPLES = 5
"""Examples per class before the coach compares rules."""
MIN_GROUPS = 2
"""Groups (batches) per class before the coach compares rules: with one, leaving it out leaves
the class without an example."""
ALPHA = 0.05
"""The sign tests' level, for all candidates together (`holm`): a difference this unlikely by
chance is offered."""
MAX_FOLDS = 20
"""At most this many passes per centring: with more batches, whole batches are dealt into this
many folds and one fold is left out at a time (each class's batches into different folds). One
pass per batch cost 93 s for 1,000 examples added one by one (docs/accuracy.md)."""


@dataclass(frozen=True)
class Rule:
    """A vote rule (knn.core.voting) and whether vectors are centred on the examples' mean."""

    vote: str
    centroid_weight: float = DEFAULT_CENTROID_WEIGHT
    centred: bool = False

    def same_as(self, other: Rule) -> bool:
        """Whether the two decide alike (the weight only matters to the blend)."""
        weights = self.vote != "blend" or math.isclose(self.centroid_weight, other.centroid_weight)
        return self.vote == other.vote and self.centred == other.centred and weights

    def describe(self) -> str:
        """The rule in the coach's words: "blend 0.3, centred"."""
        vote = {"examples": "nearest examples", "centroids": "class centroids"}.get(self.vote)
        vote = vote or f"blend {self.centroid_weight:g}"
        return f"{vote}, {'centred' if self.centred else 'not centred'}"


CANDIDATES = tuple(
    Rule(vote, DEFAULT_CENTROID_WEIGHT, centred)
    for vote in ("blend", "centroids", "examples")
    for centred in (True, False)
)
"""The rules the coach tries, in the order it prefers them on a tie (the recommended default first)."""


@dataclass(frozen=True)
class Trial:
    """One candidate against the current rule, each example classified with its group left out.

    Attributes:
        accuracy, current_accuracy: the candidate's and the current rule's accuracy.
        n: examples classified.
        gained, lost: examples only the candidate gets right, and only the current rule does.
        p_value: the exact two-sided sign test on `gained` against `lost`.
        offer: the candidate is better and the difference is real (p < ALPHA).
    """

    rule: Rule
    accuracy: float
    current_accuracy: float
    n: int
    gained: int
    lost: int
    p_value: float
    offer: bool


@dataclass(frozen=True)
class RuleTrial:
    """The coach's finding: each candidate's trial, or why there was none (`short_of`)."""

    current: Rule
    trials: tuple[Trial, ...]
    short_of: str | None = None  # not enough examples: what is missing, in plain text
    batches: int = 0
    folds: int = 0  # how many parts were left out in turn: `batches`, or MAX_FOLDS with more

    def left_out(self) -> str:
        """How the examples were classified, in plain text."""
        if self.folds >= self.batches:
            return "leaving out one batch at a time"
        return f"leaving out whole batches, a {self.folds}th of them at a time"

    @property
    def best(self) -> Trial | None:
        """The most accurate offered candidate (the first on a tie); None when none is offered."""
        offered = [t for t in self.trials if t.offer]
        return max(offered, key=lambda t: t.accuracy) if offered else None

    def why_not(self) -> str:
        """Why nothing is offered, in plain text (the page escapes it)."""
        if self.short_of is not None:
            return self.short_of
        if not self.trials:
            return "There is no other setting to try."
        top = max(self.trials, key=lambda t: t.accuracy)
        now = f"{top.current_accuracy:.0%} now"
        if top.accuracy <= top.current_accuracy:
            return f"No other setting does better than the current one ({now}) on your examples."
        return (
            f"{_sentence(top.rule.describe())} scores {top.accuracy:.0%} against {now} on your examples, a "
            f"difference that could be chance (p = {top.p_value:.2f}): add more examples, then try again."
        )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def sign_test(gained: int, lost: int) -> float:
    """Exact two-sided sign test (McNemar's): the chance of a split at least this uneven when
    either rule is as likely to be the one right; 1.0 when they never differ."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1))
    return min(1.0, 2 * tail / (1 << n))  # exact integers: no overflow for large n


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which differences are real, several candidates tested at once (Holm's step-down): the
    smallest p must be below alpha / m, the next below alpha / (m - 1), and so on, stopping at the
    first that is not; so trying five rules offers a false one no more often than trying one."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    real = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] >= alpha / (len(p_values) - rank):
            break
        real[i] = True
    return real


def shortage(state: ClassifierState, groups: Sequence[int] | np.ndarray) -> str | None:
    """What is missing before rules can be compared (plain text), or None when there is enough."""
    labels, keys = np.asarray(state.labels, np.int64), np.asarray(groups)
    taught = [c for c in range(len(state.classes)) if (labels == c).any()]
    if len(taught) < 2:
        return "Teach at least two classes first."
    for c in taught:
        mine = labels == c
        examples, batches = int(mine.sum()), len(np.unique(keys[mine]))
        if examples < MIN_EXAMPLES or batches < MIN_GROUPS:
            return (
                f"“{state.classes[c]}” has {examples} example{'s' * (examples != 1)} from {batches} "
                f"batch{'es' * (batches != 1)}: the coach compares settings once every class has at least "
                f"{MIN_EXAMPLES} examples from {MIN_GROUPS} or more batches (separate Adds, Records or uploads)."
            )
    return None


def folds(labels: np.ndarray, groups: np.ndarray, most: int = MAX_FOLDS) -> np.ndarray:
    """[N] a fold per example: its group's own with at most `most` groups, else whole groups dealt
    in turn into `most` folds, class after class, so that a class's first `most` groups land in
    different folds (a fold never takes all of a class's examples while it has other groups)."""
    keys, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if len(keys) <= most:
        return np.asarray(inverse, np.int64)
    order = np.lexsort((first, labels[first]))  # by class, then in the order they were added
    fold = np.empty(len(keys), np.int64)
    fold[order] = np.arange(len(keys)) % most
    return fold[inverse]


def try_rules(
    state: ClassifierState,
    groups: Sequence[int] | np.ndarray,
    candidates: Sequence[Rule] = CANDIDATES,
    progress: Callable[[float], None] | None = None,
) -> RuleTrial:
    """The current rule of `state` against each candidate, leaving out one group at a time.

    Args:
        state: the examples and the current rule (`KNNClassifier.state()`); its k is kept.
        groups: [N] each example's group (an upload batch, a Record burst or an Add).
        candidates: the rules to try; those that decide as the current rule does are skipped.
        progress: called with the fraction done.

    Cost: per centring tried (not per rule), one pass per group, at most MAX_FOLDS
    (`folds`), each O(R × D) plus the left-out examples' products with the others.
    """
    current = Rule(state.vote, state.centroid_weight, state.centred)
    short = shortage(state, groups)
    n_groups = len(np.unique(np.asarray(groups)))
    if short is not None:
        return RuleTrial(current, (), short, n_groups)
    truth = np.asarray(state.labels, np.int64)
    parts = folds(truth, np.asarray(groups))
    others = [r for r in candidates if not r.same_as(current)]
    rules = [current, *others]
    right: list[np.ndarray | None] = [None] * len(rules)
    passes = sorted({r.centred for r in rules}, key=lambda c: c != current.centred)
    for i, centred in enumerate(passes):
        mine = [j for j, r in enumerate(rules) if r.centred == centred]
        step = None if progress is None else _part(progress, i, len(passes))
        winners = group_winners(
            dataclasses.replace(state, centred=centred),
            parts,
            [(rules[j].vote, rules[j].centroid_weight) for j in mine],
            step,
        )
        for j, row in zip(mine, winners, strict=True):
            right[j] = row == truth
    now = right[0]
    assert now is not None  # the current rule's pass comes first
    n = len(truth)
    counts = []
    for correct in right[1:]:
        assert correct is not None
        counts.append((int((correct & ~now).sum()), int((now & ~correct).sum())))
    p_values = [sign_test(gained, lost) for gained, lost in counts]
    real = holm(p_values)
    trials = []
    for rule, correct, (gained, lost), p, is_real in zip(others, right[1:], counts, p_values, real, strict=True):
        assert correct is not None
        trials.append(
            Trial(rule, float(correct.mean()), float(now.mean()), n, gained, lost, p, gained > lost and is_real)
        )
    return RuleTrial(current, tuple(trials), None, n_groups, int(parts.max()) + 1)


def _part(progress: Callable[[float], None], i: int, parts: int) -> Callable[[float], None]:
    """`progress` for part i of `parts` equal parts."""
    return lambda fraction: progress((i + fraction) / parts)
