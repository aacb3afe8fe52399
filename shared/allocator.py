"""glibc's allocator told to keep freed memory (``keep_freed_memory``), once per process.

By default glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and hands it back with ``munmap`` on free.  The chain's activations at 256 x 256 (batch 8,
32 channels: 64 MiB) are above it, so each training step maps new memory and the kernel zeroes it
page by page: measured here, 6 steps of the restoration net spent 9.3 s in the kernel (3.8 M page
faults) against 8.3 s of computing; with mmap off and no trimming, 0.2 s and 16 k faults, 2.4x
faster (docs/decisions.md, session 9).  ``mallopt`` at run time does what ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=...`` would at start-up, for every stage and every executor cell alike.
Freed memory then stays with the process: its footprint is its peak.  No effect off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
_done = False


def keep_freed_memory() -> bool:
    """Turn off mmap'd allocations and heap trimming in this process; False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
