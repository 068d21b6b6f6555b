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


def _blocks(a: np.ndarray, by: int, bx: int, fill) -> np.ndarray:
    h, w = a.shape
    H, W = math.ceil(h / by), math.ceil(w / bx)
    if H * by != h or W * bx != w:
        padded = np.full((H * by, W * bx), fill, dtype=a.dtype)
        padded[:h, :w] = a
        a = padded
    return a.reshape(H, by, W, bx).swapaxes(1, 2).reshape(H, W, by * bx)


def pool_signed_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, the entry of largest |value|, sign kept."""
    by, bx = block
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(a)
    b = _blocks(a, by, bx, 0.0)
    hi, lo = b.max(axis=2), b.min(axis=2)
    return np.ascontiguousarray(np.where(hi >= -lo, hi, lo), dtype=np.float32)


def pool_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    by, bx = block
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(_blocks(a, by, bx, -np.inf).max(axis=2), dtype=np.float32)


def pool_any(mask_pruned: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, 1.0 if any entry is pruned (True), else 0.0."""
    by, bx = block
    m = np.asarray(mask_pruned, dtype=bool)
    if (by, bx) != (1, 1):
        m = _blocks(m, by, bx, False).any(axis=2)
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
