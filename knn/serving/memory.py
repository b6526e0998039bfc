"""Keep the serving process's memory flat and its pauses short.

`fix_mmap_threshold`: every camera frame allocates a few buffers of 0.2-1 MB. glibc serves blocks
that large with mmap until the first one is freed, then raises its threshold to that size, and
from then on these buffers come from per-thread heaps that keep freed memory and fragment.
Fixing the threshold at glibc's default of 128 KB (as `MALLOC_MMAP_THRESHOLD_=131072` would)
keeps them mmapped and given back when freed.

`start_periodic_gc`: Streamlit's own collection after every script run is off
(.streamlit/config.toml: each held the GIL for 60-100 ms, twice a second per session, stalling
every camera frame). One thread collects every few seconds instead, which frees closed sessions
(reference cycles), and freezes what survives the first collection (the imported libraries, the
model), so later collections skip those ~150,000 objects. docs/performance.md has the figures.
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
