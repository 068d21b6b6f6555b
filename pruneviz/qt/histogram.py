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
