"""knn.core.neighbors: each example's nearest others, in chunks and kept up to date incrementally."""

from __future__ import annotations

import numpy as np
import pytest

import knn.core.neighbors as neighbors_module
from knn.core.classifier import KNNClassifier
from knn.core.evaluation import leave_one_out
from knn.core.neighbors import NearestOthers, nearest_others


def _classifier(n: int = 60, dim: int = 16, seed: int = 0, augmented: bool = True) -> KNNClassifier:
    """Examples around four centres; with `augmented`, some hold 2-3 vectors (as augmentation makes)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, dim))
    clf = KNNClassifier(k=3)
    for i in range(n):
        v = 1 + (i % 3 if augmented else 0)
        vectors = centres[i % 4] + 0.9 * rng.standard_normal((v, dim))
        clf.add_many(vectors, [f"c{i % 4}"], vectors=[v])
    return clf


def _brute_force(clf: KNNClassifier, m: int) -> tuple[list[list[int]], list[list[float]]]:
    """Each example's m nearest others by plain loops: own embedding against each other's best vector."""
    state = clf.state()
    counts = state.vector_counts()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    groups = [state.embeddings[s : s + c] for s, c in zip(starts, counts, strict=True)]
    index, sims = [], []
    for i, g in enumerate(groups):
        scored = sorted(((-float((other @ g[0]).max()), j) for j, other in enumerate(groups) if j != i))[:m]
        index.append([j for _, j in scored])
        sims.append([-s for s, _ in scored])
    return index, sims


def _same(found, expected_index, expected_sims) -> None:
    np.testing.assert_allclose(found.sims, np.asarray(expected_sims, np.float32), rtol=0, atol=1e-5)
    assert found.index.tolist() == expected_index


def test_nearest_others_match_a_brute_force_search_in_any_block_size(monkeypatch):
    clf = _classifier()
    index, sims = _brute_force(clf, 5)
    _same(nearest_others(clf.state(), 5), index, sims)
    monkeypatch.setattr(neighbors_module, "BLOCK_FLOATS", 7 * len(clf.state().embeddings))  # 7 rows a block
    _same(nearest_others(clf.state(), 5), index, sims)


def test_fewer_examples_than_neighbors_asked_for():
    clf = _classifier(n=3, augmented=False)
    found = nearest_others(clf.state(), 5)
    assert found.width == 2 and sorted(found.index[0].tolist()) == [1, 2]
    assert nearest_others(_classifier(n=1).state(), 5).width == 0


def test_updates_after_adds_removes_and_moves_equal_a_fresh_search():
    clf = _classifier(n=80)
    kept = NearestOthers(6)
    kept.update(clf.state())
    assert kept.last_full
    rng = np.random.default_rng(7)
    ids = [e.example_id for e in clf.examples()]
    steps = [
        lambda: clf.add(rng.standard_normal(16), "c1"),  # one Add
        lambda: clf.add_many(rng.standard_normal((5, 16)), ["c2"] * 5),  # a few Record frames
        lambda: clf.remove(ids[3]),  # a delete: rows that had it among their nearest are searched again
        lambda: [clf.remove(i) for i in ids[10:14]],
        lambda: clf.move(ids[20], "c3"),  # a move changes labels only
        lambda: clf.add_many(rng.standard_normal((4, 16)), ["c0", "c1"], vectors=[3, 1]),  # augmented
    ]
    for step in steps:
        step()
        found = kept.update(clf.state())
        assert not kept.last_full
        index, sims = _brute_force(clf, 6)
        _same(found, index, sims)


def test_many_new_examples_or_another_embedding_size_start_afresh():
    clf = _classifier(n=10)
    kept = NearestOthers(3)
    kept.update(clf.state())
    clf.add_many(np.random.default_rng(1).standard_normal((20, 16)), ["c0"] * 20)
    kept.update(clf.state())
    assert kept.last_full  # more than half are new: one full pass is cheaper
    other = _classifier(n=10, dim=8)
    _same(kept.update(other.state()), *_brute_force(other, 3))
    assert kept.last_full


def test_leave_one_out_votes_over_the_k_nearest_others():
    clf = _classifier(n=40, augmented=False)
    clf.k = 1
    index, _ = _brute_force(clf, 1)
    labels = clf.state().labels
    expected = np.mean([labels[i] == labels[row[0]] for i, row in enumerate(index)])
    assert leave_one_out(clf).accuracy == pytest.approx(expected)
