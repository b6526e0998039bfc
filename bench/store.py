"""The project store's cost (knn.persist): Add latency, a 3-second Record, restoring a full project.

    python bench/store.py [--rounds 5] [--adds 20]

Store off, SQLite (`synchronous=FULL`, as shipped, and NORMAL for comparison) and PostgreSQL (a
temporary cluster, fsync on), interleaved round by round in one run, with the real model's
embeddings of the real photos in ../shared/data/rps:

- Add: `LiveSession.add_latest` after a camera frame, what the page waits for (p50 / p95 ms).
- Record: 3 s of frames at 30 fps through `LiveSession.accept` (the camera's path: its p95 ms
  per frame is what saving may not raise), then how long after the recording's end its notice
  comes (the last frames committed), and the transactions it took.
- A project at the limits (100 classes, 5,000 examples, knn.core.limits): its first save, opening
  it in a new session, and the stored bytes per example.

Prints Markdown tables (docs/projects.md quotes them) and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import sqlalchemy as sa
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import markdown_table, p50_p95, shared_path
from harness.postgres import Cluster, missing
from knn.core.classifier import KNNClassifier
from knn.core.image_folders import class_folders
from knn.core.images import encode_jpeg, read_image
from knn.core.limits import MAX_CLASSES, MAX_EXAMPLES, STORED_IMAGE_SIZE
from knn.live.overlay import model_input
from knn.live.session import LiveSession
from knn.live.worker import ModelWorker
from knn.persist import Content, ProjectSettings, ProjectStore, sqlite_url

FPS = 30.0


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def frames(embedder, count: int) -> list[tuple[np.ndarray, np.ndarray, av.VideoFrame]]:
    """(embedding, crop, frame) of real photos shown as 640×480 camera frames, as the pipeline
    hands them to the session (an Add stores the frame's square at STORED_IMAGE_SIZE)."""
    paths = [p for paths in class_folders(shared_path("data/rps")).values() for p in paths]
    shown = [
        av.VideoFrame.from_ndarray(
            np.asarray(Image.fromarray(read_image(p)).resize((640, 480))), format="rgb24"
        ).reformat(format="yuv420p")
        for p in paths[:count]
    ]
    crops = [model_input(frame, embedder.input_size) for frame in shown]
    embeddings = np.asarray(embedder.embed(crops), np.float32)
    return list(zip(embeddings, crops, shown, strict=True))


def stores(tmp: Path, cluster: Cluster | None) -> dict[str, ProjectStore | None]:
    out: dict[str, ProjectStore | None] = {"off": None}
    out["SQLite"] = ProjectStore(sqlite_url(tmp / "full"), sweep=False)
    normal = ProjectStore(sqlite_url(tmp / "normal"), sweep=False)
    sa.event.listen(normal.engine, "connect", lambda c, _: c.execute("PRAGMA synchronous = NORMAL"))
    out["SQLite, synchronous=NORMAL"] = normal
    if cluster is not None:
        out["PostgreSQL"] = ProjectStore(cluster.create_database(), sweep=False)
    return out


def session_for(embedder, store, worker) -> LiveSession:
    session = LiveSession(embedder, classes=["rock", "paper"], worker=worker, store=store)
    session.add_class("warm")  # the project exists: Adds measure a change, not the first save
    return session


def time_adds(session: LiveSession, shots, n: int) -> list[float]:
    ms = []
    for i in range(n):
        embedding, crop, frame = shots[i % len(shots)]
        session.accept(embedding, crop, time.monotonic(), session.embedder, frame)
        t0 = time.perf_counter()
        session.add_latest("rock" if i % 2 else "paper")
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def record(session: LiveSession, shots) -> tuple[list[float], float, int]:
    """3 s at 30 fps through accept(); returns (ms per frame, seconds to the notice, examples)."""
    first, crop, frame = shots[0]
    session.accept(first, crop, time.monotonic(), session.embedder, frame)
    session.take_notice()
    session.start_recording("rock", seconds=3.0)
    past = time.monotonic() + 3.0  # the deadline is before this: a frame arriving later ends it
    ms, i, start = [], 0, time.monotonic()
    while True:
        time.sleep(max(0.0, start + i / FPS - time.monotonic()))
        embedding, crop, frame = shots[i % len(shots)]
        arrived = time.monotonic()
        t0 = time.perf_counter()
        session.accept(embedding, crop, arrived, session.embedder, frame)
        ms.append((time.perf_counter() - t0) * 1e3)
        i += 1
        if arrived > past:
            break
    ended = time.monotonic()
    while (notice := session.take_notice()) is None:
        time.sleep(0.001)
    return ms, time.monotonic() - ended, int(notice.split()[1])


def full_project(embedder, shots) -> Content:
    clf = KNNClassifier(max_examples_per_class=MAX_EXAMPLES)
    for c in range(MAX_CLASSES):
        clf.add_class(f"class {c}")
    per = MAX_EXAMPLES // MAX_CLASSES
    jpegs = [encode_jpeg(model_input(frame, STORED_IMAGE_SIZE)) for _, _, frame in shots]
    vectors = np.stack([shots[i % len(shots)][0] for i in range(MAX_EXAMPLES)])
    labels = [f"class {i // per}" for i in range(MAX_EXAMPLES)]
    clf.add_many(vectors, labels, [jpegs[i % len(jpegs)] for i in range(MAX_EXAMPLES)])
    state = clf.state()
    return Content(
        state, ProjectSettings(embedder.backbone, max_examples_per_class=MAX_EXAMPLES), list(range(MAX_EXAMPLES))
    )


def on_disk(store: ProjectStore) -> int:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return Path(store.engine.url.database).stat().st_size
        return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--adds", type=int, default=20, help="Adds per mode per round")
    args = parser.parse_args()
    os.environ["KNN_OFFLINE"] = "1"  # the app's default backbone from ../shared, never a download
    os.environ.setdefault("KNN_WEIGHTS_DIR", str(shared_path("models")))
    import knn

    load_before = load()
    embedder = knn.Embedder()
    shots = frames(embedder, 120)
    cluster = None if missing() else Cluster(durable=True).start()
    if cluster is None:
        print(f"PostgreSQL left out: {missing()}")
    worker = ModelWorker("bench-store")
    tmp = Path(tempfile.mkdtemp(prefix="knn-bench-store-"))
    try:
        by_mode = stores(tmp, cluster)
        sessions = {mode: session_for(embedder, store, worker) for mode, store in by_mode.items()}
        adds: dict[str, list[float]] = {m: [] for m in by_mode}
        camera: dict[str, list[float]] = {m: [] for m in by_mode}
        lag: dict[str, list[float]] = {m: [] for m in by_mode}
        recorded: dict[str, list[int]] = {m: [] for m in by_mode}
        for _ in tqdm(range(args.rounds), desc="rounds (every mode in each)"):
            for mode, session in sessions.items():
                adds[mode] += time_adds(session, shots, args.adds)
                ms, seconds, n = record(session, shots)
                camera[mode] += ms
                lag[mode].append(seconds * 1e3)
                recorded[mode].append(n)
        rows = []
        for mode in by_mode:
            a50, a95 = p50_p95(np.asarray(adds[mode]))
            c50, c95 = p50_p95(np.asarray(camera[mode]))
            rows.append(
                [
                    mode,
                    f"{a50:.1f} / {a95:.1f}",
                    f"{c50:.2f} / {c95:.2f}",
                    f"{np.median(lag[mode]):.0f} (max {max(lag[mode]):.0f})",
                    f"{np.median(recorded[mode]):.0f}",
                ]
            )
        print(f"\nAdd and a 3-second Record, {args.rounds} rounds × {args.adds} Adds, interleaved:\n")
        print(
            markdown_table(
                [
                    "store",
                    "Add p50 / p95 ms",
                    "camera: accept() p50 / p95 ms",
                    "Record end -> notice ms",
                    "examples per Record",
                ],
                rows,
            )
        )

        content = full_project(embedder, shots)
        rows = []
        for mode, store in by_mode.items():
            if store is None or "NORMAL" in mode:
                continue
            before, used = on_disk(store), store.used_bytes()
            t0 = time.perf_counter()
            token, _ = store.create(content)
            saved = time.perf_counter() - t0
            disk = on_disk(store) - before
            t0 = time.perf_counter()
            opened = LiveSession(embedder, worker=worker, store=store).open_project(token)
            restored = time.perf_counter() - t0
            assert opened.ok, opened.message
            rows.append(
                [
                    mode,
                    f"{saved:.1f}",
                    f"{restored:.1f}",
                    f"{disk / MAX_EXAMPLES / 1024:.1f}",
                    f"{(store.used_bytes() - used) / MAX_EXAMPLES / 1024:.1f}",
                ]
            )
        print(f"\nA project at the limits ({MAX_CLASSES} classes, {MAX_EXAMPLES:,} examples, {embedder.backbone}):\n")
        print(
            markdown_table(
                ["store", "first save s", "open in a new session s", "on disk kB / example", "quota kB / example"],
                rows,
            )
        )
        print(f"\nload average (1/5/15 min): before {load_before}, after {load()}; {os.cpu_count()} cores")
    finally:
        if cluster is not None:
            cluster.remove()


if __name__ == "__main__":
    main()
