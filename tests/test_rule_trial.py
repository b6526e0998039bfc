"""knn.core.rule_trial: the coach's paired trial of other vote rules, on real photos taught in batches."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from knn.core.classifier import ClassifierState, KNNClassifier
from knn.core.evaluation import leave_groups_out, top_k
from knn.core.images import read_square
from knn.core.rule_trial import (
    ALPHA,
    CANDIDATES,
    MAX_FOLDS,
    MIN_EXAMPLES,
    Rule,
    folds,
    holm,
    shortage,
    sign_test,
    try_rules,
)

from .photo_batches import photo_batches


def test_the_sign_test_is_exact_and_two_sided():
    from scipy.stats import binomtest

    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(6, 0) == pytest.approx(2 / 64) and sign_test(6, 0) < ALPHA < sign_test(5, 0)
    for gained, lost in [(3, 1), (12, 4), (4, 12), (40, 25), (200, 170), (1, 1)]:
        assert sign_test(gained, lost) == pytest.approx(binomtest(gained, gained + lost).pvalue)
        assert sign_test(gained, lost) == sign_test(lost, gained)


def test_holm_steps_down_from_the_smallest_p_and_stops_at_the_first_that_is_not_real():
    # Five candidates: 0.004 < 0.05/5, 0.011 < 0.05/4, 0.02 >= 0.05/3 stops it; 0.001 alone would
    # pass uncorrected and corrected, 0.03 passes uncorrected only.
    assert holm([0.02, 0.004, 0.5, 0.011, 0.03]) == [False, True, False, True, False]
    assert holm([0.03]) == [True] and holm([0.03, 0.03]) == [False, False]
    assert holm([0.2, 0.001]) == [False, True] and holm([]) == []


def _embedded(embedder, grocery, name: str) -> tuple[ClassifierState, np.ndarray]:
    """The set's photos embedded by the real model as uploads are, each batch a group, on the legacy rule."""
    clf = KNNClassifier(k=3, vote="examples", centred=False)
    groups: list[int] = []
    for label, batches in photo_batches(grocery, name).items():
        for batch in batches:
            vectors = embedder.embed([read_square(path, embedder.input_size) for path in batch])
            clf.add_many(vectors, [label] * len(batch))
            groups += [len(set(groups))] * len(batch)
    return clf.state(), np.asarray(groups)


@pytest.fixture(scope="module")
def yoghurts(embedder, grocery):
    return _embedded(embedder, grocery, "yoghurts")


@pytest.fixture(scope="module")
def tomatoes(embedder, grocery):
    return _embedded(embedder, grocery, "tomatoes")


def test_each_accuracy_is_leave_one_batch_out_of_that_rule(yoghurts):
    """The trial's numbers are the engine's own leave-one-group-out of each rule, paired example by example."""
    state, groups = yoghurts
    trial = try_rules(state, groups)
    assert trial.current == Rule("examples", state.centroid_weight, False)
    assert trial.short_of is None and len(trial.trials) == len(CANDIDATES) - 1
    now = leave_groups_out(state, groups).accuracy
    for t in trial.trials:
        assert not t.rule.same_as(trial.current)
        rule = dataclasses.replace(
            state, vote=t.rule.vote, centroid_weight=t.rule.centroid_weight, centred=t.rule.centred
        )
        assert t.accuracy == pytest.approx(leave_groups_out(rule, groups).accuracy)
        assert t.current_accuracy == pytest.approx(now) and t.n == len(groups)
        assert t.gained - t.lost == round((t.accuracy - t.current_accuracy) * t.n)
        assert t.p_value == sign_test(t.gained, t.lost)
    real = holm([t.p_value for t in trial.trials])
    assert [t.offer for t in trial.trials] == [t.gained > t.lost and r for t, r in zip(trial.trials, real, strict=True)]


def test_look_alike_cartons_taught_in_batches_are_offered_a_better_rule(yoghurts):
    state, groups = yoghurts
    trial = try_rules(state, groups)
    best = trial.best
    assert best is not None and best.offer and best.p_value < 0.01
    assert best.accuracy > best.current_accuracy + 0.1
    assert best.accuracy == max(t.accuracy for t in trial.trials if t.offer)
    # From the offered rule, the legacy one is a candidate that loses: no offer back.
    switched = dataclasses.replace(state, vote=best.rule.vote, centred=best.rule.centred)
    back = try_rules(switched, groups)
    assert back.current == best.rule
    legacy = next(t for t in back.trials if t.rule.same_as(trial.current))
    assert legacy.accuracy == pytest.approx(trial.trials[0].current_accuracy) and not legacy.offer


