"""Histogram of a layer's weight scores with a draggable threshold line (``thresholdDragged``)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor


class Histogram(pg.PlotWidget):
    """Histogram of a layer's weight scores (kept vs pruned) with a draggable threshold line."""

    thresholdDragged = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(80)
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
        self.counts = np.zeros(0, dtype=np.int64)  #: the counts drawn
        self._label = ""
        self._range = -1.0

    def set_scores(self, scores: np.ndarray, kept: np.ndarray, xlabel: str) -> None:
        """Histogram of the kept ``scores`` (a full count; see :meth:`set_counts` for a kept one)."""
        s = np.nan_to_num(np.asarray(scores, dtype=np.float32).reshape(-1))
        k = np.asarray(kept, dtype=bool).reshape(-1)
        hi = float(s.max()) if s.size else 1.0
        edges = np.linspace(0.0, hi if hi > 0 else 1.0, 61)
        self.set_counts(edges, np.histogram(s[k], edges)[0], int(k.size - np.count_nonzero(k)), xlabel)

    def set_counts(self, edges: np.ndarray, counts: np.ndarray, pruned: int, xlabel: str) -> None:
        """Draw histogram ``counts`` over ``edges`` (kept weights only; ``pruned`` are named in the
        axis label: they all sit at 0 and would flatten the kept ones)."""
        self.kept.setData(edges, counts)
        self.counts = np.asarray(counts)
        label = xlabel + (f"   ({pruned:,} pruned not shown)" if pruned else "")
        if label != self._label:
            self._label = label
            self.setLabel("bottom", label)
        if self._range != float(edges[-1]):
            self._range = float(edges[-1])
            self.setXRange(0, edges[-1], padding=0.02)

    def set_threshold(self, value: float) -> None:
        """Move the threshold line (without emitting ``thresholdDragged``); its label follows."""
        self.line.blockSignals(True)
        self.line.setValue(value)
        self.line.blockSignals(False)
        # the label listens to the line's (blocked) position signal: tell it directly
        self.line.label.valueChanged()

    @property
    def threshold_label(self) -> str:
        """The text shown on the threshold line."""
        return self.line.label.toPlainText()
