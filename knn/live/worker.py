"""The model worker: two threads run every browser session's camera frames through the model.

Each session keeps at most one frame waiting: a newer frame replaces it, since the older one would
be stale by its turn. A free thread takes the waiting frame of the session served longest ago, so
sessions share the model evenly and none starves. A session's frames never overlap, so its
results stay in order. Two threads, not one: while one converts, classifies and draws (work that
needs the GIL), the other's frame is in the model (docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

_LOG = logging.getLogger(__name__)

Job = Callable[[], None]


class ModelWorker:
    """Runs submitted jobs on `threads` daemon threads (started with the first job), fairly across keys.

    `submit(key, last_served, job)`: `job` replaces the key's waiting job, if any; among waiting
    jobs of keys with no job running, the one whose `last_served` is smallest runs next. A job's
    exception is logged, never raised: the job itself reports failures to its session.
    """

    def __init__(self, name: str = "knn-model-worker", threads: int = 2) -> None:
        self._name = name
        self.threads = threads
        self._cond = threading.Condition(threading.Lock())
        self._waiting: dict[Hashable, tuple[float, Job]] = {}
        self._running: set[Hashable] = set()  # a key's jobs never overlap: results stay in order
        self._threads: list[threading.Thread] = []
        self.jobs = 0  # jobs run so far
        self.busy_seconds = 0.0  # their total wall time: busy / elapsed is how loaded the model is

    def submit(self, key: Hashable, last_served: float, job: Job) -> bool:
        """Queue `job` for `key`; True if it replaced a job of `key` that had not started."""
        with self._cond:
            replaced = key in self._waiting
            self._waiting[key] = (last_served, job)
            if not self._threads:
                for i in range(self.threads):
                    thread = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify()
        return replaced

    def waiting(self) -> int:
        """How many keys have a job waiting."""
        with self._cond:
            return len(self._waiting)

    def busy(self) -> int:
        """How many jobs are waiting or running."""
        with self._cond:
            return len(self._waiting) + len(self._running)

    def _run(self) -> None:
        while True:
            with self._cond:
                while len(self._running) >= self.threads or not (
                    ready := [k for k in self._waiting if k not in self._running]
                ):
                    self._cond.wait()
                key = min(ready, key=lambda k: self._waiting[k][0])
                _, job = self._waiting.pop(key)
                self._running.add(key)
            self._execute(key, job)
            del job  # the job holds its session: let a closed session go while this waits

    def _execute(self, key: Hashable, job: Job) -> None:
        start = time.perf_counter()
        try:
            job()
        except Exception:
            _LOG.exception("a model job failed")
        with self._cond:
            self._running.discard(key)
            self.busy_seconds += time.perf_counter() - start
            self.jobs += 1
            self._cond.notify_all()  # this key's next job may run now, or a thread is free


MODEL_WORKER = ModelWorker()
"""The process's worker: all sessions share the one model and the cores."""
