"""How the process asks glibc's malloc for memory: big buffers given back when freed.

glibc maps a buffer above its mmap threshold on its own and unmaps it on free, but then raises
the threshold to that buffer's size (up to 32 MB): after a national cohort's upload had freed
its 31-MB body, the next upload's arrays of 8 to 30 MB came from the heap, and the freed heap
stayed resident. With the threshold fixed (`mallopt` turns the adjustment off), a buffer of a
megabyte or more is always unmapped when freed, and the heap's free top is trimmed past a
megabyte. Measured with bench/upload.py (1M pupils, 30.8 MB): peak RSS growth of an upload
159 MB with glibc's defaults, 112 MB so.
"""

import ctypes
import ctypes.util
import os

BIG_BUFFER_BYTES = 1 << 20
# mallopt's parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# An operator's own choice, in the environment glibc reads, stands.
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def give_back_big_buffers(threshold: int = BIG_BUFFER_BYTES) -> bool:
    """Map buffers of `threshold` bytes and more on their own, unmapped when freed, and trim
    the heap past it; False where the C library is not glibc or the environment says."""
    if any(name in os.environ for name in _GLIBC_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): its own policy stands
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, threshold)
    )
