"""knn.core.atomic: a write is all or nothing, keeps the target's permissions, and cleans up after
a writer that was killed mid-write."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from knn.core.atomic import atomic_output, write_atomic


def test_overwriting_keeps_the_files_permissions(tmp_path):
    path = tmp_path / "private.npz"
    write_atomic(path, b"first")
    assert path.stat().st_mode & 0o777 == 0o644  # a new file can be read by others
    path.chmod(0o600)
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second" and path.stat().st_mode & 0o777 == 0o600


def test_a_writer_killed_mid_write_leaves_nothing_once_the_file_is_written_again(tmp_path):
    path = tmp_path / "hands.npz"
    code = (
        "import sys, os, signal\n"
        "from knn.core.atomic import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a project')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(path)], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".hands.npz.") and not path.exists()  # what kill -9 leaves
    write_atomic(path, b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["hands.npz"]


def test_another_live_writers_temporary_file_is_left_alone(tmp_path):
    path = tmp_path / "model.keras"
    mine = tmp_path / f".model.keras.{os.getpid()}.abc.tmp.keras"  # a write in progress, by a live process
    mine.write_bytes(b"in progress")
    write_atomic(path, b"done")
    assert mine.exists() and path.read_bytes() == b"done"


def test_a_failed_block_leaves_the_old_file(tmp_path):
    path = tmp_path / "p.npz"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_bytes(b"new")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["p.npz"]
