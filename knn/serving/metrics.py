"""Live metrics of the serving process, written as a JSON file for benchmarks and tests.

When the app runs with env ``KNN_METRICS_FILE=/path/metrics.json`` (knn.serving.settings), a
daemon thread (`start_writer`) replaces that file atomically every ``KNN_METRICS_INTERVAL``
seconds with `process_metrics()`:

- ``time`` (epoch s), ``pid``, ``rss_mb`` (resident memory), ``cpu_seconds`` (user + system since
  the process started), ``threads`` (count) and ``thread_kinds`` (count per thread name with its
  number stripped, e.g. ``async_media_processor``), ``thread_cpu_seconds`` (CPU per thread kind,
  "native" for threads Python did not start), ``heavy_modules`` (which of TensorFlow, Keras,
  pandas, pyarrow, Altair are imported), ``model_worker`` (jobs run and their total seconds,
  knn.live.worker: busy seconds per second is how loaded the model is);
- ``serving``: what the process runs with (its adaptations, event loop, switch interval, ...:
  knn.serving.startup.Started.record), so a benchmark's run says what it measured;
- ``sessions``: one entry per `LiveSession` not yet freed (a weak registry: a session whose page
  is gone and whose state Streamlit dropped disappears once Python frees it), with its frame
  counters (received, processed = fresh from the model, reused = a still scene's last answer,
  dropped, answered = taken by the encoder), rates, embedding/KNN timings, rolling latency
  p50/p95, the capture-to-overlay latencies (ms) of the frames answered since the previous
  snapshot (see `stats.CaptureClock`), and those frames as ``answers``: [capture time, sent time
  (epoch s), 1 if fresh else 0, the predicted class or null, the capture time of the frame the
  model saw for it], so a benchmark can tell when the prediction followed a change of scene.

Nothing runs per frame: the thread reads what `Stats` already records, under each session's lock,
once per interval. No Streamlit import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import MutableMapping
from pathlib import Path

import psutil

from ..core.atomic import atomic_output
from ..live.session import LiveSession, live_sessions
from ..live.worker import MODEL_WORKER

DEFAULT_INTERVAL = 1.0
HEAVY_MODULES = ("tensorflow", "keras", "pandas", "pyarrow", "altair")
"""Reported when imported: each adds tens to hundreds of MB to the serving process."""

_writer_lock = threading.Lock()
_writer: _Writer | None = None


def thread_kinds() -> dict[str, int]:
    """Live threads counted by name, numbers stripped ("Thread-12 (run)" -> "Thread (run)")."""
    names = (re.sub(r"[-_]?\d+", "", t.name) for t in threading.enumerate())
    return dict(sorted(Counter(names).items()))


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far per thread kind (as `thread_kinds` names them); threads that Python did
    not start (XNNPACK's inference pool, codec threads) are counted as "native"."""
    kinds = {t.native_id: re.sub(r"[-_]?\d+", "", t.name) for t in threading.enumerate()}
    out: defaultdict[str, float] = defaultdict(float)
    try:
        for t in psutil.Process().threads():
            out[kinds.get(t.id, "native")] += t.user_time + t.system_time
    except psutil.Error:
        pass
    return {k: round(v, 3) for k, v in sorted(out.items())}


def session_metrics(session: LiveSession, latencies_since: int = 0, answers_since: int = 0) -> dict:
    """One session's counters, rates, timings, and the capture-to-overlay latencies (ms) and
    answers recorded after the first `latencies_since` / `answers_since`; pass back
    `latencies_recorded` / `answers_logged` next time for newer ones."""
    snap = session.snapshot(neighbors=False)
    latencies, lost, recorded = session.pipeline.latencies(latencies_since)
    answers, answers_lost, logged = session.pipeline.answers(answers_since)
    to_epoch = time.time() - time.monotonic()  # the pipeline's clock is the monotonic one
    return {
        "id": session.id,
        "created": session.created,
        "frame_age": snap.frame_age,
        "examples": snap.n_examples,
        **dataclasses.asdict(snap.stats),
        "latencies": latencies,
        "latencies_lost": lost,
        "latencies_recorded": recorded,
        "answers": [
            [
                round(c + to_epoch, 4),
                round(s + to_epoch, 4),
                int(f),
                label,
                None if src is None else round(src + to_epoch, 4),
            ]
            for c, s, f, label, src in answers
        ],
        "answers_lost": answers_lost,
        "answers_logged": logged,
    }


def process_metrics(latencies_since: MutableMapping[LiveSession, tuple[int, int]] | None = None) -> dict[str, object]:
    """The process and its live sessions now. `latencies_since` maps a session to how many of its
    latencies and answers were already reported (updated in place); without it, none are included."""
    proc = psutil.Process()
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
        n_threads = proc.num_threads()
    sessions = []
    for session in live_sessions():
        if latencies_since is None:
            m = session_metrics(session, latencies_since=1 << 62, answers_since=1 << 62)
        else:
            latencies, answers = latencies_since.get(session, (0, 0))
            m = session_metrics(session, latencies_since=latencies, answers_since=answers)
            latencies_since[session] = (m["latencies_recorded"], m["answers_logged"])
        sessions.append(m)
    return {
        "time": time.time(),
        "pid": os.getpid(),
        "rss_mb": rss / 1024**2,
        "cpu_seconds": cpu.user + cpu.system,
        "threads": n_threads,
        "python_threads": threading.active_count(),
        "thread_kinds": thread_kinds(),
        "thread_cpu_seconds": thread_cpu(),
        "heavy_modules": [m for m in HEAVY_MODULES if m in sys.modules],
        "model_worker": {"jobs": MODEL_WORKER.jobs, "busy_seconds": round(MODEL_WORKER.busy_seconds, 4)},
        "n_sessions": len(sessions),
        "sessions": sessions,
    }


def write_json(path: Path, data: dict[str, object]) -> None:
    """Replace `path` atomically (a reader never sees half a file); no fsync, it is rewritten each second."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data))


class _Writer(threading.Thread):
    def __init__(self, path: Path, interval: float, serving: dict) -> None:
        super().__init__(name="knn-metrics-writer", daemon=True)
        self.path = path
        self.interval = interval
        self.serving = serving
        self._since: weakref.WeakKeyDictionary[LiveSession, tuple[int, int]] = weakref.WeakKeyDictionary()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            snap = {**process_metrics(self._since), "serving": self.serving}
            with contextlib.suppress(OSError):  # the reader's directory went away: nothing to report to
                write_json(self.path, snap)

    def stop(self) -> None:
        self._stop_event.set()


def start_writer(
    path: str | os.PathLike, interval: float = DEFAULT_INTERVAL, serving: dict | None = None
) -> threading.Thread:
    """Start (once per process) the thread that writes `process_metrics()` to `path` every `interval` s,
    with `serving` (what the process runs with, knn.serving.startup.Started.record) in each snapshot.

    Freed sessions in reference cycles leave the registry at the periodic collection
    (knn.serving.memory), not here.
    """
    global _writer
    with _writer_lock:
        if _writer is None or not _writer.is_alive():
            _writer = _Writer(Path(path), interval, serving or {})
            _writer.start()
        return _writer
