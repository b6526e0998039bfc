"""`kill -9` of a process in the middle of a multi-file upload and of a Record: reopened, every
committed example is there and whole, and the batch being written is absent entirely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from knn.core.images import decode_jpeg
from knn.core.limits import STORED_IMAGE_SIZE
from knn.live.session import LiveSession
from knn.persist import ProjectStore
from knn.persist.database import engine_for
from knn.persist.schema import examples

ROOT = Path(__file__).resolve().parents[1]


def run_until_inside(mode: str, url: str, rps_dir: Path) -> tuple[str, list[str]]:
    """Start the child, read its lines until it is inside the transaction; returns (token, lines)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.saving_child", mode, url, str(rps_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    try:
        for line in child.stdout:  # each line is an event; the child waits inside for its kill
            lines.append(line.strip())
            if lines[-1] == "inside":
                break
        assert lines and lines[-1] == "inside", lines
        return next(line.split()[1] for line in lines if line.startswith("token ")), lines
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        assert child.returncode in (-signal.SIGKILL, None) or child.returncode == -9


def committed(url: str) -> int:
    engine = engine_for(url)
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(examples)).scalar_one()
    engine.dispose()
    return n


def reopened(url: str, token: str, embedder) -> LiveSession:
    session = LiveSession(embedder, store=ProjectStore(url, sweep=False))
    opened = session.open_project(token)
    assert opened.ok, opened.message
    for example in session.classifier.examples():  # whole: one vector, a JPEG that decodes
        assert example.vectors == 1 and decode_jpeg(example.image).shape == (STORED_IMAGE_SIZE, STORED_IMAGE_SIZE, 3)
    state = session.classifier.state()
    assert state.embeddings.shape[1] == embedder.dim and np.isfinite(state.embeddings).all()
    return session


@pytest.mark.parametrize("mode", ["upload", "record"])
def test_killed_mid_write_every_committed_example_is_there_and_whole(mode, db_url, embedder, rps_dir):
    token, lines = run_until_inside(mode, db_url, rps_dir)
    before_kill = committed(db_url)  # read while the child sat inside its transaction
    session = reopened(db_url, token, embedder)
    counts = session.classifier.counts()
    assert sum(counts.values()) == before_kill
    if mode == "upload":
        acked = [line for line in lines if line.startswith("acked ")]
        assert acked == ["acked 1 4", "acked 2 4"]  # batch 3 was being written: none of it is there
        assert counts == {"rock": 12, "hand": 0}
    else:
        assert counts["rock"] == 4 and counts["hand"] >= 2  # two commits of Record's frames at least
        batches = session.batches()
        recorded = {batches[e.example_id] for e in session.classifier.examples("hand")}
        assert len(recorded) == 1  # one recording, one batch
