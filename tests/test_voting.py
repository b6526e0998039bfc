"""knn.core.voting and knn.core.centroids: the vote rules (k nearest examples, nearest class
centroid, their blend) and centring, against brute force and against each other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knn.core.centroids import build_space, centred_rows, unit_rows
from knn.core.classifier import ClassifierError, KNNClassifier
from knn.core.evaluation import evaluate_neighbors, leave_groups_out
from knn.core.neighbors import nearest_others
from knn.core.voting import VOTES, decide, decide_one, name_rank
from tests.test_classifier import FLOAT32_DOT, same_prediction

D = 12
RULES = [(vote, centred) for vote in VOTES for centred in (False, True)]


def taught(seed: int, n: int, n_classes: int, k: int, vote: str, centred: bool, weight: float = 0.4):
    """A classifier of n examples of 1 to 3 vectors each, around a shared offset (as MobileNet's
    features share a common component), and 10 queries."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, n)
    offset = 2.0 * rng.standard_normal(D)
    rows = offset + rng.standard_normal((int(counts.sum()), D))
    labels = [f"c{i}" for i in rng.integers(0, n_classes, n)]
    clf = KNNClassifier(k=k, vote=vote, centred=centred, centroid_weight=weight)
    clf.add_many(rows, labels, vectors=counts.tolist())
    return clf, offset + rng.standard_normal((10, D))


def brute_force(clf: KNNClassifier, query: np.ndarray) -> str:
    """The rule's answer computed from its definition, example by example, without the engine's
    store, cache or vectorised votes."""
    state = clf.state()
    counts = state.vector_counts()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    examples = [state.embeddings[s : s + c] for s, c in zip(starts, counts, strict=True)]
    q = query / np.linalg.norm(query)
    names = clf.classes
    # Centroids: each class's mean example (an example: the mean of its vectors).
    class_means = {
        c: np.mean([e.mean(axis=0) for e, label in zip(examples, state.labels, strict=True) if label == c], axis=0)
        for c in range(len(names))
        if c in state.labels
    }
    if clf.centred and len(class_means) >= 2:  # every vector, centroid and query as unit(x - the examples' mean)
        mean = np.mean([e.mean(axis=0) for e in examples], axis=0)
        examples = [unit_rows(e - mean) for e in examples]
        class_means = {c: m - mean for c, m in class_means.items()}
        q = unit_rows((q - mean)[None])[0]
    # k nearest examples: each as similar as its best vector; equal ones in insertion order.
    sims = np.array([float((e @ q).max()) for e in examples])
    order = np.argsort(-sims, kind="stable")[: clf.k]
    ex = {c: [] for c in range(len(names))}
    for i in order:
        ex[int(state.labels[i])].append(sims[i])
    cen = {}
    for c, centroid in class_means.items():
        norm = np.linalg.norm(centroid)
        cen[c] = float(q @ centroid / norm) if norm >= 1e-6 else 0.0  # no direction: 0-similar
    near = sorted(cen, key=lambda c: -cen[c])[: clf.k]

    def shares(groups: dict[int, list[float]]) -> dict[int, float]:
        votes = {c: sum(max(s, 1e-3) for s in v) for c, v in groups.items() if v}
        return {c: v / sum(votes.values()) for c, v in votes.items()}

    ex_share, cen_share = shares(ex), shares({c: [cen[c]] for c in near})
    best = {c: max(v) for c, v in ex.items() if v}
    if clf.vote == "examples":
        keys = {c: (ex_share[c], sum(ex[c]), best[c]) for c in ex_share}
    elif clf.vote == "centroids":
        keys = {c: (cen_share[c],) for c in cen_share}
    else:  # the nearest centroid's class gets w of the vote, the k nearest examples share the rest
        w, nearest = clf.centroid_weight, near[0]
        mixed = {c: (1 - w) * ex_share.get(c, 0) + (w if c == nearest else 0) for c in set(ex_share) | {nearest}}
        keys = {c: (mixed[c], max(best.get(c, -9), cen[c] if c == nearest else -9)) for c in mixed}
    top = max(keys.values())
    # Only clear winners are checked: near-ties are the tie rules' business (tested below).
    runner_up = max((v for c, v in keys.items() if v != top), default=None)
    if runner_up is not None and top[0] - runner_up[0] < 1e-4:
        return "tie"
    return names[max(keys, key=keys.get)]


