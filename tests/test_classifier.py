"""knn.classifier: voting, ties, caps, unknown, editing, evaluation, threads, and real photos."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knn.core.classifier import ClassifierError, KNNClassifier
from knn.core.evaluation import leave_one_out
from knn.core.inputs import normalise
from knn.core.store import EmbeddingStore

D = 16


def unit(*pairs: tuple[int, float], dim: int = D) -> np.ndarray:
    """A vector with the given (axis, value) entries."""
    v = np.zeros(dim, np.float32)
    for axis, value in pairs:
        v[axis] = value
    return v


def at_similarity(s: float, axis: int, dim: int = D) -> np.ndarray:
    """A unit vector whose cosine similarity with axis 0 is exactly `s` (orthogonal part on `axis`)."""
    return unit((0, s), (axis, math.sqrt(1 - s * s)), dim=dim)


def random_set(seed: int, n: int, n_classes: int, dim: int = D):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    labels = [f"c{i}" for i in rng.integers(0, n_classes, n)]
    return emb, labels, rng.standard_normal((8, dim)).astype(np.float32)


def contents(clf: KNNClassifier):
    emb, labels, ids = clf.embeddings()
    return clf.classes, clf.counts(), clf.dim, emb, labels


FLOAT32_DOT = 1e-5
"""How far two float32 dot products of the same unit vectors may differ when BLAS sums them in
another order (another row position, another CPU's kernel): a few units in the last place."""


def same_prediction(p, q) -> None:
    assert p.label == q.label and p.unknown == q.unknown
    assert set(p.confidences) == set(q.confidences)
    for name, value in p.confidences.items():
        assert q.confidences[name] == pytest.approx(value, abs=FLOAT32_DOT)
    assert p.similarity == pytest.approx(q.similarity, abs=FLOAT32_DOT, nan_ok=True)


# ------------------------------------------------------------------ basics
def test_add_predict_returns_label_confidences_similarity_neighbors():
    clf = KNNClassifier(k=3)
    a = clf.add(at_similarity(0.9, 1), "rock", image=b"\xff\xd8x")
    clf.add(at_similarity(0.5, 2), "paper")
    clf.add(at_similarity(0.2, 3), "scissors")
    p = clf.predict(unit((0, 2.0)))  # not unit length: normalised on the way in
    assert p.label == "rock" and not p.unknown
    assert list(p.confidences) == ["rock", "paper", "scissors"]
    assert sum(p.confidences.values()) == pytest.approx(1)
    assert p.confidences["rock"] == pytest.approx(0.9 / 1.6, abs=1e-6)
    assert p.similarity == pytest.approx(0.9, abs=1e-6)
    assert [n.label for n in p.neighbors] == ["rock", "paper", "scissors"]
    assert p.neighbors[0].example_id == a
    assert [n.similarity for n in p.neighbors] == sorted((n.similarity for n in p.neighbors), reverse=True)
    assert clf.examples("rock")[0].image == b"\xff\xd8x"
    assert len(clf) == 3 and clf.dim == D


def test_one_example_per_class_is_nearest_neighbor_not_first_class():
    # The TF.js rules (k=3, one vote each, ties to the first class) answer "c0" here every time.
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((10, D)).astype(np.float32)
    clf = KNNClassifier(k=3)
    for i, e in enumerate(emb):
        clf.add(e, f"c{i}")
    queries = emb + 0.3 * rng.standard_normal(emb.shape).astype(np.float32)
    for q in queries:
        sims = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        assert clf.predict(q).label == f"c{int(np.argmax(sims))}"
    assert sum(clf.predict(q).label == "c0" for q in queries) <= 2


def test_empty_classifier_and_empty_classes():
    clf = KNNClassifier()
    p = clf.predict(np.ones(D))
    assert p.label is None and math.isnan(p.similarity) and p.neighbors == () and p.confidences == {}
    clf.add_class("a")
    clf.add_class("b")
    p = clf.predict(np.ones(D))
    assert p.confidences == {"a": 0.0, "b": 0.0} and p.label is None
    assert clf.predict_proba(np.ones((2, D))).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    clf.add(np.ones(D), "b")
    p = clf.predict(np.ones(D))
    assert p.label == "b" and p.confidences == {"a": 0.0, "b": 1.0}
    assert clf.counts() == {"a": 0, "b": 1}


# ------------------------------------------------------------------ ties
@pytest.mark.parametrize("order", [("first", "second"), ("second", "first")])
def test_vote_count_tie_goes_to_the_more_similar_class(order):
    # k=2, one neighbor each: a 1:1 count tie that TF.js gives to whichever class came first.
    clf = KNNClassifier(k=2)
    vectors = {"first": at_similarity(0.5, 1), "second": at_similarity(0.9, 2)}
    for name in order:
        clf.add(vectors[name], name)
    assert clf.predict(unit((0, 1))).label == "second"


@pytest.mark.parametrize("order", [("pair", "single"), ("single", "pair")])
def test_equal_summed_similarity_goes_to_the_best_single_match(order):
    # k=3: "pair" sums 0.4 + 0.4, "single" has one neighbor at 0.8: equal votes, decided by the best.
    clf = KNNClassifier(k=3)
    for name in order:
        if name == "pair":
            clf.add(at_similarity(0.4, 1), "pair")
            clf.add(at_similarity(0.4, 2), "pair")
        else:
            clf.add(at_similarity(0.8, 3), "single")
    p = clf.predict(unit((0, 1)))
    assert p.label == "single"
    assert p.confidences["pair"] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("order", [("zeta", "alpha"), ("alpha", "zeta")])
def test_mirror_symmetric_examples_do_not_depend_on_class_order(order):
    # Two classes exactly as similar to the query: indistinguishable, so the name decides, not order.
    clf = KNNClassifier(k=3)
    vectors = {"alpha": unit((0, 0.6), (1, 0.8)), "zeta": unit((0, 0.6), (1, -0.8))}
    for name in order:
        clf.add(vectors[name], name)
    p = clf.predict(unit((0, 1)))
    assert p.label == "alpha"
    assert p.confidences["alpha"] == pytest.approx(0.5)


# ------------------------------------------------------------------ properties
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), n_classes=st.integers(1, 5), k=st.integers(1, 7))
def test_order_of_adds_does_not_change_predictions(seed, n, n_classes, k):
    emb, labels, queries = random_set(seed, n, n_classes)
    forward, backward = KNNClassifier(k=k), KNNClassifier(k=k)
    forward.add_many(emb, labels)
    for i in reversed(range(n)):
        backward.add(emb[i], labels[i])
    for q in queries:
        same_prediction(forward.predict(q), backward.predict(q))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 20), extra=st.integers(1, 10), k=st.integers(1, 5))
