"""Process-level settings for fast CPU evaluation.

glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it
on free, so each large tensor of an evaluation is page-faulted in anew: on the
2-core test machine that made one 1,536-atom evaluation 2.3x slower (30 s vs
13 s, measured). :func:`tune_allocator` keeps freed memory in the heap instead
(like a caching allocator: the process keeps its peak resident size).

One default for Python and C++: ``import dpgraph`` and the C++ runtime (at
model load, ``cpp/src/allocator.cpp``) both tune the allocator unless the
environment sets ``DPGRAPH_TUNE_MALLOC=0``.

Trade-off: the heap cannot return memory and fragments. Near the memory limit
that costs more than it saves (12,288 water atoms, full-size DPA1, eager,
before chunked evaluation: out of memory on 24 GB with it, 22.5 GB peak
without), so set ``DPGRAPH_TUNE_MALLOC=0`` for the largest systems a machine
can hold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_done = False


def tune_allocator() -> bool:
    """Serve large allocations from the heap and keep freed memory; True on success.

    No-op (False) where the C library is not glibc. Idempotent.
    """
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) and mallopt(_M_TOP_PAD, 64 << 20)
    _done = bool(ok)
    return _done


def tune_from_environment() -> bool:
    """Tune unless ``DPGRAPH_TUNE_MALLOC=0`` (the C++ runtime's rule); True if tuned."""
    if os.environ.get("DPGRAPH_TUNE_MALLOC", "").strip() == "0":
        return False
    return tune_allocator()
