"""The filter panel's pictures as pure numpy: kernels as a grid of RGBA tiles, the grid's shape,
and whether a neuron's inputs form a square image. No widgets, so each can be tested alone.

Example::

    img = tiles_rgba(kernels, pruned, (-0.5, 0.5), pg.colormap.get("CET-D1A"))  # (H, W, 4) uint8
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

PRUNED_RGBA = np.array([20, 20, 20, 215], dtype=np.float32)  #: as the heatmap's pruned overlay
PX_PER_WEIGHT = 8  #: image pixels per weight (so the gaps between tiles can be a fraction of one)
GAP_PX = 2
MAX_SIDE_PX = 4096


def image_side(inputs: int) -> int | None:
    """Side of the square image ``inputs`` values make (64 -> 8), or None when not square."""
    side = math.isqrt(inputs)
    return side if side >= 4 and side * side == inputs else None


def tile_grid(channels: int) -> tuple[int, int]:
    """(rows, columns) of tiles for ``channels`` kernels: near square, rows filled first."""
    cols = max(1, math.ceil(math.sqrt(channels)))
    return math.ceil(channels / cols), cols


def tiles_rgba(tiles: np.ndarray, pruned: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap, px: int = PX_PER_WEIGHT, gap: int = GAP_PX) -> np.ndarray:
    """Kernels ``tiles`` (C, kh, kw) and their pruned cells -> one RGBA uint8 image of a tile grid,
    ``px`` pixels per weight, ``gap`` transparent pixels between tiles."""
    c, kh, kw = tiles.shape
    gr, gc = tile_grid(c)
    lo, hi = levels
    t = np.clip((np.nan_to_num(tiles.astype(np.float32)) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgba = cmap.map(t.reshape(-1), mode="byte").reshape(c, kh, kw, 4).astype(np.float32)
    a = PRUNED_RGBA[3] / 255.0
    dark = rgba * (1 - a) + np.concatenate([PRUNED_RGBA[:3], [255.0]]) * a
    rgba = np.where(pruned[..., None], dark, rgba).astype(np.uint8)
    cell = np.repeat(np.repeat(rgba, px, axis=1), px, axis=2)  # (C, kh*px, kw*px, 4)
    th, tw = kh * px + gap, kw * px + gap
    out = np.zeros((gr * th - gap, gc * tw - gap, 4), dtype=np.uint8)
    for i in range(c):
        r, q = divmod(i, gc)
        out[r * th : r * th + kh * px, q * tw : q * tw + kw * px] = cell[i]
    return out
