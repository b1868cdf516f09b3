"""glibc's allocator told to hand large blocks back to the system as soon as they are freed.

glibc serves a request of 128 KiB or more from a mapping of its own, unmapped when freed,
but it raises that threshold to the size of every such block freed (up to 32 MiB). After
the first fetch response or table of a few MiB is freed, blocks of that size come from the
heap instead, and the heap keeps the room they leave between longer-lived objects: a worker
that has consumed a 100,000-person city holds ~40 MiB more than its state needs, and its
peak with it (``closedloop bench memory``: 3,376 bytes a person over an idle worker with
the moving threshold, 3,221-3,237 with a fixed one). Fixing the threshold is what
``MALLOC_MMAP_THRESHOLD_=131072`` in the environment does; it is set from the worker's own
code so that no deployment has to remember an environment variable.
"""

from __future__ import annotations

import ctypes
from typing import Final

__all__ = ["MMAP_THRESHOLD", "give_back_large_blocks"]

M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD: Final = 128 * 1024
"""glibc's own initial threshold, kept fixed: set, it no longer moves."""


def give_back_large_blocks() -> bool:
    """Fix glibc's mmap threshold for the rest of the process; False where the C library
    has no ``mallopt`` (not glibc) or refused it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
