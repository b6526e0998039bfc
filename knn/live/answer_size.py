"""How big the captioned video sent back is: the camera's size, or half of it while the process is busy.

A captioned frame's VP8 encode is the server's largest cost per answered frame, about four times
smaller at half width and height (`python bench/overlay.py`), and the browser's decode
of it shrinks alike. While more than `CAMERAS_PER_CORE` cameras per core stream to this process,
answers go back at half size, as Chromium's own encoder lowers its resolution when its CPU is
short. The model still sees the whole camera frame; only the picture sent back is smaller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..model.embedder import cores as process_cores

CAMERAS_PER_CORE = 2
"""Streaming cameras per core up to which answers keep the camera's size (docs/scaling.md)."""
CHECK_SECONDS = 1.0
"""How often the count of streaming cameras is taken again (it walks every session)."""


class AnswerSize:
    """Whether answers go back at half size now: `halved()`, cheap enough to ask per frame."""

    def __init__(
        self,
        streaming_cameras: Callable[[], int],
        cores: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = streaming_cameras
        self._cores = cores or process_cores()
        self.limit: float = CAMERAS_PER_CORE * self._cores
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self.cameras = 0
        """Streaming cameras at the last check."""

    def set_cameras_per_core(self, cameras: float) -> None:
        """The operator's KNN_CAMERAS_PER_CORE; 0: answers always keep the camera's size."""
        self.limit = cameras * self._cores if cameras > 0 else float("inf")

    def halved(self) -> bool:
        now = self._clock()
        if now - self._checked >= CHECK_SECONDS:
            with self._lock:
                if now - self._checked >= CHECK_SECONDS:
                    self.cameras, self._checked = self._count(), now
        return self.cameras > self.limit