@pytest.mark.parametrize(("vote", "centred"), RULES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), n_classes=st.integers(1, 5), k=st.integers(1, 7))
def test_each_rule_answers_as_its_definition(vote, centred, seed, n, n_classes, k):
    clf, queries = taught(seed, n, n_classes, k, vote, centred)
    for q in queries:
        expected = brute_force(clf, q)
        if expected != "tie":
            assert clf.predict(q).label == expected


@pytest.mark.parametrize(("vote", "centred"), RULES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), n_classes=st.integers(1, 5), k=st.integers(1, 7))
def test_one_query_batches_and_probabilities_agree(vote, centred, seed, n, n_classes, k):
    clf, queries = taught(seed, n, n_classes, k, vote, centred)
    proba = clf.predict_proba(queries)
    for q, row, batch in zip(queries, proba, clf.predict_many(queries), strict=True):
        p = clf.predict(q)
        same_prediction(p, batch)
        assert sum(p.confidences.values()) == pytest.approx(1)
        np.testing.assert_allclose(row, list(p.confidences.values()), atol=FLOAT32_DOT)
        assert p.confidences[p.label] == pytest.approx(max(p.confidences.values()), abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 6),
    k=st.integers(1, 5),
    kc=st.integers(1, 5),
    n_classes=st.integers(1, 6),
    weight=st.floats(0, 1),
    vote=st.sampled_from(VOTES),
)
def test_vectorised_and_one_query_votes_agree(seed, m, k, kc, n_classes, weight, vote):
    rng = np.random.default_rng(seed)
    # Coarse similarities, so that exact ties (the tie rules' cases) come up often.
    ex_sims = -np.sort(-rng.integers(-4, 9, (m, k)) / 8, axis=1)
    ex_cls = rng.integers(0, n_classes, (m, k))
    cen_sims = -np.sort(-rng.integers(-4, 9, (m, min(kc, n_classes))) / 8, axis=1)
    cen_cls = np.stack([rng.permutation(n_classes)[: cen_sims.shape[1]] for _ in range(m)])
    rank = name_rank([f"n{c}" for c in rng.permutation(n_classes)])
    conf, winner = decide(vote, ex_sims, ex_cls, cen_sims, cen_cls, n_classes, rank, weight)
    for i in range(m):
        one_conf, one_winner = decide_one(
            vote,
            ex_sims[i].tolist(),
            ex_cls[i].tolist(),
            cen_sims[i].tolist(),
            cen_cls[i].tolist(),
            n_classes,
            rank.tolist(),
            weight,
        )
        np.testing.assert_allclose(conf[i], one_conf, atol=1e-12)
        assert winner[i] == one_winner


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), n_classes=st.integers(1, 5), k=st.integers(1, 7))
def test_blend_ends_are_the_two_rules(seed, n, n_classes, k):
    clf, queries = taught(seed, n, n_classes, k, "blend", False, weight=0.0)
    examples = clf.copy()
    examples.vote = "examples"
    np.testing.assert_allclose(clf.predict_proba(queries), examples.predict_proba(queries), atol=1e-12)
    for q in queries:
        assert clf.predict(q).label == examples.predict(q).label
    clf.centroid_weight = 1.0  # all of the vote to the nearest centroid's class
    centroids = clf.copy()
    centroids.vote = "centroids"
    for q in queries:
        p = clf.predict(q)
        assert p.label == centroids.predict(q).label and p.confidences[p.label] == 1.0


def test_with_one_example_per_class_the_three_votes_agree():
    # Each class's centroid is its one example, so the k nearest centroids are the k nearest
    # examples, and the nearest centroid's class is the examples' winner.
    rng = np.random.default_rng(3)
    rows, queries = rng.standard_normal((5, D)), rng.standard_normal((20, D))
    answers = {}
    for vote in VOTES:
        clf = KNNClassifier(k=3, vote=vote)
        clf.add_many(rows, ["e", "d", "c", "b", "a"])
        answers[vote] = clf.predict_proba(queries)
    np.testing.assert_allclose(answers["centroids"], answers["examples"], atol=1e-6)
    np.testing.assert_array_equal(answers["blend"].argmax(axis=1), answers["examples"].argmax(axis=1))