def test_add_then_remove_restores_the_state(seed, n, extra, k):
    emb, labels, queries = random_set(seed, n + extra, 3)
    clf = KNNClassifier(k=k)
    clf.add_many(emb[:n], labels[:n])
    before = contents(clf)
    predictions = [clf.predict(q) for q in queries]
    ids = clf.add_many(emb[n:], ["c0"] * extra)  # "c0" may be a new class: make it exist before
    if "c0" not in before[0]:
        clf.remove_class("c0")
    else:
        for i in np.random.default_rng(seed).permutation(ids):
            clf.remove(int(i))
    after = contents(clf)
    assert after[:3] == before[:3] and after[4] == before[4]
    np.testing.assert_array_equal(after[3], before[3])
    for p, q in zip(predictions, (clf.predict(q) for q in queries), strict=True):
        same_prediction(p, q)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    n_classes=st.integers(1, 6),
    k=st.integers(1, 50),
    threshold=st.none() | st.floats(-1, 1),
)
def test_confidences_sum_to_one_and_agree_with_batches(seed, n, n_classes, k, threshold):
    emb, labels, queries = random_set(seed, n, n_classes)
    clf = KNNClassifier(k=k, unknown_threshold=threshold)
    clf.add_many(emb, labels)
    proba = clf.predict_proba(queries)
    many = clf.predict_many(queries)
    assert proba.shape == (len(queries), len(clf.classes))
    for q, row, batch in zip(queries, proba, many, strict=True):
        p = clf.predict(q)
        same_prediction(p, batch)
        assert list(p.confidences) == clf.classes
        assert sum(p.confidences.values()) == pytest.approx(1)
        np.testing.assert_allclose(row, list(p.confidences.values()), atol=FLOAT32_DOT)
        assert len(p.neighbors) == min(k, n)  # k clipped to the number of examples
        assert p.unknown == (threshold is not None and p.similarity < threshold)
        if not p.unknown:  # the answer is the class with the most confidence
            assert p.confidences[p.label] == pytest.approx(max(p.confidences.values()), abs=1e-5)


