"""Training curves: held-out accuracy and sparsity against epoch, live while a run trains.

A :class:`CurveStore` holds the live run and the finished ones (kept, labelled, until the user
clears them), so a class can watch "gradual" and "one shot" side by side. Any number of
:class:`TrainCurve` widgets (the tab beside the histogram, the Train… dialog) draw the same store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

#: colours of finished runs (colour-blind-safe Okabe–Ito), the live run is drawn in the first
COLOURS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233), (230, 159, 0)]


@dataclass
class CurveRun:
    """One run's points: accuracy at epoch ends, sparsity at every reported step."""

    label: str
    acc_x: list[float] = field(default_factory=list)
    acc_y: list[float] = field(default_factory=list)
    sp_x: list[float] = field(default_factory=list)
    sp_y: list[float] = field(default_factory=list)
    finished: bool = False


class CurveStore(QObject):
    """The live run and the finished ones; ``changed(structural)`` after every update."""

    changed = Signal(bool)  # True: runs were added or removed (redraw legends), False: live points

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runs: list[CurveRun] = []
        self.live: CurveRun | None = None
        self.steps_per_epoch = 1

    def begin(self, label: str, accuracy: float | None, sparsity: float, steps_per_epoch: int) -> None:
        self.live = CurveRun(label)
        self.steps_per_epoch = max(1, steps_per_epoch)
        if accuracy is not None:
            self.live.acc_x.append(0.0)
            self.live.acc_y.append(accuracy)
        self.live.sp_x.append(0.0)
        self.live.sp_y.append(sparsity)
        self.changed.emit(True)

    def add(self, p) -> None:
        """A :class:`~pruneviz.core.training.TrainProgress` of the live run."""
        if self.live is None:
            return
        x = p.epoch if p.accuracy is not None else p.step / self.steps_per_epoch
        self.live.sp_x.append(x)
        self.live.sp_y.append(p.sparsity)
        if p.accuracy is not None:
            self.live.acc_x.append(float(p.epoch))
            self.live.acc_y.append(p.accuracy)
        self.changed.emit(False)

    def finish(self, label: str | None = None, curve: list[dict] | None = None) -> None:
        """The live run ended: keep it among the finished runs under ``label``. ``curve`` (the
        result's per-epoch points) replaces the epoch points: progress may have been coalesced."""
        if self.live is None:
            return
        if label:
            self.live.label = label
        if curve:
            run = self.live
            keep = [(x, y) for x, y in zip(run.acc_x, run.acc_y) if x == 0.0]
            pts = keep + [(float(c["epoch"]), c["accuracy"]) for c in curve if c.get("accuracy") is not None]
            run.acc_x, run.acc_y = [x for x, _ in pts], [y for _, y in pts]
            run.sp_x.append(float(curve[-1]["epoch"]))
            run.sp_y.append(curve[-1]["sparsity"])
        self.live.finished = True
        self.runs.append(self.live)
        self.live = None
        self.changed.emit(True)

    def drop_live(self) -> None:
        self.live = None
        self.changed.emit(True)

    def clear(self) -> None:
        """Forget the finished runs (a live one keeps drawing)."""
        self.runs.clear()
        self.changed.emit(True)


class TrainCurve(QWidget):
    """A plot of a :class:`CurveStore`: accuracy (solid, dots at epoch ends) and sparsity
    (dashed) against epoch, one colour a run, a legend, and a Clear button."""

    def __init__(self, store: CurveStore, parent=None):
        super().__init__(parent)
        self.store = store
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(60)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "accuracy, sparsity")
        self.plot.showGrid(True, True, 0.25)
        self.plot.setYRange(0, 1.02, padding=0)
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, -10), labelTextSize="8pt")
        self.hint = QLabel("solid: held-out accuracy · dashed: sparsity · Fine-tune or Train… (Prune menu) draws here; finished runs stay until cleared")
        self.hint.setWordWrap(True)
        self.clear_button = QPushButton("Clear curves")
        self.clear_button.setToolTip("forget the finished runs' curves")
        self.clear_button.clicked.connect(store.clear)
        row = QHBoxLayout()
        row.addWidget(self.hint, 1)
        row.addWidget(self.clear_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot, 1)
        lay.addLayout(row)
        self._items: list[tuple[CurveRun, pg.PlotDataItem, pg.PlotDataItem]] = []
        store.changed.connect(self._redraw)
        self._redraw(True)

    def _pens(self, i: int, live: bool):
        c = COLOURS[i % len(COLOURS)]
        width = 2.5 if live else 1.8
        return pg.mkPen(c, width=width), pg.mkPen(c, width=width * 0.7, style=Qt.PenStyle.DashLine), c

    def _redraw(self, structural: bool) -> None:
        if structural:
            for _, a, s in self._items:
                self.plot.removeItem(a)
                self.plot.removeItem(s)
            self.legend.clear()
            self._items = []
            runs = list(self.store.runs) + ([self.store.live] if self.store.live is not None else [])
            for i, run in enumerate(runs):
                acc_pen, sp_pen, c = self._pens(i, run is self.store.live)
                name = run.label + ("" if run.finished else " (running)")
                a = pg.PlotDataItem(pen=acc_pen, symbol="o", symbolSize=6, symbolBrush=c, symbolPen=None, name=name)
                s = pg.PlotDataItem(pen=sp_pen)
                self.plot.addItem(a)
                self.plot.addItem(s)
                self._items.append((run, a, s))
            self.clear_button.setEnabled(bool(self.store.runs))
            self.hint.setText("solid: held-out accuracy · dashed: sparsity" + ("" if runs else " · Fine-tune or Train… (Prune menu) draws here; finished runs stay until cleared"))
        xmax = 1.0
        for run, a, s in self._items:
            a.setData(run.acc_x, run.acc_y)
            s.setData(run.sp_x, run.sp_y)
            xmax = max([xmax, *run.sp_x, *run.acc_x])
        self.plot.setXRange(0, xmax, padding=0.03)

    @property
    def labels(self) -> list[str]:
        """Legend texts, in drawing order."""
        return [item[1].name() for item in self._items]
