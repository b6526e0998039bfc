"""Rolling live-video statistics: timings (p50/p95), frame rates, dropped frames and latency.

A camera frame is received, then either embedded by the model (processed: a fresh answer),
answered with the last answer because the scene is still (reused, knn.live.steady), replaced
while waiting for the model (dropped), or, rarely, replaced by a newer result before the encoder
took it. Answered frames are the results the encoder took: what the user sees.

Recording happens once per video frame, so it only writes into preallocated NumPy ring buffers
(the answers' log keeps one small tuple per frame, bounded). Summaries are computed on demand by
the page, a few times a second. Not thread-safe by itself: the owner (FramePipeline) serialises
calls with its lock.
"""

from __future__ import annotations

import math
import time
from collections import deque
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

    def last(self, n: int) -> np.ndarray:
        """The newest `n` values (at most the stored ones), oldest first."""
        n = min(n, len(self))
        if n <= 0:
            return np.empty(0)
        end = self._count % self._values.size
        idx = np.arange(end - n, end) % self._values.size
        return self._values[idx]

    @property
    def total(self) -> int:
        """Values ever recorded (cleared rings start again at 0)."""
        return self._count

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


class CaptureClock:
    """Maps a camera's capture timestamps onto this process's clock, for capture-to-overlay latency.

    A WebRTC frame carries its capture time (`frame.time`: the RTP timestamp in seconds) on the
    sender's clock, with a random origin. `arrived(capture, arrival)` is told when each frame
    reached the callback; the clock keeps the smallest `arrival - capture` of the stream as the
    offset between the two clocks, i.e. it assumes the quickest frame of the stream waited for
    nothing. `latency(capture, done)` is then `done - (capture + offset)`: the time a frame
    spent waiting in queues behind other frames plus its own processing, and any transport delay
    beyond the quickest frame's. One offset for the whole stream, so a growing backlog shows as
    growing latency. A jump in the timestamps (the camera restarted, or the RTP clock wrapped)
    starts a new stream.
    """

    def __init__(self, restart_gap: float = 2.0) -> None:
        self.restart_gap = restart_gap
        self._offset: float | None = None
        self._last: tuple[float, float] | None = None

    def arrived(self, capture: float, arrival: float) -> None:
        last = self._last
        if last is not None:
            jump = (capture - last[0]) - (arrival - last[1])
            if capture < last[0] or jump > self.restart_gap:
                self._offset = None  # a new stream: its timestamps have another origin
        offset = arrival - capture
        if self._offset is None or offset < self._offset:
            self._offset = offset
        self._last = (capture, arrival)

    def aligned(self, capture: float) -> float | None:
        """The capture time on this process's clock; None before any arrival."""
        return None if self._offset is None else capture + self._offset

    def latency(self, capture: float, done: float) -> float | None:
        """Seconds from the frame's (aligned) capture to `done`; None before any arrival."""
        if self._offset is None:
            return None
        return done - (capture + self._offset)


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
    latency_ms_p50: float = math.nan  # capture-to-overlay (see CaptureClock), last `size` frames
    latency_ms_p95: float = math.nan
    frames_reused: int = 0  # answered with the last answer: the scene was still
    frames_answered: int = 0  # results the encoder took (fresh or reused)
    reused_fps: float = 0.0
    answered_fps: float = 0.0


AnsweredFrame = tuple[float, float, bool, "str | None", "float | None"]
"""One answered frame: (capture time, sent time) on this process's monotonic clock, fresh (from
the model) or reused, the predicted class (None: unknown, no examples, or no prediction), and the
capture time of the frame the model saw for it (its own when fresh)."""


class Stats:
    """Counters and rolling timings for one live video session."""

    def __init__(self, size: int = 256, window: float = 2.0) -> None:
        self._embed_ms = Ring(size)
        self._knn_ms = Ring(size)
        self._latency_ms = Ring(size)
        self._received = RateMeter(window, size)
        self._processed = RateMeter(window, size)
        self._reused = RateMeter(window, size)
        self._answered = RateMeter(window, size)
        self._answers: deque[AnsweredFrame] = deque(maxlen=size)
        self.answers_logged = 0
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_reused = 0
        self.frames_answered = 0

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

    def record_reused(self, now: float | None = None) -> None:
        """One frame was answered with the last answer (a still scene)."""
        self.frames_reused += 1
        self._reused.tick(time.monotonic() if now is None else now)

    def record_answered(
        self, now: float, capture: float | None, fresh: bool, label: str | None, source: float | None = None
    ) -> None:
        """The encoder took a result at `now`; `capture` is its frame's capture time on this
        process's clock when known (then its latency is recorded too), `source` that of the frame
        the model saw for it."""
        self.frames_answered += 1
        self._answered.tick(now)
        if capture is not None:
            self._latency_ms.record((now - capture) * 1000.0)
            self._answers.append((capture, now, fresh, label, source))
            self.answers_logged += 1

    def record_latency(self, seconds: float) -> None:
        """An answered frame's capture-to-overlay latency."""
        self._latency_ms.record(seconds * 1000.0)

    def answers_since(self, count: int) -> tuple[list[AnsweredFrame], int]:
        """The answers logged (those with a capture time) after the first `count`, oldest first,
        and how many of them the bounded log no longer holds."""
        new = max(0, self.answers_logged - count)
        kept = list(self._answers)[-new:] if new else []
        return kept, new - len(kept)

    @property
    def latencies_recorded(self) -> int:
        return self._latency_ms.total

    def latencies_since(self, count: int) -> tuple[np.ndarray, int]:
        """Latencies (ms) recorded after the first `count`, oldest first, and how many were lost.

        The ring keeps the last `size` values: a reader that comes back less often than that
        many frames misses the older ones, and is told how many.
        """
        new = max(0, self._latency_ms.total - count)
        values = self._latency_ms.last(new)
        return values, new - len(values)

    def summary(self, now: float | None = None) -> StatsSummary:
        now = time.monotonic() if now is None else now
        e50, e95 = self._embed_ms.percentiles(50, 95)
        k50, k95 = self._knn_ms.percentiles(50, 95)
        l50, l95 = self._latency_ms.percentiles(50, 95)
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
            latency_ms_p50=l50,
            latency_ms_p95=l95,
            frames_reused=self.frames_reused,
            frames_answered=self.frames_answered,
            reused_fps=self._reused.rate(now),
            answered_fps=self._answered.rate(now),
        )

    def reset_timings(self) -> None:
        """Forget timings (e.g. after a backbone switch, whose embed time differs)."""
        self._embed_ms.clear()
        self._knn_ms.clear()
