"""The worker fixes glibc's mmap threshold (streams/engine/malloc_tuning.py)."""

from __future__ import annotations

import platform

from closedloop.streams.engine.malloc_tuning import give_back_large_blocks


def test_the_threshold_is_fixed_where_the_c_library_is_glibc() -> None:
    assert give_back_large_blocks() is (platform.libc_ver()[0] == "glibc")