# ------------------------------------------------------------------ caps, unknown, k
def test_cap_per_class_with_clear_error_and_all_or_nothing_batches():
    clf = KNNClassifier(max_examples_per_class=2)
    clf.add(at_similarity(0.1, 1), "a")
    clf.add(at_similarity(0.2, 2), "a")
    with pytest.raises(ClassifierError, match=r"'a' has 2 examples and the limit is 2"):
        clf.add(at_similarity(0.3, 3), "a")
    with pytest.raises(ClassifierError, match="limit"):
        clf.add_many(np.stack([at_similarity(0.3, 3)] * 3), ["b", "b", "b"])
    assert clf.counts() == {"a": 2} and len(clf) == 2  # the failed batch made no class "b"
    clf.max_examples_per_class = 3
    clf.add(at_similarity(0.3, 3), "a")
    assert clf.counts() == {"a": 3}
    assert KNNClassifier().max_examples_per_class == 1000


def test_unknown_threshold():
    clf = KNNClassifier(k=1, unknown_threshold=0.7)
    clf.add(at_similarity(0.6, 1), "a")
    p = clf.predict(unit((0, 1)))
    assert p.unknown and p.label is None
    assert p.similarity == pytest.approx(0.6, abs=1e-6) and p.confidences == {"a": 1.0}
    clf.unknown_threshold = 0.5
    assert clf.predict(unit((0, 1))).label == "a"
    clf.unknown_threshold = None
    assert clf.predict(unit((1, 1))).label == "a"
    with pytest.raises(ClassifierError, match="-1..1"):
        clf.unknown_threshold = 1.5
    with pytest.raises(ClassifierError, match="-1..1"):
        clf.unknown_threshold = float("nan")


