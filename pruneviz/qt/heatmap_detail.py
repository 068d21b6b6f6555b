"""Zoomed-in detail of the heatmap: the region in view re-pooled at finer blocks.

The heatmap pools the whole layer to the plot's pixel size, so on a 4096×4096 layer one image
cell holds a block of ~6×6 weights and zooming in only magnifies those blocks. Once the region in
view holds few enough cells (at most :data:`MAX_CELLS_PER_PX` per plot pixel) and a finer block
would show more, :class:`ZoomDetail` reads just the rows in view (``Session.view_rows`` through
the heatmap's ``fetch``), pools the columns in view, down to 1×1 (the exact weights), and draws
them as a second stack of image items (values, pruned, preview) placed on that region, above the
whole-layer images. Those stay beneath, so a pan shows the coarse picture until the detail
catches up, :data:`DEBOUNCE_MS` after the range stops changing; zooming back out hides it.

Pooling is max-|w| for weights, max for importance and "any pruned" for the masks, never an
average, so a single pruned weight stays marked at every zoom level.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, QTimer

from pruneviz.core import display

DEBOUNCE_MS = 100  #: redraw the detail this long after the view range stops changing
MAX_CELLS_PER_PX = 2.0  #: re-pool the region in view once it holds at most this many cells per plot pixel


def detail_region(view_range, shape: tuple[int, int], target: tuple[int, int], block: tuple[int, int], max_cells_per_px: float = MAX_CELLS_PER_PX):
    """The region worth re-pooling for a view, or None when the whole-layer image is as fine.

    ``view_range`` is the ViewBox's ``((x0, x1), (y0, y1))`` in layer cells, ``shape`` the layer's
    (rows, columns), ``target`` the plot's size in pixels (rows, columns) and ``block`` the
    whole-layer image's block. Returns ``(r0, r1, c0, c1, block)``: half-open rows and columns,
    aligned to the detail block (so its blocks are whole except at the layer's edge).

    Example::

        detail_region(((1000, 1064), (500, 564)), (2048, 2048), (600, 800), (4, 3))
        # -> (500, 564, 1000, 1064, (1, 1))
    """
    (x0, x1), (y0, y1) = view_range
    rows, cols = shape
    eps = 1e-6  # a range set to whole cells comes back a hair off them
    r0, r1 = max(0, math.floor(y0 + eps)), min(rows, math.ceil(y1 - eps))
    c0, c1 = max(0, math.floor(x0 + eps)), min(cols, math.ceil(x1 - eps))
    if r1 <= r0 or c1 <= c0:
        return None
    if (r1 - r0) * (c1 - c0) > max_cells_per_px * target[0] * target[1]:
        return None
    by, bx = display.block_shape((r1 - r0, c1 - c0), target)
    if by >= block[0] and bx >= block[1]:
        return None  # no finer than what is drawn already
    r0, c0 = r0 - r0 % by, c0 - c0 % bx
    r1, c1 = min(rows, math.ceil(r1 / by) * by), min(cols, math.ceil(c1 / bx) * bx)
    return r0, r1, c0, c1, (by, bx)


class ZoomDetail(QObject):
    """The detail images of one :class:`~pruneviz.qt.heatmap_view.HeatmapView`.

    ``region`` is ``(r0, r1, c0, c1)`` while a detail is shown (None otherwise) and ``block`` its
    block; ``image``, ``pruned`` and ``preview`` are its ImageItems."""

    def __init__(self, view, z: float, pruned_lut: np.ndarray, preview_lut: np.ndarray):
        super().__init__(view)
        self.view = view
        self.image = pg.ImageItem(axisOrder="row-major")
        self.pruned = pg.ImageItem(axisOrder="row-major")
        self.preview = pg.ImageItem(axisOrder="row-major")
        self.pruned.setLookupTable(pruned_lut)
        self.preview.setLookupTable(preview_lut)
        for i, item in enumerate(self.items):
            item.setZValue(z + i)
            item.hide()
            view.plot.addItem(item)
        self.region: tuple[int, int, int, int] | None = None
        self.block: tuple[int, int] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.update)

    @property
    def items(self) -> tuple[pg.ImageItem, pg.ImageItem, pg.ImageItem]:
        return self.image, self.pruned, self.preview

    @property
    def active(self) -> bool:
        return self.region is not None

    def schedule(self, *_) -> None:
        """The view range changed: redraw once it settles."""
        self._timer.start()

    def clear(self) -> None:
        self._timer.stop()
        self.region = self.block = None
        for item in self.items:
            item.hide()
            item.clear()

    def update(self, force: bool = False) -> None:
        """Show the detail the current view range asks for (or hide it); ``force`` re-reads the
        region even when it did not move (the layer's values changed)."""
        self._timer.stop()
        v = self.view
        if not v.alive():  # the window is being torn down
            return
        if v.values is None or v.shape == (0, 0):
            self.clear()
            return
        want = detail_region(v.vb.viewRange(), v.shape, v.target_shape(), v.block)
        if want is None:
            self.clear()
            return
        r0, r1, c0, c1, block = want
        if not force and (r0, r1, c0, c1) == self.region and block == self.block:
            return
        values, pruned = v.read_rows(r0, r1)
        values, pruned = values[:, c0:c1], pruned[:, c0:c1]
        pool = display.pool_max if v.mode != "weights" else display.pool_abs_max if v.magnitude else display.pool_signed_max
        self.region, self.block = (r0, r1, c0, c1), block
        rect = QRectF(c0, r0, c1 - c0, r1 - r0)
        self.image.setImage(pool(values, block), autoLevels=False, levels=v.levels)
        self.pruned.setImage(display.pool_any(pruned, block), autoLevels=False, levels=(0, 1))
        for item in (self.image, self.pruned):
            item.setRect(rect)
            item.show()
        self.update_preview()

    def update_preview(self) -> None:
        """The threshold preview over the detail region: cells, or whole neuron rows."""
        if self.region is None:
            return
        r0, r1, c0, c1 = self.region
        cells, rows = self.view.preview_source
        if cells is not None:
            img = display.pool_any(display.as_2d(cells)[r0:r1, c0:c1], self.block)
        elif rows is not None and np.any(rows):
            img = display.pool_any(np.asarray(rows, dtype=bool)[r0:r1].reshape(-1, 1), (self.block[0], 1))
        else:
            self.preview.hide()
            self.preview.clear()
            return
        self.preview.setImage(img, autoLevels=False, levels=(0, 1))
        self.preview.setRect(QRectF(c0, r0, c1 - c0, r1 - r0))
        self.preview.show()
