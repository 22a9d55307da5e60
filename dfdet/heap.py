"""Keep large tensors in the malloc heap during full-batch training.

glibc serves every allocation above its mmap threshold with a fresh mmap and returns it with munmap, so a full-batch
step (activations of 2400 x 256 x 154 floats) page-faults hundreds of MB afresh each time: measured on the shared
3000-row matrix, 10 `--protocol seed` epochs took 21 s of system time out of 50 s. Raising the mmap and trim
thresholds keeps those pages mapped (system time 1.7 s). The cost is that freed memory stays with the process until
it exits, which suits a training or measuring run, not a long-lived server.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LIMIT = 2**31 - 1  # mallopt takes an int
_done = False


def keep_large_buffers() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if they are (or already were) raised.

    A no-op off glibc, and when the user set GLIBC_TUNABLES themselves (their settings win).
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has it (musl has a mallopt that does nothing)
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    return _done
