"""The layer heatmap: weights or importance, pruned cells overlaid, rows = output neurons.

Images come pooled from :func:`pruneviz.core.display.layer_images` (max-|w|, "any pruned"), so a
4096×4096 layer draws as fast as a small one and a single pruned weight stays visible. Every
image is placed on the layer's own coordinates (x = input column, y = neuron row), so mouse
positions map straight to (row, column) whatever the pooling.

The view never edits the session: it emits ``rowsClicked``, ``rectDragged`` and ``hovered`` and
the window calls the Session verbs.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from pruneviz.core import display

MAX_IMAGE = (1024, 1024)


def overlay_lut(rgba: tuple[int, int, int, int]) -> np.ndarray:
    """Two-entry LUT: 0 → transparent, 1 → ``rgba``."""
    lut = np.zeros((2, 4), dtype=np.ubyte)
    lut[1] = rgba
    return lut


class _DragBox(pg.ViewBox):
    """A ViewBox that, in block mode, turns a left drag into a rectangle instead of a pan."""

    dragged = Signal(QRectF, object)  # rect in data coordinates, keyboard modifiers

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.block_mode = False
        self._band = QGraphicsRectItem()
        self._band.setPen(pg.mkPen((255, 170, 0), width=2, cosmetic=True))
        self._band.setBrush(pg.mkBrush(255, 170, 0, 50))
        self._band.setZValue(1e6)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):
        if not self.block_mode or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        a = self.mapToView(ev.buttonDownPos())
        b = self.mapToView(ev.pos())
        rect = QRectF(a, b).normalized()
        self._band.setRect(rect)
        self._band.show()
        if ev.isFinish():
            self._band.hide()
            self.dragged.emit(rect, ev.modifiers())


class HeatmapView(pg.GraphicsLayoutWidget):
    """Heatmap of one layer's 2-D view with pruned / preview / selection overlays and a colour bar."""

    rowsClicked = Signal(int, object)  #: row, Qt.KeyboardModifiers
    rectDragged = Signal(int, int, int, int, bool)  #: r0, r1, c0, c1 (half-open), restore?
    hovered = Signal(int, int)  #: row, column (-1, -1 when outside)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.ci.layout.setContentsMargins(4, 4, 4, 4)
        self.vb = _DragBox()
        self.vb.invertY(True)
        self.vb.setAspectLocked(False)
        self.plot = self.addPlot(row=0, col=0, viewBox=self.vb)
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
        for z, item in enumerate((self.image, self.pruned, self.preview, self.selection)):
            item.setZValue(z)
            self.plot.addItem(item)
        self.cmap_weights = pg.colormap.get("CET-D1A")
        self.cmap_importance = pg.colormap.get("viridis")
        self.bar = pg.ColorBarItem(values=(-1, 1), colorMap=self.cmap_weights, interactive=False, rounding=1e-4, width=14)
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self.bar.axis.enableAutoSIPrefix(False)
        self.vb.dragged.connect(self._on_drag)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.shape = (0, 0)  # rows, cols of the layer's 2-D view
        self.block = (1, 1)
        self.values: np.ndarray | None = None  # the un-pooled 2-D values shown (for read-outs)

    # ------------------------------------------------------------------ data
    def _place(self, item: pg.ImageItem, img: np.ndarray) -> None:
        rows, cols = self.shape
        item.setImage(img, autoLevels=False, levels=(0, 1) if item is not self.image else None)
        item.setRect(QRectF(0, 0, cols, rows))

    def set_layer(self, values2d: np.ndarray, pruned2d: np.ndarray, mode: str = "weights", reset_view: bool = True) -> None:
        """Show a layer: ``values2d`` (weights or importance, 2-D view) and its pruned cells."""
        first = self.values is None or self.values.shape != values2d.shape
        self.shape = values2d.shape
        self.values = values2d
        if mode == "weights":
            img, pimg, self.block = display.layer_images(values2d, pruned2d, MAX_IMAGE)
            levels = display.symmetric_levels(img)
            cmap, label = self.cmap_weights, "weight"
        else:
            self.block = display.block_shape(values2d.shape, MAX_IMAGE)
            img = display.pool_max(values2d, self.block)
            pimg = display.pool_any(pruned2d, self.block)
            finite = img[np.isfinite(img)]
            hi = float(finite.max()) if finite.size else 1.0
            lo = float(finite.min()) if finite.size else 0.0
            levels = (lo, hi if hi > lo else lo + 1.0)
            cmap, label = self.cmap_importance, "importance"
        self.image.setImage(img, autoLevels=False, levels=levels)
        self.image.setRect(QRectF(0, 0, self.shape[1], self.shape[0]))
        self.bar.setColorMap(cmap)
        self.bar.setLevels(levels)
        self.bar.axis.setLabel(label)
        self._place(self.pruned, pimg)
        self.set_preview(None)
        if reset_view or first:
            self.vb.setLimits(xMin=-0.05 * self.shape[1], xMax=1.05 * self.shape[1], yMin=-0.05 * self.shape[0], yMax=1.05 * self.shape[0])
            self.vb.setRange(xRange=(0, self.shape[1]), yRange=(0, self.shape[0]), padding=0.01)

    def set_preview(self, would_prune2d: np.ndarray | None) -> None:
        """Orange overlay of what a threshold would prune (None hides it)."""
        if would_prune2d is None or self.shape == (0, 0):
            self.preview.clear()
            return
        self._place(self.preview, display.pool_any(display.as_2d(would_prune2d), self.block))

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


