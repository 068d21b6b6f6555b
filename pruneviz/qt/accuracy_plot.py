"""Accuracy panel: baseline vs current, accuracy against sparsity per history step, per-class bars.

Per class, the baseline bar (grey) stands beside the current bar, and the change in percentage
points is written above each pair (red when the class lost accuracy, green when it gained), so a
class that collapses is visible at a glance, not only in a tooltip. In a narrow dock the labels
would run into each other ("-14-11 -6"): they are placed largest change first, a label that
would touch one already placed moves up one line where the plot has room, and otherwise is left
out (the plot's tooltip lists every class), so the biggest changes are always written and
nothing overlaps.

With more than ``MAX_CLASS_BARS`` classes (ImageNet's 1,000) one bar pair per class would be a
grey comb: the plot then shows only the classes that changed most (largest |Δ|, or the least
accurate ones before there is a change), labelled with their class index, and the "All
classes…" button opens a sortable table of every class.

While an evaluation runs, the running estimate is drawn with its 95% interval (from
``Progress.low``/``high``), so the user sees the answer converge instead of waiting.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

MAX_CLASS_BARS = 20  # more classes than this: only the largest changes are drawn

NO_DATA_TEXT = (
    "No evaluation data is open, so accuracy cannot be measured yet: pruneviz needs labelled "
    "examples to run the model on. Use the demo data (8×8 digits) if this model reads them, or "
    "open a data file."
)

from .plain import literal


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
    """Read-outs and plots of evaluation results; fed by the window from the EvalRunner."""

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

        self.class_plot = pg.PlotWidget()
        self.class_plot.setMinimumHeight(80)
        self.class_plot.setLabel("left", "per-class acc.")
        self.class_plot.setMouseEnabled(x=False, y=False)
        self.class_plot.setYRange(0, 1.12, padding=0.02)  # room for the Δ labels above full bars
        self.base_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=(128, 128, 128, 140), pen=None)
        self.cur_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=self.accent, pen=None)
        self.class_plot.addItem(self.base_bars)
        self.class_plot.addItem(self.cur_bars)
        self.delta_labels: list[pg.TextItem] = []
        self._delta_wanted: list[int] = []  # classes whose change is worth a label
        self._delta_base: dict[int, float] = {}  # class -> label's y just above its bars
        # labels keep their pixel size: place them again once a resize has settled the view
        self._place_timer = QTimer(self)
        self._place_timer.setSingleShot(True)
        self._place_timer.setInterval(0)
        self._place_timer.timeout.connect(self._place_deltas)
        self.class_plot.getPlotItem().vb.sigResized.connect(self._place_timer.start)
        self._place_timer.timeout.connect(self._refit_classes)
        self._legend_text = "<span style='color:gray'>■</span> baseline &nbsp; <span style='color:%s'>■</span> current &nbsp; Δ pp" % self.accent.name()
        self.class_legend = QLabel(self._legend_text)
        self.class_legend.setWordWrap(True)  # two lines rather than a dock wider than a 1024-pixel screen
        self.shown_classes: list[int] = []  # bar position -> class index
        self.all_classes = QPushButton("All classes…")
        self.all_classes.setToolTip("Every class's baseline and current accuracy and change, in a sortable table")
        self.all_classes.clicked.connect(self.show_class_table)
        self.all_classes.hide()
        self.class_table: ClassTable | None = None
        legend_row = QHBoxLayout()
        legend_row.setContentsMargins(0, 0, 0, 0)
        legend_row.addWidget(self.class_legend, 1)
        legend_row.addWidget(self.all_classes)

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
        lay.addWidget(self.class_plot, 2)
        lay.addLayout(legend_row)
        self._with_data = [self.estimate, self.curve_plot, self.class_plot, self.class_legend, *self.cells.values()]
        self._grid = grid

    def set_has_data(self, has: bool) -> None:
        """With evaluation data: the read-outs and plots; without: what is missing and how to get it."""
        self.has_data = has
        self.no_data.setVisible(not has)
        for i in range(self._grid.count()):
            self._grid.itemAt(i).widget().setVisible(has)
        for widget in self._with_data:
            widget.setVisible(has)
        self.all_classes.setVisible(has and len(self.shown_classes) < self._class_count())

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
        self._redraw_classes()

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

    def _class_count(self) -> int:
        ref = self.current or self.baseline
        return len(ref.per_class) if ref is not None else 0

    def bar_budget(self) -> int:
        """How many bar pairs fit the plot's width with their class index readable (at most
        ``MAX_CLASS_BARS``, at least 5)."""
        n = self._class_count()
        font = self.class_plot.getAxis("bottom").style.get("tickFont") or self.class_plot.font()
        label = QFontMetrics(font).horizontalAdvance(str(max(0, n - 1)))
        width = self.class_plot.getPlotItem().vb.width() or self.class_plot.width()
        return int(max(5, min(MAX_CLASS_BARS, width // (label + 8))))

    def _refit_classes(self) -> None:
        """After a resize: with many classes, draw as many bars as now fit."""
        if self._class_count() > MAX_CLASS_BARS and len(self.shown_classes) != self.bar_budget():
            self._redraw_classes()

    def top_classes(self, k: int = MAX_CLASS_BARS) -> list[int]:
        """The classes the plot draws: all of them up to ``k``; beyond, the ``k`` with the largest
        |Δ|, ties (and a plot before any change) broken by lowest accuracy, then class index.
        Classes without samples in the data (accuracy NaN) are left out of the plot."""
        n = self._class_count()
        if n <= k:
            return list(range(n))
        acc = np.asarray((self.current or self.baseline).per_class, dtype=float)
        d = self.deltas()
        change = -np.abs(np.asarray(d, dtype=float)) if d else np.zeros(n)
        order = np.lexsort((np.arange(n), np.nan_to_num(acc, nan=2.0), change))
        order = [int(i) for i in order if np.isfinite(acc[i])]
        return order[:k]

    def _redraw_classes(self) -> None:
        b, c = self.baseline, self.current
        ref = c or b
        if ref is None:
            self.shown_classes = []
            self.base_bars.setOpts(x=[], height=[])
            self.cur_bars.setOpts(x=[], height=[])
            return
        n_all = len(ref.per_class)
        shown = self.top_classes(self.bar_budget() if n_all > MAX_CLASS_BARS else MAX_CLASS_BARS)
        self.shown_classes = shown
        n = len(shown)
        x = np.arange(n)
        if b:
            self.base_bars.setOpts(x=x - 0.2, height=np.nan_to_num(np.array([b.per_class[k] for k in shown], dtype=float)))
        if c:
            self.cur_bars.setOpts(x=x + 0.2, height=np.nan_to_num(np.array([c.per_class[k] for k in shown], dtype=float)))
        ax = self.class_plot.getAxis("bottom")
        ax.setTicks([[(i, str(k)) for i, k in enumerate(shown)]])
        self.class_plot.setXRange(-0.6, n - 0.4, padding=0)
        self._set_deltas(b, c, n)
        many = n < n_all
        self.all_classes.setVisible(many and self.has_data)
        if many:
            what = "largest |Δ|" if self.deltas() else "least accurate"
            self.class_plot.setLabel("bottom", f"class: {n} {what} of {n_all:,}")
        else:
            self.class_plot.setLabel("bottom", None)
            self.class_plot.getPlotItem().showLabel("bottom", False)
        if b and c:
            tips = [f"class {k}: {c.per_class[k]:.1%} ({(c.per_class[k] - b.per_class[k]) * 100:+.1f} pp)" for k in shown]
            if many:
                tips = [f"{n} largest changes of {n_all:,} classes (All classes… lists every one):", *tips]
            self.class_plot.setToolTip(literal("\n".join(tips)))
        if self.class_table is not None and self.class_table.isVisible():
            self.class_table.fill(b, c)

    def show_class_table(self) -> "ClassTable":
        """Open (or raise) the table of every class's accuracy and change."""
        if self.class_table is None:
            self.class_table = ClassTable(self)
        self.class_table.fill(self.baseline, self.current)
        self.class_table.show()
        self.class_table.raise_()
        return self.class_table

    def deltas(self) -> list[float]:
        """Per-class change (current − baseline), in percentage points; empty without both."""
        b, c = self.baseline, self.current
        if not (b and c) or len(b.per_class) != len(c.per_class):
            return []
        return [float(np.nan_to_num((ci - bi) * 100)) for bi, ci in zip(b.per_class, c.per_class)]

    def _shown_deltas(self) -> list[float]:
        """``deltas()`` of the classes drawn, by bar position."""
        d = self.deltas()
        return [d[k] for k in self.shown_classes] if d else []

    def _set_deltas(self, b, c, n: int) -> None:
        """One small label per class above its bars: the change in pp, coloured by its sign."""
        while len(self.delta_labels) < n:
            t = pg.TextItem(anchor=(0.5, 1.0))
            f = t.textItem.font()
            f.setPointSizeF(max(6.0, f.pointSizeF() * 0.8))
            t.setFont(f)
            t.textItem.document().setDocumentMargin(1)  # the default 4 px would double a label's width
            t.updateTextPos()
            self.class_plot.addItem(t)
            self.delta_labels.append(t)
        d = self._shown_deltas()
        self._delta_wanted = []
        for i, t in enumerate(self.delta_labels):
            if i >= n or not d or abs(d[i]) < 0.05:  # unchanged classes stay quiet
                t.hide()
                continue
            k = self.shown_classes[i]
            top = max(float(np.nan_to_num(b.per_class[k])), float(np.nan_to_num(c.per_class[k])))
            colour = (200, 40, 40) if d[i] < 0 else (30, 150, 60)
            t.setColor(colour)
            t.setText(f"{d[i]:+.0f}" if abs(d[i]) >= 0.95 else f"{d[i]:+.1f}")
            t.setPos(i, top + 0.01)
            self._delta_base[i] = top + 0.01
            self._delta_wanted.append(i)
        self._place_deltas()

    def _place_deltas(self) -> None:
        """Show the wanted labels, largest change first: just above the bars, or one line higher
        when that touches a label already shown, or not at all (at the plot's current size;
        called again after every resize)."""
        d = self._shown_deltas()
        wanted = [i for i in self._delta_wanted if i < len(d)]
        vb = self.class_plot.getPlotItem().vb
        vb.childTransform()  # bring the view's transform up to date before measuring labels
        inside = vb.sceneBoundingRect()
        line = vb.viewPixelSize()[1]  # data units per pixel, vertically
        shown = []
        for i in sorted(wanted, key=lambda i: (-abs(d[i]), i)):
            t = self.delta_labels[i]
            t.show()
            for lift in (0, 1):
                t.setPos(i, self._delta_base[i])
                t.updateTransform(force=True)
                r = t.sceneBoundingRect()
                if lift:
                    t.setPos(i, self._delta_base[i] + (r.height() + 1) * line)
                    t.updateTransform(force=True)
                    r = t.sceneBoundingRect()
                r = r.adjusted(-1, 0, 1, 0)  # at least 2 px between labels
                if inside.contains(r) and not any(r.intersects(o) for o in shown):
                    shown.append(r)
                    break
            else:
                t.setPos(i, self._delta_base[i])
                t.hide()


class ClassTable(QDialog):
    """Every class's baseline and current accuracy and change (pp), sortable by any column."""

    HEADERS = ["Class", "Baseline", "Current", "Δ pp"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Per-class accuracy")
        self.resize(420, 520)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)

    def fill(self, b, c) -> None:
        ref = c or b
        n = len(ref.per_class) if ref is not None else 0
        self.table.setSortingEnabled(False)
        self.table.setRowCount(n)
        for k in range(n):
            vals = [float(k), b.per_class[k] * 100 if b else None, c.per_class[k] * 100 if c else None]
            vals.append((vals[2] - vals[1]) if b and c else None)
            for col, v in enumerate(vals):
                it = QTableWidgetItem()
                if v is not None and not math.isnan(v):
                    it.setData(Qt.ItemDataRole.DisplayRole, int(v) if col == 0 else round(v, 2))
                if col:
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(k, col, it)
        self.table.setSortingEnabled(True)
        if b and c:  # largest losses first
            self.table.sortItems(3, Qt.SortOrder.AscendingOrder)
