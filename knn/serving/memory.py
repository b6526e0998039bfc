"""Keep the serving process's memory flat and its pauses short.

`fix_mmap_threshold` fixes glibc's mmap threshold at 128 KB, so the 0.2-1 MB buffers every camera
frame allocates stay mmapped and go back to the system when freed, instead of fragmenting
per-thread heaps after glibc raises the threshold. `start_periodic_gc` stands in for Streamlit's
collection after every script run (off in .streamlit/config.toml: each held the GIL 60-100 ms):
one thread collects every few seconds, which frees closed sessions, and freezes what survives the
first collection (the libraries, the model), so later ones skip it. Numbers: docs/performance.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time

_LOG = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc malloc's mmap threshold (no effect elsewhere); True if it was set."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, threshold) == 1
    if not ok:
        _LOG.warning("mallopt(M_MMAP_THRESHOLD, %d) failed", threshold)
    return ok


_gc_thread: threading.Thread | None = None


def start_periodic_gc(seconds: float) -> threading.Thread:
    """Start, once per process, the thread that runs a full collection every `seconds`."""
    global _gc_thread
    if _gc_thread is not None:
        return _gc_thread

    def run() -> None:
        frozen = False
        while True:
            time.sleep(seconds)
            gc.collect()
            if not frozen:
                gc.freeze()
                frozen = True

    _gc_thread = threading.Thread(target=run, name="knn-periodic-gc", daemon=True)
    _gc_thread.start()
    return _gc_thread