def test_k_clipped_and_validated():
    clf = KNNClassifier(k=10)
    clf.add(at_similarity(0.9, 1), "a")
    clf.add(at_similarity(0.8, 2), "b")
    p = clf.predict(unit((0, 1)))
    assert len(p.neighbors) == 2 and p.label == "a"
    clf.k = 1
    assert clf.predict(unit((0, 1))).confidences == {"a": 1.0, "b": 0.0}
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ClassifierError, match="k must be"):
            clf.k = bad


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda c: c.add(np.ones(D + 1), "a"), "17 values but the classifier holds 16"),
        (lambda c: c.predict(np.ones(8)), "8 values but the classifier holds 16"),
        (lambda c: c.predict_proba(np.ones(D)), "2-D array"),
        (lambda c: c.predict_many(np.ones((2, 3, D))), "2-D array"),
        (lambda c: c.predict(np.ones((2, D))), "one embedding"),
        (lambda c: c.add(np.ones(D), ""), "cannot be empty"),
        (lambda c: c.add(np.ones(D), "   "), "cannot be empty"),
        (lambda c: c.add(np.ones(D), 3), "must be text"),
        (lambda c: c.add(np.ones(D), "a\x00"), "control characters"),
        (lambda c: c.add_class("two\nlines"), "control characters"),
        (lambda c: c.add(np.full(D, np.nan), "a"), "NaN"),
        (lambda c: c.add(np.zeros(D), "a"), "all zeros"),
        (lambda c: c.add(np.ones(D), "a", image="x.jpg"), "JPEG bytes"),
        (lambda c: c.add_class("a"), "already exists"),
        (lambda c: c.remove(12345), "no example with id 12345"),
        (lambda c: c.remove_class("nope"), "no class named 'nope'"),
        (lambda c: c.rename_class("a", "b"), "already exists"),
        (lambda c: c.add_many(np.ones((2, D)), ["a"]), "one embedding per vector"),
        (lambda c: c.examples("nope"), "no class"),
    ],
)
def test_errors_say_what_is_wrong(call, words):
    clf = KNNClassifier()
    clf.add(np.ones(D), "a")
    clf.add_class("b")
    before = contents(clf)
    with pytest.raises(ClassifierError, match=words):
        call(clf)
    assert isinstance(ClassifierError("x"), ValueError)
    after = contents(clf)
    assert after[:3] == before[:3]


# ------------------------------------------------------------------ editing
def test_rename_remove_clear():
    clf = KNNClassifier(k=1)
    similarities = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    ids = {name: clf.add(at_similarity(s, axis), name) for axis, (name, s) in enumerate(similarities, 1)}
    extra = clf.add(at_similarity(0.95, 4), "c")
    assert clf.predict(unit((0, 1))).label == "c"

    clf.rename_class("c", "sea")
    assert clf.classes == ["a", "b", "sea"] and clf.counts() == {"a": 1, "b": 1, "sea": 2}
    assert clf.predict(unit((0, 1))).label == "sea"
    clf.rename_class("sea", "sea")  # no-op

    clf.remove(extra)
    assert clf.predict(unit((0, 1))).label == "a"
    with pytest.raises(ClassifierError):
        clf.remove(extra)

    clf.remove_class("a")  # later classes move up; their examples keep their labels
    assert clf.classes == ["b", "sea"] and clf.counts() == {"b": 1, "sea": 1}
    p = clf.predict(unit((0, 1)))
    assert p.label == "b" and p.neighbors[0].example_id == ids["b"]
    assert [e.label for e in clf.examples()] == ["b", "sea"]

    clf.clear_class("b")
    assert clf.classes == ["b", "sea"] and clf.counts() == {"b": 0, "sea": 1}
    assert clf.predict(unit((0, 1))).label == "sea"

    clf.clear()
    assert clf.classes == [] and len(clf) == 0 and clf.dim is None
    clf.add(np.ones(3), "new size")  # an empty classifier takes any embedding size
    assert clf.dim == 3 and clf.k == 1


def test_ids_never_reused_and_listings_in_insertion_order():
    clf = KNNClassifier()
    first = clf.add_many(np.eye(D)[:5], ["a", "b", "a", "b", "a"], [b"\xff\xd81", None, b"\xff\xd83", None, b""])
    clf.remove(first[1])
    later = clf.add(np.eye(D)[6], "b")
    assert later not in first
    examples = clf.examples()
    assert [e.example_id for e in examples] == [first[0], first[2], first[3], first[4], later]
    assert [e.image for e in examples] == [b"\xff\xd81", b"\xff\xd83", None, None, None]
    emb, labels, ids = clf.embeddings()
    assert ids == [e.example_id for e in examples] and labels == ["a", "a", "b", "a", "b"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-6)
    again = KNNClassifier()
    again.add_many(emb, labels)
    np.testing.assert_array_equal(again.embeddings()[0], emb)  # normalising is idempotent


