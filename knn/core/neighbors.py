"""Each stored example's nearest other examples: the ground leave-one-out and the coach stand on.

An example is as similar to another as its own embedding is to the other's most similar vector
(the rule `KNNClassifier.predict` applies to a query), so neighbors are found with the example's
own embedding against every stored vector. Equal similarities go to the earlier example (lower
id), as everywhere else.

Memory stays linear in the number of examples: similarities are computed a block of rows at a
time (at most `BLOCK_FLOATS` of them) and only each row's m nearest are kept, so no N x N matrix
exists even for thousands of examples. `NearestOthers` keeps the answer between calls and, when
examples were only added or removed since, recomputes only what changed: an Add among 5,000
examples costs one row and one column, not a full pass (bench/coach.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .classifier import ClassifierState

BLOCK_FLOATS = 1 << 20
"""Similarities per matrix product (4 MB of float32, plus their selection's indices): bounds the
transient memory of a pass."""


@dataclass(frozen=True)
class Neighbors:
    """The m nearest other examples of each example of a state, most similar first.

    Attributes:
        index: int64 [N, m], positions in the state's example order; -1 where an example has fewer
            than m others.
        sims: float32 [N, m], their similarities (-inf where `index` is -1).
    """

    index: np.ndarray
    sims: np.ndarray

    @property
    def width(self) -> int:
        return int(self.index.shape[1])


def example_ids(state: ClassifierState) -> np.ndarray:
    """The state's example ids (0..N-1 for a state made without them)."""
    return np.arange(len(state.labels), dtype=np.int64) if state.ids is None else np.asarray(state.ids, np.int64)


class _Layout:
    """Where each example's vectors are in a state's embedding matrix."""

    def __init__(self, state: ClassifierState) -> None:
        self.counts = state.vector_counts()
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.vectors = state.embeddings
        self.own = state.own_embeddings()
        self.grouped = bool((self.counts > 1).any())
        self.ids = example_ids(state)

    def __len__(self) -> int:
        return len(self.counts)

    def rows_of(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the vector rows of these examples, the start of each one's rows within them)."""
        counts = self.counts[examples]
        rows = (
            np.concatenate([np.arange(s, s + c) for s, c in zip(self.starts[examples], counts, strict=True)])
            if len(examples)
            else np.zeros(0, np.int64)
        )
        return rows, np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _similarities(
    layout: _Layout, queries: np.ndarray, targets: np.ndarray | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (query positions, sims [b, T]) of these examples' own embeddings against the
    targets' best vectors (all examples when `targets` is None)."""
    if targets is None:
        vectors, starts, grouped = layout.vectors, layout.starts, layout.grouped
    else:
        rows, starts = layout.rows_of(targets)
        vectors, grouped = layout.vectors[rows], bool((layout.counts[targets] > 1).any())
    step = max(1, min(len(queries), BLOCK_FLOATS // max(len(vectors), 1)))
    for begin in range(0, len(queries), step):
        block = queries[begin : begin + step]
        sims = layout.own[block] @ vectors.T
        if grouped and len(starts):
            sims = np.maximum.reduceat(sims, starts, axis=1)
        yield block, sims


def _top(sims: np.ndarray, cand_ids: np.ndarray, cand_pos: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the m best candidates (most similar first, equal ones by id), padded with -1/-inf.

    `cand_ids` / `cand_pos` give each column's example id and position: [T] shared or [b, T] per row.
    """
    b, t = sims.shape
    if m == 0:
        return np.zeros((b, 0), np.int64), np.zeros((b, 0), np.float32)
    if t > m:
        part = np.argpartition(sims, t - m, axis=1)[:, t - m :]
        sims = np.take_along_axis(sims, part, axis=1)
        cand_ids = cand_ids[part] if cand_ids.ndim == 1 else np.take_along_axis(cand_ids, part, axis=1)
        cand_pos = cand_pos[part] if cand_pos.ndim == 1 else np.take_along_axis(cand_pos, part, axis=1)
    else:
        cand_ids = np.broadcast_to(cand_ids, (b, t)) if cand_ids.ndim == 1 else cand_ids
        cand_pos = np.broadcast_to(cand_pos, (b, t)) if cand_pos.ndim == 1 else cand_pos
    # Missing (-inf) entries carry id -1: pushed last by their similarity already.
    order = np.lexsort((cand_ids, -sims.astype(np.float64)), axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    pos = np.take_along_axis(cand_pos, order, axis=1)
    width = sims.shape[1]
    if width < m:
        sims = np.concatenate([sims, np.full((b, m - width), -np.inf, sims.dtype)], axis=1)
        pos = np.concatenate([pos, np.full((b, m - width), -1, pos.dtype)], axis=1)
    pos = np.where(np.isneginf(sims), -1, pos)
    return pos.astype(np.int64), sims.astype(np.float32)


def _search(layout: _Layout, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The m nearest other examples of each query example, among all examples."""
    index = np.full((len(queries), m), -1, np.int64)
    sims_out = np.full((len(queries), m), -np.inf, np.float32)
    every = np.arange(len(layout), dtype=np.int64)
    done = 0
    for block, sims in _similarities(layout, queries, None):
        sims[np.arange(len(block)), block] = -np.inf  # not its own neighbor
        pos, top = _top(sims, layout.ids, every, m)
        index[done : done + len(block)], sims_out[done : done + len(block)] = pos, top
        done += len(block)
    return index, sims_out


def nearest_others(state: ClassifierState, m: int) -> Neighbors:
    """Every example's m nearest other examples (m is cut to N - 1), in one chunked pass."""
    layout = _Layout(state)
    m = max(0, min(m, len(layout) - 1))
    index, sims = _search(layout, np.arange(len(layout), dtype=np.int64), m)
    return Neighbors(index, sims)


@dataclass(frozen=True)
class _Previous:
    """The last update's answer, which the next one starts from."""

    ids: np.ndarray  # [N] the example ids of its state
    neighbor_ids: np.ndarray  # [N, m] each one's nearest others' ids, -1 padding
    sims: np.ndarray  # [N, m] their similarities
    dim: int | None


class NearestOthers:
    """`nearest_others` kept up to date for one classifier as its examples change.

    `update(state)` recomputes from scratch the first time, when the embedding size or m changes,
    or when more than half the examples are new; otherwise it searches only the new examples'
    rows, merges the new examples into everyone else's lists (a product with the new columns
    only), and searches again the rows that had a removed example among their nearest. Example
    ids must not be reused for other vectors (a classifier never does); use one instance per
    classifier.
    """

    def __init__(self, m: int) -> None:
        self.m = m
        self._previous: _Previous | None = None
        self.last_full = True  # whether the last update was a full pass (for benchmarks and tests)

    def update(self, state: ClassifierState) -> Neighbors:
        layout = _Layout(state)
        n = len(layout)
        width = max(0, min(self.m, n - 1))
        previous = self._previous if self._previous is not None and self._previous.dim == state.dim else None
        kept_mask = np.isin(layout.ids, previous.ids) if previous is not None else np.zeros(n, bool)
        if previous is None or (n - kept_mask.sum()) * 2 > n:
            self.last_full = True
            index, sims = _search(layout, np.arange(n, dtype=np.int64), self.m)
        else:
            self.last_full = False
            index, sims = self._incremental(layout, kept_mask, previous)
        neighbor_ids = np.where(index >= 0, layout.ids[np.maximum(index, 0)], -1)
        self._previous = _Previous(layout.ids.copy(), neighbor_ids, sims, state.dim)
        return Neighbors(index[:, :width], sims[:, :width])

    def _incremental(
        self, layout: _Layout, kept_mask: np.ndarray, previous: _Previous
    ) -> tuple[np.ndarray, np.ndarray]:
        m, n = self.m, len(layout)
        kept = np.flatnonzero(kept_mask)
        added = np.flatnonzero(~kept_mask)
        rows = _positions(previous.ids, layout.ids[kept])
        nbr_ids, nbr_sims = previous.neighbor_ids[rows], previous.sims[rows]
        gone = np.setdiff1d(previous.ids, layout.ids)
        dirty = np.isin(nbr_ids, gone).any(axis=1) if len(gone) else np.zeros(len(kept), bool)
        index = np.full((n, m), -1, np.int64)
        sims = np.full((n, m), -np.inf, np.float32)
        to_search = np.concatenate([added, kept[dirty]])
        if len(to_search):
            index[to_search], sims[to_search] = _search(layout, to_search, m)
        clean = np.flatnonzero(~dirty)
        old_pos = _positions(layout.ids, nbr_ids[clean])
        if len(added) == 0:
            index[kept[clean]], sims[kept[clean]] = old_pos, nbr_sims[clean]
            return index, sims
        done = 0
        for block, new in _similarities(layout, kept[clean], added):
            b = len(block)
            part = slice(done, done + b)
            cand_sims = np.concatenate([nbr_sims[clean][part], new], axis=1)
            cand_ids = np.concatenate(
                [nbr_ids[clean][part], np.broadcast_to(layout.ids[added], (b, len(added)))], axis=1
            )
            cand_pos = np.concatenate([old_pos[part], np.broadcast_to(added, (b, len(added)))], axis=1)
            index[block], sims[block] = _top(cand_sims, cand_ids, cand_pos, m)
            done += b
        return index, sims


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of `wanted` is in `ids` (any shape), -1 where it is not there."""
    order = np.argsort(ids, kind="stable")
    found = np.searchsorted(ids[order], wanted)
    found = np.minimum(found, max(len(ids) - 1, 0))
    if not len(ids):
        return np.full(np.shape(wanted), -1, np.int64)
    pos = order[found]
    return np.where(ids[pos] == wanted, pos, -1).astype(np.int64)
