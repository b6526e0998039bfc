"""knn.memory: glibc's mmap threshold, fixed so large frame buffers go back to the system."""

from __future__ import annotations

import ctypes.util
import platform
import subprocess
import sys

import pytest

from knn.serving.memory import fix_mmap_threshold


def test_fixed_threshold_gives_freed_frame_buffers_back():
    """In a fresh process: free a burst of 1 MB buffers and compare RSS with and without the fix."""
    code = """
import sys, numpy as np, psutil
from knn.serving.memory import fix_mmap_threshold
if sys.argv[1] == "fix":
    assert fix_mmap_threshold()
proc = psutil.Process()
np.ones(1 << 20, np.uint8)  # one frame-sized block freed: glibc raises its threshold now
burst = [np.ones(1 << 20, np.uint8) for _ in range(100)]  # 100 frames in flight
pin = np.ones(200 << 10, np.uint8)  # a block allocated after them, still in use
del burst
print(proc.memory_info().rss / 2**20)
"""
    rss = {}
    for mode in ("fix", "default"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        rss[mode] = float(out.stdout.strip().splitlines()[-1])
    # Without the fix the freed 100 MB burst stays resident; with it, it is given back.
    assert rss["default"] - rss["fix"] > 50, rss


GLIBC = platform.libc_ver()[0] == "glibc"

MMAPPED_AFTER_A_FREED_BLOCK = """
import ctypes, ctypes.util, sys
from knn.serving.memory import fix_mmap_threshold

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
libc.free(libc.malloc(30 << 20))  # a large mmapped block freed: glibc's own threshold would rise to 30 MB
info = libc.mallinfo2()
# More than all the free memory the heaps hold: only mmap or a grown heap can serve it.
size = max(256 << 10, info.fordblks + (64 << 10))
assert size < 30 << 20, info.fordblks
block = libc.malloc(size)
print(fixed, libc.mallinfo2().hblks - info.hblks)
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt's mmap threshold is glibc's")
def test_on_glibc_the_fixed_threshold_holds_after_a_large_block_is_freed():
    """glibc's own count of mmapped blocks (mallinfo2().hblks): after a 30 MB block is freed, a
    block above 128 KB that no free memory of the heap can hold is mmapped with the fix, and served
    by growing the heap without it (glibc raised its threshold to 30 MB)."""
    out = {}
    for mode in ("fix", "default"):
        run = subprocess.run(
            [sys.executable, "-c", MMAPPED_AFTER_A_FREED_BLOCK, mode], capture_output=True, text=True, check=True
        )
        out[mode] = run.stdout.split()
    assert out == {"fix": ["True", "1"], "default": ["None", "0"]}


def test_without_a_c_library_to_find_it_reports_false(monkeypatch):
    """Where ctypes finds no C library (a static or unusual build), nothing is set and nothing raised."""
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert fix_mmap_threshold() is False
