"""Keep the serving process's resident memory flat: a fixed mmap threshold for glibc's malloc.

Every camera frame allocates a few buffers of 0.2-1 MB (the decoded frame, its RGB model input,
the returned frame). glibc serves blocks that large with mmap, returning them to the system when
freed, until the first such block is freed: then it raises its threshold to that block's size, and
from then on these buffers come from the heaps of whichever threads touch them (aiortc's decoder,
the model worker, the callbacks), which keep freed memory and fragment. RSS then sits 20 MB
higher and swings by as much within a minute (bench/live.py). Setting the threshold explicitly,
as `MALLOC_MMAP_THRESHOLD_=131072` in the environment would, keeps glibc's default of 128 KB
fixed, so these buffers are always mmapped and given back when freed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

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