@pytest.mark.parametrize(("vote", "centred"), RULES)
def test_centroids_and_mean_follow_every_change(vote, centred):
    """The derived space is kept between frames; after each kind of change the classifier answers
    as one built afresh from its state."""
    clf, queries = taught(1, 24, 4, 3, vote, centred)

    def check():
        fresh = KNNClassifier.from_state(clf.state())
        for q in queries:
            same_prediction(clf.predict(q), fresh.predict(q))

    check()
    ids = [e.example_id for e in clf.examples()]
    clf.add(np.ones(D), "c0")
    check()
    clf.remove(ids[0])
    check()
    clf.move(ids[1], "c9")
    check()
    clf.rename_class("c1", "renamed")
    check()
    clf.clear_class("c2")
    check()
    clf.remove_class("c3")
    check()


def test_centring_uses_the_examples_mean_only():
    rng = np.random.default_rng(2)
    rows = unit_rows(3.0 + rng.standard_normal((6, D)))
    space = build_space(rows, np.arange(6), np.array([0, 0, 1, 1, 2, 2]), centred=True)
    np.testing.assert_allclose(space.mean, rows.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(1 / space.inv_norm, np.linalg.norm(rows - rows.mean(axis=0), axis=1), rtol=1e-5)
    np.testing.assert_allclose(centred_rows(rows, space), unit_rows(rows - rows.mean(axis=0)), atol=1e-6)
    # An example's views weigh as one example: two identical vectors of example 0 count once.
    doubled = np.vstack([rows[:1], rows])
    owner = np.array([0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(build_space(doubled, owner, np.array([0, 0, 1, 1, 2, 2]), True).mean, space.mean)
    # One class alone is not centred (its examples' mean is its own: a first example would be
    # 0-similar to everything); the second class's first example starts the centring.
    clf = KNNClassifier(centred=True)
    clf.add(rows[0], "only")
    p = clf.predict(rows[1])
    assert p.label == "only" and p.similarity == pytest.approx(float(rows[0] @ rows[1]), abs=1e-6)
    clf.add(rows[2], "only")
    assert clf.predict(rows[1]).similarity == pytest.approx(float(max(rows[0] @ rows[1], rows[2] @ rows[1])), abs=1e-6)
    clf.add(rows[3], "other")
    centred = centred_rows(rows[[0, 2, 3]], build_space(rows[[0, 2, 3]], np.arange(3), np.array([0, 0, 1]), True))
    q = unit_rows((rows[1] - rows[[0, 2, 3]].mean(axis=0))[None])[0]
    assert clf.predict(rows[1]).similarity == pytest.approx(float((centred @ q).max()), abs=1e-5)


@pytest.mark.parametrize(("vote", "centred"), RULES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 25), n_classes=st.integers(1, 4), k=st.integers(1, 5))
def test_leaving_groups_out_equals_removing_them_and_predicting(vote, centred, seed, n, n_classes, k):
    clf, _ = taught(seed, n, n_classes, k, vote, centred)
    groups = np.random.default_rng(seed).integers(0, 4, n)
    ev = leave_groups_out(clf.state(), groups)
    state = clf.state()
    expected = np.zeros_like(ev.confusion)
    own = state.own_embeddings()
    for g in np.unique(groups):
        other = clf.copy()
        ids = [e.example_id for e in clf.examples()]
        for i in np.flatnonzero(groups == g):
            other.remove(ids[i])
        if len(other) == 0:
            continue
        for i in np.flatnonzero(groups == g):
            label = other.predict(own[i]).label
            expected[state.labels[i], clf.classes.index(label)] += 1
    np.testing.assert_array_equal(ev.confusion, expected)
    if vote == "examples" and not centred:  # the fast path of leave_one_out gives the same
        singles = leave_groups_out(state)
        np.testing.assert_array_equal(singles.confusion, evaluate_neighbors(state, nearest_others(state, k)).confusion)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("vote", "majority", "vote must be one of examples, centroids, blend"),
        ("centroid_weight", 1.5, "must lie in 0..1"),
        ("centroid_weight", float("nan"), "must lie in 0..1"),
        ("centroid_weight", True, "a number in 0..1"),
        ("centred", "yes", "True or False"),
    ],
)
def test_bad_rule_settings_say_what_is_wrong(setting, value, words):
    with pytest.raises(ClassifierError, match=words):
        KNNClassifier(**{setting: value})
    clf = KNNClassifier()
    with pytest.raises(ClassifierError, match=words):
        setattr(clf, setting, value)


def test_rule_travels_with_state_and_copy():
    clf, _ = taught(0, 10, 3, 3, "blend", True, weight=0.7)
    for other in (clf.copy(), KNNClassifier.from_state(clf.state())):
        assert (other.vote, other.centroid_weight, other.centred) == ("blend", 0.7, True)
