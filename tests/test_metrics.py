"""knn.serving.metrics: the serving process's live numbers, written as JSON for benchmarks and tests."""

from __future__ import annotations

import json
import threading
import time

import knn.serving.metrics as metrics
from knn.live.session import LiveSession
from knn.live.worker import ModelWorker
from knn.serving.metrics import session_metrics
from tests.frames import RED, show, solid, stamped


def test_process_metrics_has_the_process_and_every_live_session(embedder):
    session = LiveSession(embedder, classes=["red"])
    show(session, stamped(solid(RED), 90_000))
    snap = metrics.process_metrics({})
    assert snap["rss_mb"] > 10 and snap["cpu_seconds"] > 0 and snap["threads"] >= 1
    assert snap["thread_kinds"]["MainThread"] == 1
    mine = [s for s in snap["sessions"] if s["id"] == session.id]
    assert len(mine) == 1 and mine[0]["frames_processed"] == 1 and len(mine[0]["latencies"]) == 1
    assert snap["n_sessions"] == len(snap["sessions"])
    json.dumps(snap)  # plain JSON


def test_thread_kinds_strip_the_numbers():
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, name=f"async_media_processor_{i}") for i in range(3)]
    for t in threads:
        t.start()
    try:
        assert metrics.thread_kinds()["async_media_processor"] == 3
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_the_writer_replaces_the_file_every_interval(tmp_path, embedder):
    path = tmp_path / "metrics.json"
    session = LiveSession(embedder, classes=["red"])
    writer = metrics._Writer(path, interval=0.05, serving={"event_loop": "uvloop.Loop"})
    writer.start()
    try:
        show(session, stamped(solid(RED), 90_000))
        deadline = time.monotonic() + 5
        seen = []
        while time.monotonic() < deadline and len(seen) < 3:
            if path.exists():
                snap = json.loads(path.read_text())  # never half written
                if not seen or snap["time"] > seen[-1]["time"]:
                    seen.append(snap)
            time.sleep(0.01)
        assert len(seen) >= 3
        assert seen[-1]["serving"] == {"event_loop": "uvloop.Loop"}  # what the process runs with, in each
        latencies = [v for s in seen for x in s["sessions"] if x["id"] == session.id for v in x["latencies"]]
        assert len(latencies) == 1  # reported in one snapshot only
        assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary files left
    finally:
        writer.stop()
        writer.join()


def test_metrics_report_counters_and_each_latency_once(embedder):
    session = LiveSession(embedder, classes=["red"], worker=ModelWorker("test-metrics"))
    for i in range(5):
        show(session, stamped(solid(RED), 1_000_000 + 3000 * i))
    m = session_metrics(session)
    # One scene: the model answered the first frame, the other four reused its answer (and the model
    # may have seen one of them again, to refresh it); all five answered.
    assert (m["frames_received"], m["frames_reused"], m["frames_answered"], m["frames_dropped"]) == (5, 4, 5, 0)
    assert m["frames_processed"] >= 1
    assert m["id"] == session.id and m["examples"] == 0 and m["frame_age"] >= 0
    assert len(m["latencies"]) == 5 and all(v >= 0 for v in m["latencies"])
    assert m["latency_ms_p95"] >= m["latency_ms_p50"] >= 0
    again = session_metrics(session, latencies_since=m["latencies_recorded"])
    assert again["latencies"] == [] and again["latencies_lost"] == 0
    show(session, solid(RED))  # no timestamp: processed, but no latency to tell
    assert session_metrics(session, latencies_since=m["latencies_recorded"])["latencies"] == []