def test_produce_the_legacy_rule_separates_gets_no_offer_and_says_why(tomatoes):
    state, groups = tomatoes
    trial = try_rules(state, groups)
    assert trial.short_of is None and trial.trials
    assert trial.best is None and not any(t.offer for t in trial.trials)
    why = trial.why_not()
    assert "could be chance" in why or "does better" in why


def test_a_batch_of_near_duplicates_is_left_out_whole(yoghurts):
    """Each example stored twice in its batch: leaving out one example at a time, its twin is
    its nearest neighbour (k = 1) and recognises it; leaving out the batch, nothing of it helps."""
    state, groups = yoghurts
    twice = np.repeat(np.arange(len(groups)), 2)
    doubled = dataclasses.replace(
        state,
        embeddings=state.embeddings[twice],
        labels=np.asarray(state.labels)[twice],
        images=tuple(state.images[i] for i in twice),
        vectors=None,
        ids=None,
        k=1,
    )
    assert leave_groups_out(doubled).accuracy == 1.0  # each example's twin
    by_batch = leave_groups_out(doubled, groups[twice]).accuracy
    alone = leave_groups_out(dataclasses.replace(state, k=1), groups).accuracy
    assert by_batch < 0.9 and by_batch == pytest.approx(alone)


def test_too_few_examples_or_batches_are_said_and_nothing_is_run(tomatoes):
    state, groups = tomatoes
    labels = np.asarray(state.labels)
    one_batch = np.where(labels == 0, -1, groups)  # the first class in one batch
    trial = try_rules(state, one_batch)
    assert trial.trials == () and trial.best is None
    assert trial.short_of == shortage(state, one_batch) and "1 batch" in trial.short_of
    assert trial.why_not() == trial.short_of and state.classes[0] in trial.short_of
    few = np.flatnonzero(labels != 1).tolist() + np.flatnonzero(labels == 1)[: MIN_EXAMPLES - 1].tolist()
    small = dataclasses.replace(
        state,
        embeddings=state.embeddings[few],
        labels=labels[few],
        images=tuple(state.images[i] for i in few),
        vectors=None,
        ids=None,
    )
    assert f"{MIN_EXAMPLES - 1} examples" in (try_rules(small, groups[few]).short_of or "")
    alone = dataclasses.replace(small, labels=np.zeros_like(labels[few]))
    assert try_rules(alone, groups[few]).short_of == "Teach at least two classes first."


def test_progress_reaches_one_and_the_weight_only_matters_to_the_blend(tomatoes):
    state, groups = tomatoes
    seen: list[float] = []
    try_rules(state, groups, progress=seen.append)
    assert seen == sorted(seen) and math.isclose(seen[-1], 1.0) and len(seen) >= len(set(groups.tolist()))
    assert Rule("examples", 0.3).same_as(Rule("examples", 0.9))
    assert not Rule("blend", 0.3).same_as(Rule("blend", 0.5)) and not Rule("blend").same_as(Rule("blend", centred=True))
    assert Rule("blend", 0.3, True).describe() == "blend 0.3, centred"
    assert Rule("examples").describe() == "nearest examples, not centred"


def test_top_k_is_the_stable_sort_s_first_k_ties_included():
    rng = np.random.default_rng(3)
    for shape, levels in [((50, 40), None), ((50, 40), 4), ((30, 7), 2), ((5, 3), None)]:
        values = rng.standard_normal(shape) if levels is None else rng.integers(0, levels, shape).astype(float)
        for k in (1, 3, shape[1]):
            assert np.array_equal(top_k(values, k), np.argsort(-values, axis=1, kind="stable")[:, :k])


def test_many_batches_are_dealt_whole_into_folds_a_class_s_into_different_ones():
    labels = np.repeat([0, 1, 2], [60, 30, 9])
    groups = np.concatenate([np.arange(60) // 2, 100 + np.arange(30) // 3, 200 + np.arange(9)])  # 30, 10, 9 batches
    fold = folds(labels, groups)
    assert fold.max() + 1 == MAX_FOLDS
    for g in np.unique(groups):  # a batch stays whole
        assert len(np.unique(fold[groups == g])) == 1
    for c in (1, 2):  # at most MAX_FOLDS batches: each in a fold of its own
        mine = labels == c
        assert len(np.unique(fold[mine])) == len(np.unique(groups[mine]))
    few = np.arange(len(labels)) // 10
    assert np.array_equal(folds(labels, few), few)


def test_a_trial_over_many_batches_says_how_it_left_them_out(tomatoes):
    state, _ = tomatoes
    each = np.arange(len(state.labels))  # every example its own Add
    trial = try_rules(state, each)
    assert (trial.batches, trial.folds) == (len(each), MAX_FOLDS)
    assert trial.left_out() == f"leaving out whole batches, a {MAX_FOLDS}th of them at a time"
    assert try_rules(state, np.arange(len(each)) // 6).left_out() == "leaving out one batch at a time"
