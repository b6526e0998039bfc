"""The model worker: two threads run every browser session's camera frames through the model.

Each session keeps at most one frame waiting: a newer frame replaces it, since the older one would
be stale by its turn. A free thread takes the waiting frame of the session served longest ago, so
sessions share the model evenly and none starves. Camera callbacks only hand frames over and wait
for the result with a time limit (knn.live), so their video never queues behind other sessions.

Two threads, not one: a frame's job is the model's invoke (which takes turns in the embedder)
plus converting the frame, classifying and publishing, which need the GIL; while one thread does
those, the other's frame is in the model, which then rarely waits. A session's frames never
overlap, so its results stay in order. Measured with 4 sessions on 2 cores (bench/live.py, README):
callbacks taking turns in the model processed ~41 frames/s in all, unevenly (7.9-12 per session);
one worker thread 33-36; two 45, evenly.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

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

    def run_now(self, key: Hashable, job: Job) -> bool:
        """Run `job` in the caller's thread if a worker thread would be free for it at once (no
        job waiting, a thread idle, none of `key`'s running); True if it ran. It saves the two
        thread hand-overs a one-session server would otherwise pay on every frame."""
        with self._cond:
            if self._waiting or key in self._running or len(self._running) >= self.threads:
                return False
            self._running.add(key)
        self._execute(key, job)
        return True

    def waiting(self) -> int:
        """How many keys have a job waiting."""
        with self._cond:
            return len(self._waiting)

    def _run(self) -> None:
        while True:
            with self._cond:
                # At most `threads` jobs at once, counting those callers run themselves.
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
