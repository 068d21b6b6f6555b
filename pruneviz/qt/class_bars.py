"""Per-class accuracy bars under the accuracy curve, their change labels and the table of every class.

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

Example::

    bars = ClassBars(QColor("steelblue"))
    bars.baseline, bars.current = baseline_result, current_result
    bars.redraw()
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .plain import literal

MAX_CLASS_BARS = 20  # more classes than this: only the largest changes are drawn


class ClassBars(QWidget):
    """The per-class plot with its legend and "All classes…" button; fed two EvalResults."""

    def __init__(self, accent: QColor, parent=None):
        super().__init__(parent)
        self.baseline = None
        self.current = None
        self.has_data = True
        self.class_plot = pg.PlotWidget()
        self.class_plot.setMinimumHeight(80)
        self.class_plot.setLabel("left", "per-class acc.")
        self.class_plot.setMouseEnabled(x=False, y=False)
        self.class_plot.setYRange(0, 1.12, padding=0.02)  # room for the Δ labels above full bars
        self.base_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=(128, 128, 128, 140), pen=None)
        self.cur_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=accent, pen=None)
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
        legend = "<span style='color:gray'>■</span> baseline &nbsp; <span style='color:%s'>■</span> current &nbsp; Δ pp" % accent.name()
        self.class_legend = QLabel(legend)
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
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.class_plot, 1)
        lay.addLayout(legend_row)

    def set_has_data(self, has: bool) -> None:
        self.has_data = has
        self.setVisible(has)
        self.all_classes.setVisible(has and len(self.shown_classes) < self._class_count())

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
            self.redraw()

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

    def redraw(self) -> None:
        """Draw the bars and labels for the current ``baseline`` and ``current`` results."""
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
