"""Accuracy panel: baseline vs current, accuracy against sparsity per history step, and the
per-class bars (:mod:`pruneviz.qt.class_bars`) below.

While an evaluation runs, the running estimate is drawn with its 95% interval (from
``Progress.low``/``high``), so the user sees the answer converge instead of waiting.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from .class_bars import ClassBars
from .plain import literal

NO_DATA_TEXT = (
    "No evaluation data is open, so accuracy cannot be measured yet: pruneviz needs labelled "
    "examples to run the model on. Use the demo data (8×8 digits) if this model reads them, or "
    "open a data file."
)


def sparsity_range(largest: float) -> tuple[float, float]:
    """The accuracy plot's x range for sparsities up to ``largest``: 0 sits well inside the left
    edge, so the unpruned model's point (and the axis's 0) is not hidden under the axis line."""
    hi = max(0.1, largest * 1.1)
    return -0.06 * hi, hi * 1.02


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2%}"


class ElidedLabel(QLabel):
    """One line of plain text that never widens its dock: elided with "…" when it does not fit,
    the whole text in its tooltip. ``text()`` returns the whole text."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)  # layer names and paths from files: never HTML
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    @property
    def elided(self) -> bool:
        return super().text() != self._full

    def minimumSizeHint(self) -> QSize:
        return QSize(10, super().minimumSizeHint().height())

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(0, self.contentsRect().width()))
        super().setText(shown)
        self.setToolTip(literal(self._full) if shown != self._full else "")


