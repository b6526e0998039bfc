"""What the stored examples say about themselves (leave-one-out and the coach), computed off the
page's thread.

The page never analyses the examples itself: it asks `Analysis.latest()` for the last result and
whether it still describes the examples. A change of examples, classes or settings (the
classifier's `version`) queues one new computation on a single thread the process's sessions
share, so a click never waits for it and two sessions' analyses never compete with the video
for both cores at once. Each example's nearest others are kept between computations
(knn.core.neighbors.NearestOthers), so after an Add or a delete only what changed is searched.
"""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..core.classifier import KNNClassifier
from ..core.coach import Coaching, coach, neighbors_needed
from ..core.evaluation import Evaluation
from ..core.neighbors import NearestOthers

_LOG = logging.getLogger(__name__)

ANALYSIS_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knn-analysis")
"""One thread for every session's analyses: they queue rather than take a second core."""


@dataclass(frozen=True)
class Result:
    """An analysis of `classifier`'s examples as they were at its `version`."""

    version: int
    coaching: Coaching
    classifier: weakref.ref = field(repr=False)

    @property
    def evaluation(self) -> Evaluation:
        return self.coaching.evaluation

    def describes(self, classifier: KNNClassifier) -> bool:
        return self.classifier() is classifier and self.version == classifier.version


class Analysis:
    """The latest analysis of one session's classifier, refreshed in the background."""

    def __init__(self, pool: ThreadPoolExecutor = ANALYSIS_POOL) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._result: Result | None = None
        self._pending: tuple[KNNClassifier, int] | None = None  # what the queued job will analyse
        self._working: tuple[weakref.ref, int] | None = None  # what the running job analyses
        self._running = False
        self._index: tuple[weakref.ref, NearestOthers] | None = None  # used by the job's thread only
        self.failure: str | None = None

    def latest(self, classifier: KNNClassifier) -> tuple[Result | None, bool]:
        """(the newest result, whether it describes `classifier` as it is now); queues a new
        analysis when it does not and none is queued or running for it already."""
        version = classifier.version
        with self._lock:
            result = self._result
            current = result is not None and result.describes(classifier)
            working = self._working is not None and self._working[0]() is classifier and self._working[1] == version
            if not current and not working:
                self._pending = (classifier, version)
                if not self._running:
                    self._running = True
                    self._pool.submit(self._run)
        return result, current

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._running, self._working = False, None
                    return
                classifier, version = self._pending
                self._pending, self._working = None, (weakref.ref(classifier), version)
            try:
                coaching = self._analyse(classifier)
            except Exception as exc:  # never leave the page waiting for a result that will not come
                _LOG.exception("analysing the examples failed")
                with self._lock:
                    self.failure = str(exc)
                continue
            with self._lock:
                if classifier.version == version:  # else a newer request is pending already
                    self._result = Result(version, coaching, weakref.ref(classifier))
                    self.failure = None

    def _analyse(self, classifier: KNNClassifier) -> Coaching:
        state = classifier.state()  # a copy taken under the classifier's lock
        m = neighbors_needed(state.k)
        if self._index is None or self._index[0]() is not classifier or self._index[1].m < m:
            self._index = (weakref.ref(classifier), NearestOthers(m))
        neighbors = self._index[1].update(state)
        return coach(state, neighbors)