class NeuronStrip(pg.PlotWidget):
    """One horizontal bar per neuron (its importance); pruned bars grey, selected ones highlighted.

    Unsorted, rows line up with the heatmap (their y axes are linked); sorted, the least
    important neuron is on top.
    """

    rowsClicked = Signal(int, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumWidth(110)
        self.setMaximumWidth(220)
        self.getViewBox().invertY(True)
        self.setMouseEnabled(x=False, y=True)
        self.setLabel("bottom", "neuron importance")
        self.getPlotItem().getAxis("bottom").enableAutoSIPrefix(False)
        self.getPlotItem().hideAxis("left")
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.8, width=[])
        self.addItem(self.bars)
        self.scores = np.zeros(0)
        self.kept = np.zeros(0, dtype=bool)
        self.selected: set[int] = set()
        self.sorted = False
        self.order = np.zeros(0, dtype=int)  # row position -> neuron
        self.scene().sigMouseClicked.connect(self._on_click)

    def set_neurons(self, scores: np.ndarray, kept: np.ndarray, selected=()) -> None:
        self.scores = np.nan_to_num(np.asarray(scores, dtype=np.float64))
        self.kept = np.asarray(kept, dtype=bool)
        self.selected = set(selected)
        self._redraw()

    def set_sorted(self, on: bool, link: pg.ViewBox | None = None) -> None:
        self.sorted = on
        self.setYLink(None if on else link)
        self._redraw()
        if on:
            self.getViewBox().autoRange(padding=0.01)

    def _redraw(self) -> None:
        n = len(self.scores)
        self.order = np.argsort(self.scores, kind="stable") if self.sorted else np.arange(n)
        pal = self.palette()
        accent = pal.highlight().color()
        normal = QColor(pal.highlight().color())
        normal.setAlpha(110)
        accent = QColor(255, 140, 0)
        grey = QColor(128, 128, 128, 45)
        brushes = []
        for i in self.order:
            if i in self.selected:
                brushes.append(pg.mkBrush(accent))
            elif not self.kept[i]:
                brushes.append(pg.mkBrush(grey))
            else:
                brushes.append(pg.mkBrush(normal))
        # a pruned neuron scores 0: draw a faint full-length bar so it still shows as "gone"
        full = float(self.scores.max()) if n and self.scores.max() > 0 else 1.0
        widths = np.where(self.kept[self.order], self.scores[self.order], full)
        self.bars.setOpts(x0=np.zeros(n), y=np.arange(n) + 0.5, height=0.8 if n < 400 else 1.0, width=widths, brushes=brushes, pen=pg.mkPen(None))
        self.getViewBox().setLimits(yMin=-0.05 * n, yMax=n * 1.05 + 1)

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or not len(self.order):
            return
        if not self.getPlotItem().sceneBoundingRect().contains(ev.scenePos()):
            return
        y = self.getViewBox().mapSceneToView(ev.scenePos()).y()
        pos = int(np.floor(y))
        if 0 <= pos < len(self.order):
            self.rowsClicked.emit(int(self.order[pos]), ev.modifiers())


class Histogram(pg.PlotWidget):
    """Histogram of a layer's weight scores (kept vs pruned) with a draggable threshold line."""

    thresholdDragged = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.setLabel("left", "weights")
        self.setLabel("bottom", "|w|")
        self.setMouseEnabled(x=True, y=False)
        pal = self.palette()
        accent = QColor(pal.highlight().color())
        fill = QColor(accent)
        fill.setAlpha(120)
        self.kept = pg.PlotDataItem(stepMode="center", fillLevel=0, fillOutline=True, brush=fill, pen=pg.mkPen(accent))
        self.gone = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(128, 128, 128, 110), pen=pg.mkPen((128, 128, 128)))
        self.addItem(self.gone)
        self.addItem(self.kept)
        self.line = pg.InfiniteLine(0.0, angle=90, movable=True, pen=pg.mkPen((255, 140, 0), width=2), label="{value:.3g}", labelOpts={"position": 0.9, "color": (255, 140, 0)})
        self.addItem(self.line)
        self.line.sigDragged.connect(lambda ln: self.thresholdDragged.emit(float(ln.value())))
        self.getPlotItem().getAxis("bottom").enableAutoSIPrefix(False)

    def set_scores(self, scores: np.ndarray, kept: np.ndarray, xlabel: str) -> None:
        s = np.nan_to_num(np.asarray(scores, dtype=np.float64).reshape(-1))
        k = np.asarray(kept, dtype=bool).reshape(-1)
        hi = float(s.max()) if s.size else 1.0
        edges = np.linspace(0.0, hi if hi > 0 else 1.0, 61)
        hk, _ = np.histogram(s[k], edges)
        self.kept.setData(edges, hk)
        self.gone.setData([], [])  # pruned weights all sit at 0 and would flatten the kept ones
        gone = int((~k).sum())
        self.setLabel("bottom", xlabel + (f"   ({gone:,} pruned not shown)" if gone else ""))
        self.setXRange(0, edges[-1], padding=0.02)

    def set_threshold(self, value: float) -> None:
        self.line.blockSignals(True)
        self.line.setValue(value)
        self.line.blockSignals(False)
