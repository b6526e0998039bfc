"""A slow computation the page asked for, run on the analysis thread (knn.live.analysis) so the
page's thread never waits for it: the page polls its progress, then reads its result."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from .analysis import ANALYSIS_POOL

T = TypeVar("T")


class Job(Generic[T]):
    """`work(progress)` on `pool`; `progress(fraction)` is what the page's bar shows."""

    def __init__(self, work: Callable[[Callable[[float], None]], T], pool: ThreadPoolExecutor = ANALYSIS_POOL) -> None:
        self.fraction = 0.0
        self._future = pool.submit(work, self._progress)

    def _progress(self, fraction: float) -> None:
        self.fraction = min(1.0, max(0.0, fraction))

    @property
    def done(self) -> bool:
        return self._future.done()

    def result(self) -> T:
        """The work's result (waits for it); raises what the work raised."""
        return self._future.result()
