"""The C allocator's thresholds, set for evaluation on the CPU (Linux with glibc only).

An evaluation allocates activations of a few MB per batch and frees them at once. glibc serves
blocks above its mmap threshold (128 KiB at first, then adapted to what was freed) with fresh
``mmap`` pages and returns the top of its heap to the system past the trim threshold, so such a
pattern pays a page fault for every 4 KiB of every activation, every time: with the activation
cache holding tensors (the app, after its first evaluation) a demo:cnn evaluation took ~1.5x
as long as with the thresholds below (``tests/benchmarks/allocator.py`` measures it in two
processes side by side). The price is memory: up to :data:`TRIM_THRESHOLD` of freed heap stays
with the process, and blocks up to :data:`MMAP_THRESHOLD` come from the heap.

``pruneviz`` (the command line and the app) calls :func:`tune_allocator` when it starts; a
program using the Python API may call it too. It changes nothing when ``PRUNEVIZ_MALLOC=system``
is set, when the user tuned glibc already (``MALLOC_*`` or ``GLIBC_TUNABLES`` in the
environment), when another allocator is preloaded (jemalloc, tcmalloc), or off glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  #: glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024**2  #: blocks up to this come from the heap (glibc's upper limit on 64-bit)
TRIM_THRESHOLD = 64 * 1024**2  #: free heap kept before any is returned to the system

_applied: bool | None = None


def why_not() -> str | None:
    """Why :func:`tune_allocator` would leave the allocator alone here, or None."""
    if os.environ.get("PRUNEVIZ_MALLOC", "").strip().lower() == "system":
        return "PRUNEVIZ_MALLOC=system"
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    tuned = [k for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES") if k in os.environ]
    if tuned:
        return f"{tuned[0]} is set"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "another allocator is preloaded"
    return None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring) once per process; returns
    True when they are set (now or before)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if why_not() is not None:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl's mallopt ignores these  # noqa: B018
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok
