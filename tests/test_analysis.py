"""knn.live.analysis: leave-one-out of a session's examples off the page's thread, redone when
the examples change, and never for a replaced classifier."""

from __future__ import annotations

import numpy as np

from knn.core.classifier import KNNClassifier
from knn.core.evaluation import leave_one_out
from knn.live.analysis import Analysis
from tests.frames import wait_until


def _taught(n: int = 400, classes: int = 4) -> KNNClassifier:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((classes, 64))
    clf = KNNClassifier()
    for i in range(n):
        clf.add(centres[i % classes] + 0.8 * rng.standard_normal(64), f"c{i % classes}")
    return clf


def test_the_result_follows_the_examples_and_the_caller_never_waits():
    analysis, clf = Analysis(), _taught()
    result, current = analysis.latest(clf)
    assert (result, current) == (None, False)  # queued, not computed here: no result yet
    wait_until(lambda: analysis.latest(clf)[1], 30, "the first leave-one-out")
    result, _ = analysis.latest(clf)
    expected = leave_one_out(clf)
    assert result.evaluation.accuracy == expected.accuracy
    np.testing.assert_array_equal(result.evaluation.confusion, expected.confusion)
    clf.add(np.ones(64), "c0")  # the examples changed: the old result is shown as stale, a new one queued
    stale, current = analysis.latest(clf)
    assert stale is result and not current
    wait_until(lambda: analysis.latest(clf)[1], 30, "the leave-one-out after the change")
    assert analysis.latest(clf)[0].evaluation.n == 401
    clf.k = 1  # a setting changes the answer too
    assert not analysis.latest(clf)[1]


def test_a_replaced_classifier_is_not_described_by_the_old_result():
    analysis, first = Analysis(), _taught(40)
    wait_until(lambda: analysis.latest(first)[1], 30, "the first result")
    second = _taught(40)  # e.g. a restored project: the same version count, other examples
    assert second.version == first.version
    assert not analysis.latest(second)[1]
    wait_until(lambda: analysis.latest(second)[1], 30, "the result for the restored project")


def test_the_coach_comes_with_the_result_and_follows_adds_incrementally():
    from knn.core.coach import coach, neighbors_needed
    from knn.core.neighbors import nearest_others

    analysis, clf = Analysis(), _taught(200)
    wait_until(lambda: analysis.latest(clf)[1], 30, "the first analysis")
    clf.add(np.ones(64), "c1")
    wait_until(lambda: analysis.latest(clf)[1], 30, "the analysis after one Add")
    assert not analysis._index[1].last_full  # only the new example's row and column were searched
    state = clf.state()
    fresh = coach(state, nearest_others(state, neighbors_needed(state.k)))
    result = analysis.latest(clf)[0]
    assert result.coaching.counts == fresh.counts
    np.testing.assert_array_equal(result.evaluation.confusion, fresh.evaluation.confusion)
