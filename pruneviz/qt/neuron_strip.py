"""The neuron strip beside the heatmap: one bar per neuron (output row), its importance.

Unsorted, its rows line up with the heatmap's (the y axes are linked); sorted, the least
important neuron is on top. Clicks select neurons (``rowsClicked``); the strip never edits.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor


class NeuronStrip(pg.PlotWidget):
    """One horizontal bar per neuron (its importance); selected ones highlighted.

    A pruned neuron scores 0 now, so its bar is drawn grey at its *original* height (its score in
    the unpruned model): what was removed stays comparable with what is left. Neurons a threshold
    would remove are drawn yellow. Unsorted, rows line up with the heatmap (their y axes are
    linked); sorted, the least important neuron is on top.
    """

    rowsClicked = Signal(int, object)
    redrawn = Signal()  #: after every redraw (new scores, order, selection): tracks beside it follow

    PRUNED = QColor(128, 128, 128, 90)
    PREVIEW = QColor(255, 215, 0)
    SELECTED = QColor(255, 140, 0)
    MAX_BARS = 512  #: more neurons than this are drawn as lines (a bar each costs a paint each)

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
        # many neurons: one horizontal segment per neuron, one item per colour
        self.lines = [pg.PlotCurveItem(connect="pairs") for _ in range(4)]
        for item in self.lines:
            self.addItem(item)
        self.scores = np.zeros(0)
        self.original = np.zeros(0)
        self.kept = np.zeros(0, dtype=bool)
        self.preview = np.zeros(0, dtype=bool)
        self.selected: set[int] = set()
        self.sorted = False
        self.order = np.zeros(0, dtype=int)  # row position -> neuron
        self.widths = np.zeros(0)  # drawn bar lengths, in row-position order
        self.scene().sigMouseClicked.connect(self._on_click)

    def set_neurons(self, scores: np.ndarray, kept: np.ndarray, selected=(), original: np.ndarray | None = None, preview: np.ndarray | None = None) -> None:
        """Scores of the current model, kept mask, selection; ``original`` = scores of the unpruned
        model (drawn for pruned neurons); ``preview`` = neurons a threshold would prune."""
        self.scores = np.nan_to_num(np.asarray(scores, dtype=np.float64))
        self.kept = np.asarray(kept, dtype=bool)
        self.original = self.scores if original is None else np.nan_to_num(np.asarray(original, dtype=np.float64))
        self.preview = np.zeros_like(self.kept) if preview is None else np.asarray(preview, dtype=bool)
        self.selected = set(selected)
        self._redraw()

    def set_preview(self, preview: np.ndarray | None) -> None:
        self.preview = np.zeros_like(self.kept) if preview is None else np.asarray(preview, dtype=bool)
        self._redraw()

    def set_sorted(self, on: bool, link: pg.ViewBox | None = None) -> None:
        self.sorted = on
        self.setYLink(None if on else link)
        self._redraw()
        if on:
            self.getViewBox().autoRange(padding=0.01)

    def shown_scores(self) -> np.ndarray:
        """Per neuron, the length drawn: current score when kept, original score when pruned."""
        return np.where(self.kept, self.scores, self.original)

    def _redraw(self) -> None:
        n = len(self.scores)
        shown = self.shown_scores()
        # sorted by what each neuron is (or was) worth, pruned ones included at their old rank
        self.order = np.argsort(shown, kind="stable") if self.sorted else np.arange(n)
        normal = QColor(self.palette().highlight().color())
        normal.setAlpha(110)
        palette = [pg.mkBrush(normal), pg.mkBrush(self.PRUNED), pg.mkBrush(self.PREVIEW), pg.mkBrush(self.SELECTED)]
        kind = np.where(self.kept, 0, 1)
        if self.preview.shape == kind.shape:
            kind = np.where(self.preview & self.kept, 2, kind)
        sel = [i for i in self.selected if 0 <= i < n]
        if sel:
            kind[sel] = 3
        self.widths = shown[self.order]
        if n <= self.MAX_BARS:
            brushes = [palette[k] for k in kind[self.order]]
            self.bars.setOpts(x0=np.zeros(n), y=np.arange(n) + 0.5, height=0.8 if n < 400 else 1.0, width=self.widths, brushes=brushes, pen=pg.mkPen(None))
            for item in self.lines:
                item.setData([], [])
        else:
            self.bars.setOpts(x0=[], y=[], width=[], brushes=[])
            drawn = kind[self.order]
            for k, item in enumerate(self.lines):
                rows = np.flatnonzero(drawn == k)
                xs = np.zeros(2 * len(rows))
                xs[1::2] = self.widths[rows]
                item.setData(xs, np.repeat(rows + 0.5, 2), connect="pairs")
                item.setPen(pg.mkPen(palette[k].color(), width=1))
        self.getViewBox().setLimits(yMin=-0.05 * n, yMax=n * 1.05 + 1)
        self.redrawn.emit()

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or not len(self.order):
            return
        if not self.getPlotItem().sceneBoundingRect().contains(ev.scenePos()):
            return
        y = self.getViewBox().mapSceneToView(ev.scenePos()).y()
        pos = int(np.floor(y))
        if 0 <= pos < len(self.order):
            self.rowsClicked.emit(int(self.order[pos]), ev.modifiers())