class AccuracyPanel(QWidget):
    """Read-outs and plots of evaluation results; fed by the window from its live evaluation."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.baseline = None
        self.current = None
        self.points: dict[int, tuple[float, float]] = {}  # history index -> (sparsity, accuracy)
        self.current_step = 0
        self.recovery_arrows: list = []  # (sparsity, before, after, line, head) per fine-tune

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(2)
        heads = ["", "accuracy", "loss"]
        for c, h in enumerate(heads):
            lab = QLabel(f"<i>{h}</i>")
            lab.setAlignment(Qt.AlignmentFlag.AlignRight if c else Qt.AlignmentFlag.AlignLeft)
            grid.addWidget(lab, 0, c)
        self.cells: dict[tuple[str, str], QLabel] = {}
        for r, row in enumerate(["baseline", "current", "Δ"], start=1):
            grid.addWidget(QLabel(f"<b>{row}</b>"), r, 0)
            for c, col in enumerate(["acc", "loss"], start=1):
                lab = QLabel("–")
                lab.setAlignment(Qt.AlignmentFlag.AlignRight)
                lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                f = lab.font()
                f.setPointSizeF(f.pointSizeF() * 1.15)
                if row == "current":
                    f.setBold(True)
                lab.setFont(f)
                grid.addWidget(lab, r, c)
                self.cells[(row, col)] = lab
        # one fixed line: a label that changes height re-lays out (and repaints) every plot, and
        # one that wraps or widens pushes the dock; elided, the tooltip carries the whole line
        self.estimate = ElidedLabel(" ")
        self.estimate.setTextFormat(Qt.TextFormat.PlainText)
        self.estimate.setFixedHeight(self.estimate.fontMetrics().height() + 4)
        self.device = QLabel(" ")
        # which data the scores and analyses calibrate on: small, grey, one line
        self.calibration = ElidedLabel(" ")
        self.calibration.setTextFormat(Qt.TextFormat.PlainText)
        f = self.calibration.font()
        f.setPointSizeF(f.pointSizeF() * 0.85)
        self.calibration.setFont(f)
        self.calibration.setStyleSheet("color: gray")
        self.calibration.setFixedHeight(self.calibration.fontMetrics().height() + 2)

        pal = self.palette()
        self.accent = QColor(pal.highlight().color())
        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setMinimumHeight(90)
        self.curve_plot.setLabel("left", "accuracy")
        self.curve_plot.setLabel("bottom", "sparsity")
        self.curve_plot.showGrid(True, True, 0.25)
        for ax in ("left", "bottom"):
            self.curve_plot.getAxis(ax).enableAutoSIPrefix(False)
        self.curve_plot.setXRange(*sparsity_range(0.0), padding=0)
        self.curve = pg.PlotDataItem(pen=pg.mkPen(self.accent, width=2), symbol="o", symbolSize=6, symbolBrush=self.accent, symbolPen=None)
        self.here = pg.ScatterPlotItem(size=13, pen=pg.mkPen((255, 140, 0), width=2), brush=None)
        self.run_est = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0), beam=0.01, pen=pg.mkPen((255, 140, 0), width=2))
        self.run_dot = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(255, 140, 0), pen=None)
        # label right-aligned just inside the right edge; pyqtgraph flips it to the side of the line
        # that faces the view's centre, so it is never cut at the right or the top
        self.base_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((128, 128, 128), style=Qt.PenStyle.DashLine), label="baseline", labelOpts={"position": 0.98, "color": (128, 128, 128), "anchors": [(1, 0), (1, 1)]})
        self.base_line.hide()
        for it in (self.base_line, self.curve, self.run_est, self.run_dot, self.here):
            self.curve_plot.addItem(it)

        self.classes = ClassBars(self.accent)
        self.class_plot = self.classes.class_plot  # the plot itself (presentation mode, tests)

        # without data: say so in full words, and offer the two ways to get some
        self.no_data = QWidget()
        nd = QVBoxLayout(self.no_data)
        nd.setContentsMargins(0, 0, 0, 0)
        self.no_data_text = QLabel(NO_DATA_TEXT)
        self.no_data_text.setWordWrap(True)
        self.use_demo = QPushButton("Use the demo data")
        self.use_demo.setToolTip("Evaluate on the held-out 8×8 digits (demo:digits)")
        self.open_data = QPushButton("Open data…")
        self.open_data.setToolTip("An .npz or .pt file with inputs x and labels y")
        nd.addWidget(self.no_data_text)
        nd.addWidget(self.use_demo)
        nd.addWidget(self.open_data)
        nd.addStretch(1)
        self.no_data.hide()
        self.has_data = True

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.no_data, 1)
        lay.addLayout(grid)
        lay.addWidget(self.estimate)
        lay.addWidget(self.calibration)
        lay.addWidget(self.curve_plot, 3)
        lay.addWidget(self.classes, 2)
        self._with_data = [self.estimate, self.curve_plot, *self.cells.values()]
        self._grid = grid

    def set_has_data(self, has: bool) -> None:
        """With evaluation data: the read-outs and plots; without: what is missing and how to get it."""
        self.has_data = has
        self.no_data.setVisible(not has)
        for i in range(self._grid.count()):
            self._grid.itemAt(i).widget().setVisible(has)
        for widget in self._with_data:
            widget.setVisible(has)
        self.classes.set_has_data(has)

    def set_calibration(self, info: dict | None) -> None:
        """Say which data calibrates scores and analyses (``Session.calibration_info()``)."""
        if info is None:
            text, tip = "no calibration data: data-driven scores need data", ""
        elif info.get("same_as_eval"):
            text, tip = f"calibrated on the evaluation data {info['spec']}: figures inflated", info.get("note", "")
        else:
            text, tip = f"calibrated on {info['spec']} ({info['samples']:,} samples)", "data-driven scores, sensitivity, knockout and compensation are computed on this data, not on the evaluation data"
        self.calibration.setText(text)
        self.calibration.setToolTip(tip or text)

    # ----------------------------------------------------------------- feeds
    def reset(self) -> None:
        self.baseline = self.current = None
        self.points.clear()
        self.clear_recovery_arrows()
        self.current_step = 0
        self._redraw()

    def add_recovery_arrow(self, sparsity: float, before: float, after: float):
        """Draw a vertical arrow at ``sparsity`` from accuracy ``before`` (right after pruning) to
        ``after`` (after fine-tuning): the recovery. Returns the items; kept until the session changes."""
        colour = (0, 158, 115) if after >= before else (192, 57, 43)
        line = pg.PlotDataItem([sparsity, sparsity], [before, after], pen=pg.mkPen(colour, width=2))
        head = pg.ArrowItem(pos=(sparsity, after), angle=90 if after >= before else -90, headLen=12, tipAngle=40, brush=colour, pen=None)
        for item in (line, head):
            self.curve_plot.addItem(item)
        self.recovery_arrows.append((sparsity, before, after, line, head))
        return line, head

    def clear_recovery_arrows(self) -> None:
        """Remove every recovery arrow."""
        for *_, line, head in self.recovery_arrows:
            self.curve_plot.removeItem(line)
            self.curve_plot.removeItem(head)
        self.recovery_arrows = []

    def set_baseline(self, r) -> None:
        self.baseline = r
        self.points.setdefault(0, (0.0, r.accuracy))
        self.base_line.setValue(r.accuracy)
        self.base_line.show()
        self._redraw()

    def set_step(self, index: int, sparsity: float) -> None:
        """The model changed to history step ``index``: drop points from a discarded future."""
        self.current_step = index
        self.points = {k: v for k, v in self.points.items() if k <= index or k in self.points}
        self._redraw_curve(sparsity)

    def forget_after(self, index: int) -> None:
        """A new edit after an undo discards redo steps: forget their points."""
        self.points = {k: v for k, v in self.points.items() if k < index}

    def set_progress(self, req, p) -> None:
        self.estimate.setText(f"running: {p.accuracy:.2%}  (95% CI {p.low:.2%} – {p.high:.2%}, {p.done:,}/{p.total:,} samples)")
        self.run_dot.setData([req.sparsity], [p.accuracy])
        self.run_est.setData(x=np.array([req.sparsity]), y=np.array([p.accuracy]), top=np.array([p.high - p.accuracy]), bottom=np.array([p.accuracy - p.low]))

    def set_result(self, req, r, incremental: bool = True) -> None:
        """Show result ``r``; ``incremental=False`` says every evaluation is a full pass."""
        self.current = r
        self.points[req.step] = (req.sparsity, r.accuracy)
        self.current_step = req.step
        how = f" (from cached point {r.start})" if r.start else ("" if incremental else " (full pass: the model's graph cannot be traced)")
        self.estimate.setText(f"{r.samples:,} samples on {r.device}{how}")
        self._clear_running()
        self._redraw(req.sparsity)

    def clear_running(self, text: str = " ") -> None:
        self.estimate.setText(text)
        self._clear_running()

    def _clear_running(self) -> None:
        self.run_dot.setData([], [])
        self.run_est.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))

    # ---------------------------------------------------------------- redraw
    def _redraw(self, sparsity: float | None = None) -> None:
        b, c = self.baseline, self.current
        self.cells[("baseline", "acc")].setText(_pct(b.accuracy) if b else "–")
        self.cells[("baseline", "loss")].setText(f"{b.loss:.4f}" if b else "–")
        self.cells[("current", "acc")].setText(_pct(c.accuracy) if c else "–")
        self.cells[("current", "loss")].setText(f"{c.loss:.4f}" if c else "–")
        if b and c:
            da, dl = c.accuracy - b.accuracy, c.loss - b.loss
            self.cells[("Δ", "acc")].setText(f"{da * 100:+.2f} pp")
            self.cells[("Δ", "loss")].setText(f"{dl:+.4f}")
        else:
            self.cells[("Δ", "acc")].setText("–")
            self.cells[("Δ", "loss")].setText("–")
        self._redraw_curve(sparsity)
        self.classes.baseline, self.classes.current = b, c
        self.classes.redraw()

    def _redraw_curve(self, sparsity: float | None = None) -> None:
        pts = sorted(self.points.items())
        if pts:
            xs = np.array([v[0] for _, v in pts])
            ys = np.array([v[1] for _, v in pts])
            order = np.argsort(xs, kind="stable")
            self.curve.setData(xs[order], ys[order])
        else:
            self.curve.setData([], [])
        xs_all = [v[0] for v in self.points.values()] + ([sparsity] if sparsity is not None else [])
        ys_all = [v[1] for v in self.points.values()]
        self.curve_plot.setXRange(*sparsity_range(max(xs_all, default=0)), padding=0)
        if ys_all:
            lo = min(ys_all + ([self.baseline.accuracy] if self.baseline else []))
            self.curve_plot.setYRange(max(0.0, min(lo - 0.05, 0.9)), 1.0, padding=0.02)
        here = self.points.get(self.current_step)
        self.here.setData([here[0]], [here[1]]) if here else self.here.setData([], [])