def test_extreme_but_valid_embeddings_are_normalised():
    clf = KNNClassifier()
    clf.add_many(np.array([[1e200, 1e200], [1e-200, 0.0], [3.0, 4.0]]), ["huge", "tiny", "plain"])
    emb, _, _ = clf.embeddings()
    np.testing.assert_allclose(emb, [[0.5**0.5, 0.5**0.5], [1, 0], [0.6, 0.8]], rtol=1e-6)


def test_store_grows_by_doubling_and_copy_is_independent():
    store = EmbeddingStore()
    rng = np.random.default_rng(0)
    capacities = set()
    for i in range(300):
        store.append(normalise(rng.standard_normal((1, D)), None), np.array([i % 2], np.int32), [None])
        capacities.add(store.capacity)
    assert sorted(capacities) == [64, 128, 256, 512]
    clf = KNNClassifier(max_examples_per_class=5000)
    for i in range(300):
        clf.add(rng.standard_normal(D), "a" if i % 2 else "b")
    twin = clf.copy()
    twin.remove_class("a")
    twin.k = 7
    assert clf.counts() == {"b": 150, "a": 150} and clf.k == 3
    assert twin.counts() == {"b": 150}


# ------------------------------------------------------------------ evaluate
def test_evaluate_known_confusion_matrix():
    # k=1 leave-one-out, worked out by hand (see the similarities in the comments).
    clf = KNNClassifier(k=1)
    clf.add(unit((0, 1)), "A")  # a1: nearest other is c1 (0.9988) -> C, wrong
    clf.add(unit((0, 1), (2, 0.1)), "A")  # a2: nearest a1 (0.995) -> A
    clf.add(unit((1, 1)), "B")  # b1 -> b2 -> B
    clf.add(unit((1, 1), (2, 0.1)), "B")  # b2 -> b1 -> B
    clf.add(unit((0, 1), (3, 0.05)), "C")  # c1: nearest a1 -> A, wrong
    clf.add_class("D")
    ev = leave_one_out(clf)
    assert ev.classes == ["A", "B", "C", "D"] and ev.n == 5
    assert ev.confusion.tolist() == [[1, 0, 1, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert ev.accuracy == pytest.approx(3 / 5)
    assert ev.per_class["A"] == 0.5 and ev.per_class["B"] == 1.0 and ev.per_class["C"] == 0.0
    assert math.isnan(ev.per_class["D"])


def test_evaluate_small():
    clf = KNNClassifier()
    assert math.isnan(leave_one_out(clf).accuracy)
    clf.add(np.ones(D), "a")
    ev = leave_one_out(clf)
    assert math.isnan(ev.accuracy) and ev.n == 1 and ev.confusion.tolist() == [[0]]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30), k=st.integers(1, 6))
def test_evaluate_equals_removing_each_example_and_predicting(seed, n, k):
    emb, labels, _ = random_set(seed, n, 3)
    clf = KNNClassifier(k=k)
    ids = clf.add_many(emb, labels)
    ev = leave_one_out(clf)
    expected = np.zeros_like(ev.confusion)
    for i, example_id in enumerate(ids):
        other = clf.copy()
        other.remove(example_id)
        predicted = other.predict(emb[i]).label
        expected[clf.classes.index(labels[i]), clf.classes.index(predicted)] += 1
    np.testing.assert_array_equal(ev.confusion, expected)


