"""Rolling live-video statistics: timings (p50/p95), frame rates and dropped frames.

Recording happens once per video frame on the WebRTC worker thread, so it only writes into
preallocated NumPy ring buffers (no allocation per frame). Summaries are computed on demand by
the page, a few times a second. Not thread-safe by itself: the owner (LiveSession) serialises
calls with its lock.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np


class Ring:
    """The last `size` float values, oldest overwritten first."""

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ValueError(f"ring size must be at least 1, got {size}")
        self._values = np.zeros(size, dtype=np.float64)
        self._count = 0  # total ever recorded; the slot is count % size

    def record(self, value: float) -> None:
        self._values[self._count % self._values.size] = value
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, self._values.size)

    def values(self) -> np.ndarray:
        """A copy of the stored values, in no particular order."""
        return self._values[: len(self)].copy()

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Percentiles of the stored values (nan for each when empty)."""
        if not len(self):
            return tuple(math.nan for _ in qs)
        return tuple(float(v) for v in np.percentile(self._values[: len(self)], qs))

    def clear(self) -> None:
        self._count = 0


class RateMeter:
    """Events per second over a sliding window of time, from a ring of event timestamps.

    The ring must hold more events than one window brings (256 over 2 s covers 128 fps).
    """

    def __init__(self, window: float = 2.0, size: int = 256) -> None:
        self.window = window
        self._times = Ring(size)
        self._first: float | None = None

    def tick(self, now: float, n: int = 1) -> None:
        if self._first is None:
            self._first = now
        for _ in range(n):
            self._times.record(now)

    def rate(self, now: float) -> float:
        if self._first is None:
            return 0.0
        times = self._times.values()
        recent = int(np.count_nonzero(times > now - self.window))
        # Until a whole window has passed, divide by the time actually covered (at least one
        # 30 fps frame gap, so the very first frame does not read as thousands per second).
        span = min(self.window, max(now - self._first, 1.0 / 30.0))
        return recent / span


@dataclass(frozen=True)
class StatsSummary:
    frames_received: int
    frames_processed: int
    frames_dropped: int
    received_fps: float
    processed_fps: float
    embed_ms_p50: float
    embed_ms_p95: float
    knn_ms_p50: float
    knn_ms_p95: float


class Stats:
    """Counters and rolling timings for one live video session."""

    def __init__(self, size: int = 256, window: float = 2.0) -> None:
        self._embed_ms = Ring(size)
        self._knn_ms = Ring(size)
        self._received = RateMeter(window, size)
        self._processed = RateMeter(window, size)
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0

    def record_received(self, n: int = 1, now: float | None = None) -> None:
        """`n` frames arrived from the camera (processed or not)."""
        self.frames_received += n
        self._received.tick(time.monotonic() if now is None else now, n)

    def record_dropped(self, n: int = 1) -> None:
        """`n` frames were skipped because a newer frame was already waiting."""
        self.frames_dropped += n

    def record_processed(self, embed_seconds: float, knn_seconds: float, now: float | None = None) -> None:
        """One frame was embedded and classified, taking these times."""
        self.frames_processed += 1
        self._processed.tick(time.monotonic() if now is None else now)
        self._embed_ms.record(embed_seconds * 1000.0)
        self._knn_ms.record(knn_seconds * 1000.0)

    def summary(self, now: float | None = None) -> StatsSummary:
        now = time.monotonic() if now is None else now
        e50, e95 = self._embed_ms.percentiles(50, 95)
        k50, k95 = self._knn_ms.percentiles(50, 95)
        return StatsSummary(
            frames_received=self.frames_received,
            frames_processed=self.frames_processed,
            frames_dropped=self.frames_dropped,
            received_fps=self._received.rate(now),
            processed_fps=self._processed.rate(now),
            embed_ms_p50=e50,
            embed_ms_p95=e95,
            knn_ms_p50=k50,
            knn_ms_p95=k95,
        )

    def reset_timings(self) -> None:
        """Forget timings (e.g. after a backbone switch, whose embed time differs)."""
        self._embed_ms.clear()
        self._knn_ms.clear()
