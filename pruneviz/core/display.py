"""Tensor -> display image, in pure numpy.

A 4096×4096 layer has more cells than a screen has pixels, and averaging (what image viewers do
when zoomed out) makes a single pruned weight vanish. We pool in blocks instead: the weight image
keeps the value of largest magnitude in each block (with its sign), the mask image says whether
*any* weight in the block is pruned, and the importance image keeps the block maximum. The
result is C-contiguous float32, row-major, no NaN: what pyqtgraph draws fastest.
"""

from __future__ import annotations

import math

import numpy as np


def as_2d(array: np.ndarray) -> np.ndarray:
    """Rows = output neurons; columns = inputs × kernel positions (conv filters flattened in C, kh, kw order)."""
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(array.shape[0], -1)


def block_shape(shape: tuple[int, int], max_shape: tuple[int, int]) -> tuple[int, int]:
    """Block size that brings ``shape`` within ``max_shape`` (1×1 when it already fits)."""
    return max(1, math.ceil(shape[0] / max_shape[0])), max(1, math.ceil(shape[1] / max_shape[1]))


def _finite(a: np.ndarray) -> np.ndarray:
    """float32 with NaN/Inf shown as 0 (NaN weights are displayed, never crashed on); no copy when clean."""
    a = np.asarray(a, dtype=np.float32)
    return a if np.isfinite(a).all() else np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def _pad(a: np.ndarray, by: int, bx: int, fill) -> np.ndarray:
    h, w = a.shape
    H, W = math.ceil(h / by), math.ceil(w / bx)
    if H * by == h and W * bx == w:
        return a
    padded = np.full((H * by, W * bx), fill, dtype=a.dtype)
    padded[:h, :w] = a
    return padded


def _reduce_blocks(p: np.ndarray, block: tuple[int, int], ufunc) -> np.ndarray:
    """``ufunc`` over each ``block`` of a padded array: first across the block's rows (whole
    contiguous rows at a time), then across its columns. Several times faster than one reduction
    over axes (1, 3) of a 4-D view, which strides through memory."""
    by, bx = block
    h, w = p.shape
    rows = ufunc.reduce(p.reshape(h // by, by, w), axis=1) if by > 1 else p
    if bx == 1:
        return rows
    # across columns: bx element-wise ops over strided slices (a reduction over a short last
    # axis is slow in numpy)
    out = rows[:, 0::bx].copy()
    for j in range(1, bx):
        ufunc(out, rows[:, j::bx], out=out)
    return out


def pool_signed_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, the entry of largest |value|, sign kept."""
    by, bx = block
    a = _finite(a)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(a)
    p = _pad(a, by, bx, 0.0)
    hi, lo = _reduce_blocks(p, block, np.maximum), _reduce_blocks(p, block, np.minimum)
    return np.ascontiguousarray(np.where(hi >= -lo, hi, lo), dtype=np.float32)


def pool_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    by, bx = block
    a = _finite(a)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(a)
    p = _pad(a, by, bx, -np.inf)
    return np.ascontiguousarray(_reduce_blocks(p, block, np.maximum), dtype=np.float32)


def pool_any(mask_pruned: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, 1.0 if any entry is pruned (True), else 0.0."""
    by, bx = block
    m = np.asarray(mask_pruned, dtype=bool)
    if (by, bx) != (1, 1):
        p = _pad(m, by, bx, False)
        m = _reduce_blocks(p.view(np.uint8), block, np.bitwise_or)
    return np.ascontiguousarray(m, dtype=np.float32)


def symmetric_levels(a: np.ndarray) -> tuple[float, float]:
    """Colour levels symmetric around zero, for a diverging map; never a zero-width range."""
    finite = a[np.isfinite(a)]
    m = float(np.abs(finite).max()) if finite.size else 0.0
    m = m if m > 0 else 1.0
    return -m, m


def layer_images(weight: np.ndarray, pruned: np.ndarray, max_shape: tuple[int, int] = (1024, 1024)):
    """Pooled (weight image, pruned image, block) for a layer's 2-D view."""
    w2, p2 = as_2d(weight), as_2d(pruned)
    block = block_shape(w2.shape, max_shape)
    return pool_signed_max(w2, block), pool_any(p2, block), block


class LayerImage:
    """Pooled images of one layer that can be refreshed by rows.

    A neuron edit changes one row of the weight view, so only the block row holding it is pooled
    again: on a 4096×4096 layer that is 4 of 4096 rows instead of 16M cells.
    """

    def __init__(self, weight2d: np.ndarray, pruned2d: np.ndarray, max_shape: tuple[int, int] = (1024, 1024)):
        self.shape = weight2d.shape
        self.block = block_shape(self.shape, max_shape)
        self.weights = pool_signed_max(weight2d, self.block)
        self.pruned = pool_any(pruned2d, self.block)

    def block_rows(self, rows: np.ndarray) -> np.ndarray:
        """Block-row indices that contain any of ``rows``."""
        return np.unique(np.asarray(rows, dtype=np.int64) // self.block[0])

    def row_span(self, block_row: int) -> tuple[int, int]:
        by = self.block[0]
        return block_row * by, min(self.shape[0], (block_row + 1) * by)

    def update(self, block_row: int, weight_rows: np.ndarray, pruned_rows: np.ndarray) -> None:
        """Re-pool one block row from the layer rows ``row_span(block_row)``."""
        self.weights[block_row] = pool_signed_max(as_2d(weight_rows), self.block)[0]
        self.pruned[block_row] = pool_any(as_2d(pruned_rows), self.block)[0]
