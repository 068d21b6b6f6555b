"""Benchmarks of big models in the app, registered in run.py.

- ``pool_4096x25088_ms``: pooling a VGG-classifier-sized layer (4096×25088, 411 MB) to a
  1000×1000 view as max |w| per block, by row chunks (median, min, max);
- ``pool_4096x25088_peak_mb``: the extra memory that takes (tracemalloc peak);
- ``pool_chunked_vs_whole_ratio``: that time / pooling the whole array at once (signed max, the
  former way).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

from pruneviz.core import display


def figures(quick: bool) -> dict:
    rows = 1024 if quick else 4096
    w = np.tile(np.random.default_rng(0).standard_normal((64, 25088)).astype(np.float32), (rows // 64, 1))
    pruned = np.zeros(w.shape, bool)
    repeat = 3 if quick else 5

    def times(fn):
        out = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    ours = times(lambda: display.LayerImage(w, pruned, (1000, 1000)))
    block = display.block_shape(w.shape, (1000, 1000))
    whole = times(lambda: (display.pool_signed_max(w, block), display.pool_any(pruned, block)))
    tracemalloc.start()
    display.LayerImage(w, pruned, (1000, 1000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    key = f"pool_{rows}x25088"
    return {
        f"{key}_ms": statistics.median(ours),
        f"{key}_ms_min": min(ours),
        f"{key}_ms_max": max(ours),
        f"{key}_peak_mb": peak / 2**20,
        "pool_chunked_vs_whole_ratio": statistics.median(ours) / statistics.median(whole),
    }
