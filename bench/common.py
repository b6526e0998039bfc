"""Small shared pieces of the benchmarks: timing loops, percentiles, Markdown tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(sub: str) -> Path:
    """A path in ../shared, or SystemExit with a message when it is absent."""
    path = SHARED / sub
    if not path.exists():
        raise SystemExit(f"{path} is absent: this benchmark needs the real photos/weights in ../shared")
    return path


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 3) -> np.ndarray:
    """Wall times of `repeat` calls of `fn`, in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def p50_p95(ms: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
