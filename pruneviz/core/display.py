"""Tensor -> display image, in pure numpy.

A 4096×4096 layer has more cells than a screen has pixels, and averaging (what image viewers do
when zoomed out) makes a single pruned weight vanish. We pool in blocks instead: the weight image
keeps the value of largest magnitude in each block (with its sign), the mask image says whether
*any* weight in the block is pruned, and the importance image keeps the block maximum. The
result is C-contiguous float32, row-major, no NaN: what pyqtgraph draws fastest.

When a block holds many weights (a 4096×25088 classifier in a 1000-pixel view: blocks of ~4×25),
the signed maximum of each block is close to ±the layer's maximum everywhere, and symmetric
levels turn the whole image into one uniform dark square. From ``MAGNITUDE_FROM`` cells per block
the weight image is the block's max |w| instead, with levels fitted to the pooled values (robust
percentiles, see :func:`robust_levels`), so a region of larger or smaller weights stands out;
the zoomed-in detail of such a layer shows |w| on the same scale. With fewer cells per block the
image is the signed weights with symmetric levels, as for layers that fit.
Big layers are pooled by row chunks (:func:`pool_rows_chunked`): the extra memory stays bounded
(~``CHUNK_BYTES``) whatever the layer's size.
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


def finite_array(a: np.ndarray) -> np.ndarray:
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
    a = finite_array(a)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(a)
    p = _pad(a, by, bx, 0.0)
    hi, lo = _reduce_blocks(p, block, np.maximum), _reduce_blocks(p, block, np.minimum)
    return np.ascontiguousarray(np.where(hi >= -lo, hi, lo), dtype=np.float32)


def pool_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    by, bx = block
    a = finite_array(a)
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


def pool_conformance(mask_pruned: np.ndarray, violating: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, the fraction of pruned entries, or 1.0 where any entry is ``violating`` (a unit's
    pattern is broken there): a layer that follows a 2:4 pattern reads as 0.5 everywhere, not as
    solid pruned, and a block that breaks the pattern stands out at full strength. Blocks of one
    cell show the mask itself."""
    by, bx = block
    m = np.asarray(mask_pruned, dtype=bool)
    bad = np.asarray(violating, dtype=bool)
    if (by, bx) == (1, 1):  # one cell per pixel: the pattern itself is what shows
        return np.ascontiguousarray(m, dtype=np.float32)
    h, w = m.shape
    p = _pad(m, by, bx, False).astype(np.float32)
    cells = _pad(np.ones((h, w), dtype=np.float32), by, bx, 0.0)
    frac = _reduce_blocks(p, block, np.add) / np.maximum(_reduce_blocks(cells, block, np.add), 1.0)
    hit = _reduce_blocks(_pad(bad, by, bx, False).view(np.uint8), block, np.bitwise_or).astype(bool)
    return np.ascontiguousarray(np.where(hit, 1.0, frac), dtype=np.float32)


def pool_abs_max(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block, the largest |value| (as the max of the block's max and −min: no |a| copy)."""
    by, bx = block
    a = finite_array(a)
    if (by, bx) == (1, 1):
        return np.ascontiguousarray(np.abs(a))
    p = _pad(a, by, bx, 0.0)
    hi, lo = _reduce_blocks(p, block, np.maximum), _reduce_blocks(p, block, np.minimum)
    return np.ascontiguousarray(np.maximum(hi, -lo), dtype=np.float32)


MAGNITUDE_FROM = 64  # cells per block from which weights are shown as max |w| with fitted levels
CHUNK_BYTES = 32 << 20


def pool_rows_chunked(pool, a: np.ndarray, block: tuple[int, int], chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """``pool(a, block)`` computed over chunks of whole block rows, so the temporaries (a float32
    copy, padding) never exceed about ``chunk_bytes`` whatever the size of ``a``."""
    by = block[0]
    row_bytes = max(1, a.shape[1] * 4)
    rows = max(by, (chunk_bytes // row_bytes) // by * by)
    if rows >= a.shape[0]:
        return pool(a, block)
    return np.ascontiguousarray(np.concatenate([pool(a[r : r + rows], block) for r in range(0, a.shape[0], rows)], axis=0))


def robust_levels(a: np.ndarray, low: float = 1.0, high: float = 99.5) -> tuple[float, float]:
    """Colour levels fitted to the values: their ``low``-th and ``high``-th percentiles (a few
    outliers do not squash the rest into one colour); never a zero-width range."""
    finite = a[np.isfinite(a)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    return lo, hi


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

    def __init__(self, weight2d: np.ndarray, pruned2d: np.ndarray, max_shape: tuple[int, int] = (1024, 1024), pool_pruned=None):
        self.shape = weight2d.shape
        self.block = block_shape(self.shape, max_shape)
        #: True when blocks are big enough that the image is max |w| per block (see the module doc)
        self.magnitude = self.block[0] * self.block[1] >= MAGNITUDE_FROM
        self.weights = pool_rows_chunked(self._pool_weights, weight2d, self.block)
        #: ``pool_pruned(pruned2d, block)``: a unit's own pooling of the whole layer (N:M
        #: conformance, see :meth:`pruneviz.core.units.Unit.pool_pruned`); then rows are not
        #: re-pooled alone (:attr:`rows_ok`), since a pattern's groups may span block rows
        self.rows_ok = pool_pruned is None
        self.pruned = pool_rows_chunked(pool_any, pruned2d, self.block) if pool_pruned is None else pool_pruned(pruned2d, self.block)

    def _pool_weights(self, a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
        return pool_abs_max(a, block) if self.magnitude else pool_signed_max(a, block)

    def levels(self) -> tuple[float, float]:
        """Colour levels for ``weights``: fitted to the pooled magnitudes, or symmetric around 0."""
        return robust_levels(self.weights) if self.magnitude else symmetric_levels(self.weights)

    def block_rows(self, rows: np.ndarray) -> np.ndarray:
        """Block-row indices that contain any of ``rows``."""
        return np.unique(np.asarray(rows, dtype=np.int64) // self.block[0])

    def row_span(self, block_row: int) -> tuple[int, int]:
        by = self.block[0]
        return block_row * by, min(self.shape[0], (block_row + 1) * by)

    def update(self, block_row: int, weight_rows: np.ndarray, pruned_rows: np.ndarray) -> None:
        """Re-pool one block row from the layer rows ``row_span(block_row)``."""
        self.weights[block_row] = self._pool_weights(as_2d(weight_rows), self.block)[0]
        self.pruned[block_row] = pool_any(as_2d(pruned_rows), self.block)[0]
