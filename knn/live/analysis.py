"""What the stored examples say about themselves (leave-one-out), computed off the page's thread.

The page never runs leave-one-out itself: it asks `Analysis.latest()` for the last result and
whether it still describes the examples. A change of examples, classes or settings (the
classifier's `version`) queues one new computation on a single thread the process's sessions
share, so a click never waits for it and two sessions' analyses never compete with the video
for both cores at once.
"""
from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..core.classifier import KNNClassifier
from ..core.evaluation import Evaluation, leave_one_out

_LOG = logging.getLogger(__name__)

ANALYSIS_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knn-analysis")
"""One thread for every session's analyses: they queue rather than take a second core."""


@dataclass(frozen=True)
class Result:
    """An analysis of `classifier`'s examples as they were at its `version`."""

    version: int
    evaluation: Evaluation
    classifier: weakref.ref = field(repr=False)

    def describes(self, classifier: KNNClassifier) -> bool:
        return self.classifier() is classifier and self.version == classifier.version


class Analysis:
    """The latest analysis of one session's classifier, refreshed in the background."""

    def __init__(self, pool: ThreadPoolExecutor = ANALYSIS_POOL) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._result: Result | None = None
        self._pending: tuple[KNNClassifier, int] | None = None  # what the queued job will analyse
        self._running = False
        self.failure: str | None = None

    def latest(self, classifier: KNNClassifier) -> tuple[Result | None, bool]:
        """(the newest result, whether it describes `classifier` as it is now); queues a new
        analysis when it does not."""
        version = classifier.version
        with self._lock:
            result = self._result
            current = result is not None and result.describes(classifier)
            if not current:
                self._pending = (classifier, version)
                if not self._running:
                    self._running = True
                    self._pool.submit(self._run)
        return result, current

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._running = False
                    return
                classifier, version = self._pending
                self._pending = None
            try:
                evaluation = leave_one_out(classifier)  # works on a snapshot taken under its lock
            except Exception as exc:  # never leave the page waiting for a result that will not come
                _LOG.exception("analysing the examples failed")
                with self._lock:
                    self.failure = str(exc)
                continue
            with self._lock:
                if classifier.version == version:  # else a newer request is pending already
                    self._result = Result(version, evaluation, weakref.ref(classifier))
                    self.failure = None