# ------------------------------------------------------------------ threads
def test_predicting_thread_while_another_adds_and_removes():
    clf = KNNClassifier(k=3, max_examples_per_class=10_000)
    rng = np.random.default_rng(0)
    base = unit((0, 1), dim=64)
    clf.add(base, "anchor")  # never removed: the answer for `base` is always "anchor"
    clf.add(unit((1, 1), dim=64), "renamed")
    errors: list[BaseException] = []
    stop = threading.Event()
    seen = []

    def predict_loop():
        try:
            while not stop.is_set():
                p = clf.predict(base)
                sims = [n.similarity for n in p.neighbors]
                assert p.label == "anchor" and p.similarity == pytest.approx(1, abs=1e-5)
                assert sims == sorted(sims, reverse=True) and 1 <= len(sims) <= 3
                assert sum(p.confidences.values()) == pytest.approx(1)
                seen.append(len(p.confidences))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    thread = threading.Thread(target=predict_loop)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        ids: list[int] = []
        while time.monotonic() < deadline and not errors:
            noise = rng.standard_normal((20, 64)).astype(np.float32)
            noise[:, 0] = 0  # orthogonal-ish to base, so they never outvote the anchor
            ids += clf.add_many(noise, [f"n{i % 3}" for i in range(20)])
            for i in rng.permutation(ids)[: len(ids) // 2]:
                clf.remove(int(i))
                ids.remove(int(i))
            if rng.random() < 0.2:
                clf.clear_class("n0")
                ids = [e.example_id for e in clf.examples() if e.label.startswith("n")]
            if rng.random() < 0.1:
                old = "renamed" if "renamed" in clf.classes else "renamed again"
                clf.rename_class(old, "renamed again" if old == "renamed" else "renamed")
            leave_one_out(clf)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    assert len(seen) > 10


# ------------------------------------------------------------------ real photos
def test_real_photos_few_shot(rps_dir: Path, embedder):
    """5 examples per class from the first half of each class's photos, queries from the second.

    Also one example per class with k=3: the case the TF.js voting answers with the first class.
    """
    from knn.core.evaluation import few_shot_split
    from knn.core.image_folders import class_folders
    from knn.core.images import read_image

    five, one = KNNClassifier(k=3), KNNClassifier(k=3)
    queries, truth = [], []
    for name, files in class_folders(rps_dir).items():
        examples, tests = few_shot_split(files, shots=5, max_queries=15)
        emb = embedder.embed([read_image(f) for f in examples])
        five.add_many(emb, [name] * len(examples))
        one.add(emb[0], name)
        queries += [read_image(f) for f in tests]
        truth += [name] * len(tests)
    query_emb = embedder.embed(queries)
    assert five.classes == ["paper", "rock", "scissors"]
    for clf in (five, one):
        predicted = [p.label for p in clf.predict_many(query_emb)]
        accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
        assert accuracy >= 0.7, f"{len(clf)} examples: accuracy {accuracy:.2f} (chance is 0.33)"
    ev = leave_one_out(five)  # leave-one-out on the 15 examples
    assert ev.n == 15 and ev.confusion.sum() == 15 and ev.accuracy >= 0.6


def test_label_of_follows_an_example_through_move_and_remove():
    clf = KNNClassifier()
    first = clf.add(np.ones(4), "a")
    assert clf.label_of(first) == "a" and clf.label_of(first + 1) is None and clf.label_of("x") is None
    clf.move(first, "b")
    assert clf.label_of(first) == "b"
    clf.remove(first)
    assert clf.label_of(first) is None


@pytest.mark.parametrize("bad", [True, False, np.True_, 1.0, "1", None])
def test_an_example_id_is_a_whole_number_never_a_bool(bad):
    clf = KNNClassifier()
    ids = [clf.add(unit((0, 1.0)), "a"), clf.add(unit((1, 1.0)), "a")]
    assert ids == [0, 1]  # so True and False would name real examples if taken as ids
    with pytest.raises(ClassifierError, match="an example id is a whole number"):
        clf.remove(bad)
    with pytest.raises(ClassifierError, match="an example id is a whole number"):
        clf.move(bad, "b")
    assert clf.label_of(bad) is None
    assert [e.example_id for e in clf.examples()] == ids and clf.classes == ["a"]
    clf.move(np.int64(1), "b")  # NumPy's integers are ids
    clf.remove(np.int32(0))
    assert [(e.example_id, e.label) for e in clf.examples()] == [(1, "b")]
