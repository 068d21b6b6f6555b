"""The layer heatmap: weights or importance, pruned cells overlaid, rows = output neurons.

Images come pooled by :class:`pruneviz.core.display.LayerImage` (max-|w|, "any pruned") to about
the plot's size in device pixels (never more cells than the screen can show), so a 4096×4096
layer draws as fast as a small one and a single pruned weight stays visible. After an edit that
touched a few neuron rows, :meth:`HeatmapView.update_rows` re-pools only the block rows holding
them (``Session.view_rows``) instead of copying and pooling the whole layer. Every image is placed
on the layer's own coordinates (x = input column, y = neuron row), so mouse positions map
straight to (row, column) whatever the pooling. Zoomed in, :class:`~pruneviz.qt.heatmap_detail.ZoomDetail`
re-pools just the region in view, down to the exact weights.

:func:`pruneviz.qt.heatmap_bench.render_benchmark` times that path (edit → refresh the touched
rows → paint) offscreen.

The view never edits the session: it emits ``rowsClicked``, ``rectDragged`` and ``hovered`` and
the window calls the Session verbs.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal

from pruneviz.core import display

from .heatmap_detail import ZoomDetail
from .heatmap_items import DragBox, InputAxis
from .kernels import KernelLayout

MAX_IMAGE = (4096, 4096)  #: never pool to more than this, whatever the screen
MIN_IMAGE = (256, 256)  #: pool at least this finely (a view not laid out yet reports tiny sizes)
MIN_SEPARATOR_PX = 4.0  #: channel separators closer than this on screen would only be noise: hidden
DENSE_SEPARATOR_PX = 12.0  #: below this spacing they are drawn fainter


def overlay_lut(rgba: tuple[int, int, int, int]) -> np.ndarray:
    """Two-entry LUT: 0 → transparent, 1 → ``rgba``."""
    lut = np.zeros((2, 4), dtype=np.ubyte)
    lut[1] = rgba
    return lut


class HeatmapView(pg.GraphicsLayoutWidget):
    """Heatmap of one layer's 2-D view with pruned / preview / selection overlays and a colour bar."""

    rowsClicked = Signal(int, object)  #: row, Qt.KeyboardModifiers
    rectDragged = Signal(int, int, int, int, bool)  #: r0, r1, c0, c1 (half-open), restore?
    hovered = Signal(int, int)  #: row, column (-1, -1 when outside)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 150)
        self.ci.layout.setContentsMargins(4, 4, 4, 4)
        self.vb = DragBox()
        self.vb.invertY(True)
        self.vb.setAspectLocked(False)
        self.axis_in = InputAxis("bottom")
        self.plot = self.addPlot(row=0, col=0, viewBox=self.vb, axisItems={"bottom": self.axis_in})
        self.plot.setLabel("left", "output neuron")
        self.plot.setLabel("bottom", "input")
        self.plot.showGrid(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.pruned = pg.ImageItem(axisOrder="row-major")
        self.preview = pg.ImageItem(axisOrder="row-major")
        self.selection = pg.ImageItem(axisOrder="row-major")
        self.pruned.setLookupTable(overlay_lut((20, 20, 20, 215)))
        self.preview.setLookupTable(overlay_lut((255, 215, 0, 255)))  # yellow: apart from the blue-white-red map
        self.selection.setLookupTable(overlay_lut((0, 200, 255, 80)))
        for z, item in enumerate((self.image, self.pruned, self.preview)):
            item.setZValue(z)
            self.plot.addItem(item)
        # zoomed in: the region in view re-pooled finer, drawn above the whole-layer images (z 3-5)
        self.detail = ZoomDetail(self, 3, self.pruned.lut, self.preview.lut)
        self.selection.setZValue(6)
        self.plot.addItem(self.selection)
        # conv layers: a thin line between input channels (every kh·kw columns), over the overlays
        self.kernels = KernelLayout(1)
        self.separators = pg.PlotCurveItem(connect="pairs")
        self.separators.setZValue(10)
        self.separators.hide()
        self.vb.addItem(self.separators, ignoreBounds=True)
        self.vb.sigXRangeChanged.connect(self._update_separators)
        self.cmap_weights = pg.colormap.get("CET-D1A")
        self.cmap_importance = pg.colormap.get("viridis")
        self.bar = pg.ColorBarItem(values=(-1, 1), colorMap=self.cmap_weights, interactive=False, rounding=1e-4, width=14)
        self.bar.setImageItem([self.image, self.detail.image], insert_in=self.plot)  # one colour map and levels
        self.bar.axis.enableAutoSIPrefix(False)
        # ColorBarItem fixes its axis at 45 px: tick labels like "0.35" then run into the title
        # ("importance"); sized from its labels instead
        self.bar.axis.setWidth(None)
        self.vb.dragged.connect(self._on_drag)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.shape = (0, 0)  # rows, cols of the layer's 2-D view
        self.block = (1, 1)
        self.mode = "weights"
        self.values: np.ndarray | None = None  # the un-pooled 2-D values shown (for read-outs)
        self.pruned_src: np.ndarray | None = None  # the un-pooled pruned cells (True = pruned)
        #: how the pruned overlay is pooled: None = "any pruned"; else ``f(pruned2d, block)`` from
        #: the layer's unit (:func:`pruneviz.core.units.pooling`), set before :meth:`set_layer`
        self.pool_pruned = None
        self.layer_image: display.LayerImage | None = None
        self._levels = (-1.0, 1.0)
        self._preview_src = None
        self._preview_rows = None
        self.fetch = None  # (start, stop) -> (values, pruned) rows of the layer; None: slice ``values``
        self._pooled_for = (0, 0)
        # re-pool to the new pixel size once a resize settles (not on every step of a drag)
        self._repool = QTimer(self)
        self._repool.setSingleShot(True)
        self._repool.setInterval(150)
        self._repool.timeout.connect(self._repool_if_needed)
        self.vb.sigResized.connect(self._on_resized)
        self.vb.sigResized.connect(self._update_separators)
        self.vb.sigRangeChanged.connect(self.detail.schedule)

    # ------------------------------------------------------------------ data
    def set_kernels(self, kernels: KernelLayout) -> None:
        """Input-channel layout of the layer shown (``KernelLayout.of(info.shape)``): conv layers get
        channel separators and an axis that counts input channels."""
        self.kernels = kernels
        self.axis_in.group = kernels.group
        if kernels.is_conv:
            self.plot.setLabel("bottom", f"input channel ({'×'.join(map(str, kernels.kernel))} kernel each)")
        else:
            self.plot.setLabel("bottom", "input")
        self.axis_in.picture = None  # ticks depend on the group: redraw them
        self.axis_in.update()
        self._update_separators()

    @property
    def separator_spacing_px(self) -> float:
        """Screen pixels between two channel separators at the current zoom (0 without channels)."""
        if not self.kernels.is_conv or self.shape == (0, 0):
            return 0.0
        (x0, x1), _ = self.vb.viewRange()
        return self.kernels.group * self.vb.width() / max(x1 - x0, 1e-9)

    def _update_separators(self, *_) -> None:
        """Vertical lines at the channel boundaries in view; hidden where they would be closer than
        :data:`MIN_SEPARATOR_PX` (they would only grey the picture), fainter when dense."""
        k, (rows, cols) = self.kernels, self.shape
        spacing = self.separator_spacing_px
        if k.channels < 2 or spacing < MIN_SEPARATOR_PX or cols != k.channels * k.group:
            self.separators.hide()
            return
        g = k.group
        (x0, x1), _ = self.vb.viewRange()
        first, last = max(1, math.ceil(x0 / g)), min(k.channels - 1, math.floor(x1 / g))
        xs = np.repeat(np.arange(first, last + 1, dtype=np.float64) * g, 2)
        ys = np.tile(np.array([0.0, float(rows)]), max(0, last - first + 1))
        # drawn as a gap in the window's background colour: dark lines vanish among pruned
        # (dark) cells and saturated weights; a light gap reads against all of them
        bg = self.palette().window().color()
        dense = spacing < DENSE_SEPARATOR_PX
        self.separators.setPen(pg.mkPen((bg.red(), bg.green(), bg.blue(), 170 if dense else 255), width=1 if dense else 2, cosmetic=True))
        self.separators.setData(xs, ys, connect="pairs")
        self.separators.setVisible(len(xs) > 0)

    @property
    def separator_columns(self) -> np.ndarray:
        """Columns where a channel separator is drawn now (empty when hidden)."""
        if not self.separators.isVisible() or self.separators.xData is None:
            return np.zeros(0)
        return np.asarray(self.separators.xData[::2])

    @property
    def levels(self) -> tuple[float, float]:
        """Colour levels of the image shown (symmetric around 0 for weights; fitted to the pooled
        magnitudes when ``magnitude``)."""
        return self._levels

    @property
    def magnitude(self) -> bool:
        """True when the weights image is max |w| per block (a big layer; see ``display``)."""
        return self.layer_image is not None and self.mode == "weights" and self.layer_image.magnitude

    @property
    def weight_levels(self) -> tuple[float, float]:
        """Symmetric levels for signed weights (e.g. a neuron's kernels), matching the image's scale."""
        if self.magnitude:
            hi = max(abs(self._levels[0]), abs(self._levels[1]))
            return -hi, hi
        return self._levels

    def target_shape(self) -> tuple[int, int]:
        """Pooled image size wanted now: the plot area in device pixels (rows, columns)."""
        dpr = self.devicePixelRatioF() or 1.0
        r = self.vb.sceneBoundingRect()
        h = int(math.ceil(r.height() * dpr))
        w = int(math.ceil(r.width() * dpr))
        return (min(MAX_IMAGE[0], max(MIN_IMAGE[0], h)), min(MAX_IMAGE[1], max(MIN_IMAGE[1], w)))

    def _place(self, item: pg.ImageItem, img: np.ndarray) -> None:
        rows, cols = self.shape
        item.setImage(img, autoLevels=False, levels=(0, 1) if item is not self.image else None)
        item.setRect(QRectF(0, 0, cols, rows))

    def set_layer(self, values2d: np.ndarray, pruned2d: np.ndarray, mode: str = "weights", reset_view: bool = True, fetch=None) -> None:
        """Show a layer: ``values2d`` (weights or importance, 2-D view) and its pruned cells.

        The view keeps both arrays (no copy) as its source for re-pooling on resize and for
        :meth:`update_rows`, which writes refreshed rows back into them. ``fetch(start, stop)``
        reads rows of the layer as (values, pruned), e.g. ``lambda a, b: session.view_rows(layer, a, b)``:
        the zoomed-in detail reads the rows in view through it (without it, from ``values2d``)."""
        first = self.values is None or self.values.shape != values2d.shape
        self.shape = values2d.shape
        self.values = values2d
        self.pruned_src = pruned2d
        self.mode = mode
        self.fetch = fetch
        self._pool()
        self.set_preview(None)
        if reset_view or first:
            self.vb.setLimits(xMin=-0.05 * self.shape[1], xMax=1.05 * self.shape[1], yMin=-0.05 * self.shape[0], yMax=1.05 * self.shape[0])
            self.vb.setRange(xRange=(0, self.shape[1]), yRange=(0, self.shape[0]), padding=0.01)
        self._update_separators()
        self.detail.update(force=True)

    def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``start:stop`` of the layer shown, as (values, pruned) 2-D arrays."""
        if self.fetch is not None:
            return self.fetch(start, stop)
        return self.values[start:stop], self.pruned_src[start:stop]

    def _pool(self) -> None:
        values2d, pruned2d = self.values, self.pruned_src
        target = self.target_shape()
        if self.mode == "weights":
            self.layer_image = display.LayerImage(values2d, pruned2d, target, self.pool_pruned)
            self.block = self.layer_image.block
            img, pimg = self.layer_image.weights, self.layer_image.pruned
            levels = self.layer_image.levels()
            if self.layer_image.magnitude:
                cmap, label = self.cmap_importance, "max |weight| per block"
            else:
                cmap, label = self.cmap_weights, "weight"
        else:
            self.layer_image = None
            self.block = display.block_shape(values2d.shape, target)
            img = display.pool_max(values2d, self.block)
            pimg = (self.pool_pruned or display.pool_any)(pruned2d, self.block)
            finite = img[np.isfinite(img)]
            hi = float(finite.max()) if finite.size else 1.0
            lo = min(0.0, float(finite.min())) if finite.size else 0.0  # importance starts at 0
            levels = (lo, hi if hi > lo else lo + 1.0)
            cmap, label = self.cmap_importance, "importance"
        self._pooled_for = target
        self._levels = levels
        self.image.setImage(img, autoLevels=False, levels=levels)
        self.image.setRect(QRectF(0, 0, self.shape[1], self.shape[0]))
        if self.bar.colorMap() is not cmap:
            self.bar.setColorMap(cmap)
        self.bar.setLevels(levels)
        self.bar.axis.setLabel(label)
        self._place(self.pruned, pimg)

    @property
    def can_update_rows(self) -> bool:
        """True when :meth:`update_rows` applies (weights shown, pooled by :class:`LayerImage`
        row by row: not for a unit's own pooling, whose groups may span block rows)."""
        return self.layer_image is not None and self.layer_image.rows_ok and self.mode == "weights"

    def update_rows(self, rows, fetch) -> None:
        """Refresh the neuron ``rows`` an edit touched: ``fetch(start, stop)`` returns the layer's
        rows ``start:stop`` as (weights, pruned) 2-D arrays, e.g. ``lambda a, b: session.view_rows(layer, a, b)``.
        Only the block rows holding them are pooled again; the rest of the image is kept."""
        li = self.layer_image
        if li is None:
            raise RuntimeError("update_rows needs the weights image: call set_layer first")
        for b in li.block_rows(np.asarray(list(rows), dtype=np.int64)):
            start, stop = li.row_span(int(b))
            w, p = fetch(start, stop)
            li.update(int(b), w, p)
            if self.values is not None and self.values.flags.writeable:
                self.values[start:stop] = w
            if self.pruned_src is not None and self.pruned_src.flags.writeable:
                self.pruned_src[start:stop] = p
        lo, hi = self._levels
        m = float(np.abs(li.weights).max()) if li.weights.size else 0.0
        if m > hi and not li.magnitude:  # a restored weight larger than anything shown so far
            self._levels = (-m, m)
            self.bar.setLevels(self._levels)
        self.image.setImage(li.weights, autoLevels=False, levels=self._levels)
        self.pruned.setImage(li.pruned, autoLevels=False, levels=(0, 1))
        if self.detail.active:
            self.detail.update(force=True)

    def _on_resized(self) -> None:
        if self.values is not None:
            self._repool.start()

    def alive(self) -> bool:
        """False once Qt has destroyed the plot area (a timer may still fire while the window
        is torn down): debounced work then has nothing left to draw into."""
        return shiboken6.isValid(self) and shiboken6.isValid(self.vb)

    def _repool_if_needed(self) -> None:
        if self.values is None or not self.alive():
            return
        if display.block_shape(self.shape, self.target_shape()) != self.block:
            preview = self.preview.image
            self._pool()
            if preview is not None and self._preview_src is not None:
                self.set_preview(self._preview_src)
        self.detail.update()

    def set_preview(self, would_prune2d: np.ndarray | None) -> None:
        """Yellow overlay of what a threshold would prune (None hides it)."""
        self._preview_src, self._preview_rows = would_prune2d, None
        self.detail.update_preview()
        if would_prune2d is None or self.shape == (0, 0):
            self.preview.clear()
            return
        self._place(self.preview, display.pool_any(display.as_2d(would_prune2d), self.block))

    def set_preview_rows(self, rows_mask: np.ndarray | None) -> None:
        """Yellow overlay across whole neuron rows (a neuron threshold); None hides it."""
        self._preview_src, self._preview_rows = None, rows_mask
        self.detail.update_preview()
        if rows_mask is None or self.shape == (0, 0) or not np.any(rows_mask):
            self.preview.clear()
            return
        img = np.ascontiguousarray(np.asarray(rows_mask, dtype=np.float32).reshape(-1, 1))
        self._place(self.preview, img)

    def set_selection(self, rows) -> None:
        """Highlight the selected neuron rows across the whole width."""
        if self.shape == (0, 0):
            return
        sel = np.zeros((self.shape[0], 1), dtype=np.float32)
        rows = [r for r in rows if 0 <= r < self.shape[0]]
        if rows:
            sel[rows, 0] = 1.0
        self.selection.setImage(sel, autoLevels=False, levels=(0, 1))
        self.selection.setRect(QRectF(0, 0, self.shape[1], self.shape[0]))

    @property
    def preview_source(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The threshold preview shown: (cells 2-D, or None; neuron rows, or None)."""
        return self._preview_src, self._preview_rows

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape of the drawn (pooled) image."""
        img = self.image.image
        return tuple(img.shape[:2]) if img is not None else (0, 0)

    # ----------------------------------------------------------------- mouse
    def _cell(self, scene_pos: QPointF) -> tuple[int, int]:
        if self.shape == (0, 0) or not self.plot.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        p = self.vb.mapSceneToView(scene_pos)
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        if 0 <= r < self.shape[0] and 0 <= c < self.shape[1]:
            return r, c
        return -1, -1

    def _on_move(self, pos) -> None:
        self.hovered.emit(*self._cell(pos))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        r, c = self._cell(ev.scenePos())
        if r >= 0:
            self.rowsClicked.emit(r, ev.modifiers())

    def _on_drag(self, rect: QRectF, mods) -> None:
        rows, cols = self.shape
        r0 = max(0, int(np.floor(rect.top())))
        r1 = min(rows, int(np.ceil(rect.bottom())))
        c0 = max(0, int(np.floor(rect.left())))
        c1 = min(cols, int(np.ceil(rect.right())))
        if r1 > r0 and c1 > c0:
            self.rectDragged.emit(r0, r1, c0, c1, bool(mods & Qt.KeyboardModifier.ControlModifier))

