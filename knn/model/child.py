"""Heavy one-off work (TensorFlow) in a child process that exits, and the progress it reports.

The parent (`run_child`) imports nothing heavy; the child (`python -m knn.model.build ...` or
`python -m knn.model.export ...`) writes one file atomically and reports progress as
``@progress <fraction> <text>`` lines on stdout (`report`). So the serving process keeps LiteRT's
~30 MB instead of TensorFlow's ~565 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

BUILD = "knn.model.build"
"""The child module for weights and LiteRT conversions."""
EXPORT = "knn.model.export"
"""The child module for exports."""
TAIL_LINES = 15
"""Lines of a failed child's output kept for its error message."""


class Progress(Protocol):
    """Called as ``progress(fraction, text)`` between the steps of slow work (as `st.progress`)."""

    def __call__(self, fraction: float, text: str) -> None: ...


class BuildError(RuntimeError):
    """The child process failed; `tail` holds the end of its output, `message` its last line."""

    def __init__(self, tail: list[str]) -> None:
        self.tail = tail
        self.message = next((line for line in reversed(tail) if line.strip()), "the child process failed")
        super().__init__("\n".join(tail))


def run_child(module: str, args: Sequence[str], progress: Progress | None = None) -> None:
    """Run ``python -m MODULE ARGS`` and relay its ``@progress`` lines to `progress`.

    Raises:
        BuildError: the child exited with a non-zero status.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_pythonpath())
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("@progress "):
            _, fraction, text = line.rstrip("\n").split(" ", 2)
            if progress is not None:
                progress(float(fraction), text)
        else:
            tail = (tail + [line.rstrip()])[-TAIL_LINES:]
    if proc.wait() != 0:
        raise BuildError(tail)


def report(fraction: float, text: str) -> None:
    """The child's side of `Progress`: one line the parent relays."""
    print(f"@progress {fraction:.3f} {text}", flush=True)


def _pythonpath() -> str:
    here = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
