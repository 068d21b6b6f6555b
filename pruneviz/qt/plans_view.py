"""The plans tab of the Decide dock: every branch of the history tree with its sparsity,
parameters, accuracy and loss, switched to with a double click, renamed in place, and two plans
compared side by side (per-layer sparsity bars, their curves of accuracy vs sparsity after every
step with the branch point marked, per-class accuracy)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget
import pyqtgraph as pg

from pruneviz.core.plans import points_to_measure

from . import decide_plots as dp

COLUMNS = ["plan", "steps", "sparsity", "params", "accuracy", "loss"]


class PlansView(QWidget):
    def __init__(self, state, jobs, panel, *, status, acc, parent=None):
        super().__init__(parent)
        self.state, self.jobs, self.panel, self.reports, self.acc = state, jobs, panel, status, acc
        self.rows: dict[str, dict] = {}
        self._session = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.itemDoubleClicked.connect(self._switch)
        self.tree.itemChanged.connect(self._renamed)
        self.measure = QPushButton("Measure plans")
        self.switch = QPushButton("Switch to")
        self.compare = QPushButton("Compare two")
        self.measure.clicked.connect(self.run_measure)
        self.switch.clicked.connect(lambda: self._switch(self.tree.currentItem()))
        self.compare.clicked.connect(self.compare_selected)
        buttons = QHBoxLayout()
        for b in (self.measure, self.switch, self.compare):
            buttons.addWidget(b)
        buttons.addStretch(1)
        # the dock is short: buttons, plans and per-class text share the left column so that
        # the two plots (bars, curves) get the tab's full height, side by side
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(buttons)
        ll.addWidget(self.tree, 1)
        self.classes = QLabel("")
        self.classes.setWordWrap(True)
        self.classes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # in a scroll area: a label's least height is its whole table, which pushed the window
        # past 720 pixels once two plans were compared
        self.classes_area = QScrollArea()
        self.classes_area.setWidget(self.classes)
        self.classes_area.setWidgetResizable(True)
        self.classes_area.setFrameShape(QFrame.Shape.NoFrame)
        self.classes_area.setMinimumHeight(0)
        self.classes_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        ll.addWidget(self.classes_area, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        self.plot = pg.PlotWidget(background="w")  # per-layer sparsity bars
        self.curves = pg.PlotWidget(background="w")  # accuracy vs sparsity after every step
        split.addWidget(self.plot)
        split.addWidget(self.curves)
        split.setSizes([400, 380, 500])
        lay.addWidget(split, 1)

    @property
    def session(self):
        return self.state.session

    def refresh(self) -> None:
        s = self.session
        if s is not self._session:
            if self._session is not None:
                self._session.changed.disconnect(self._on_change)
            self._session = s
            self.rows = {}
            for plot in (self.plot, self.curves):  # another model's plans
                item = plot.getPlotItem()
                item.clear()
                item.setTitle(None)
                if item.legend is not None:
                    item.legend.clear()
                plot.curves, plot.branch = {}, None
            self.classes.setText("")
            if s is not None:
                s.changed.connect(self._on_change)
        if s is None:
            return
        self.tree.blockSignals(True)
        self.tree.clear()
        bold = QFont()
        bold.setBold(True)
        for plan in s.plans():
            row = self.rows.get(plan["name"], {})
            item = QTreeWidgetItem([plan["name"], str(plan["steps"]), _pct(row.get("sparsity")), _int(row.get("params")), _num(row.get("accuracy")), _num(row.get("loss"))])
            item.setData(0, Qt.ItemDataRole.UserRole, plan["name"])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            if plan["current"]:
                for c in range(len(COLUMNS)):
                    item.setFont(c, bold)
                item.setToolTip(0, "the current plan (bold)")
            for label in plan["labels"]:
                item.addChild(QTreeWidgetItem([label]))
            self.tree.addTopLevelItem(item)
        for c in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(c)
        self.tree.blockSignals(False)

    def _on_change(self, change) -> None:
        if change.kind == "plan":
            # switching at the shared steps: the accuracy points past them belong to the other plan
            self.acc.forget_after(self.session.history.index + 1)
        if change.kind == "edit":
            self.rows.pop(self.session.history.current_plan, None)  # its figures are stale now
        QTimer.singleShot(0, self.refresh)  # not inside the tree's own signal (a rename in place)

    def _switch(self, item, _col=0) -> None:
        if item is None:
            return
        while item.parent() is not None:
            item = item.parent()
        self.reports.guard(self.session.switch_plan, item.data(0, Qt.ItemDataRole.UserRole))

    def _renamed(self, item, col) -> None:
        if col != 0 or item.parent() is not None:
            return
        old, new = item.data(0, Qt.ItemDataRole.UserRole), item.text(0).strip()
        if new != old:
            self.reports.guard(self.session.rename_plan, old, new)  # refused: a dialog, nothing renamed
            if old in self.rows and any(p["name"] == new for p in self.session.plans()):
                self.rows[new] = self.rows.pop(old)
        QTimer.singleShot(0, self.refresh)

    def run_measure(self) -> bool:
        s = self.session
        self.rows = {}
        self.panel.set_total(points_to_measure(s))  # every step of the tree, measured once
        return self.jobs.start("plans", lambda cancel: s.plan_summaries(cancel))

    def on_row(self, item: dict) -> None:
        """A progress item of :func:`pruneviz.core.plans.summaries`: a measured point, or a plan's row."""
        self.panel.show_count(item["measured"], item["total"])
        if item["kind"] == "plan":
            self.rows[item["row"]["name"]] = item["row"]
            self.refresh()

    def on_done(self, rows) -> None:
        for row in rows or []:
            self.rows[row["name"]] = row
        self.refresh()
        names = [r["name"] for r in rows or []]
        if names:
            self.show_compare(names[:2])  # a single plan: its own bars and curve

    def compare_selected(self) -> None:
        names = []
        for item in self.tree.selectedItems():
            while item.parent() is not None:
                item = item.parent()
            name = item.data(0, Qt.ItemDataRole.UserRole)
            if name not in names:
                names.append(name)
        if len(names) != 2 or not all(n in self.rows for n in names):
            self.reports.show_error("select two plans, after Measure plans, to compare them")
            return
        self.show_compare(names)

    def show_compare(self, names: list[str]) -> None:
        rows = [self.rows[n] for n in names]
        layers = [layer.name for layer in self.session.layers]
        dp.plans_plot(rows, layers, self.plot)
        dp.plan_curves_plot(rows, self.curves)
        self.classes.setText(_per_class_html(rows))


def _per_class_html(rows: list[dict]) -> str:
    """Per-class accuracy of the compared plans: a small table (plans as rows), or lines past
    a dozen classes (a table that wide would not fit the column)."""
    if any(r["per_class"] is None for r in rows):
        return "per-class accuracy needs evaluation data (File > Open data…)"
    n = max(len(r["per_class"]) for r in rows)
    if n == 0:  # language-model data: accuracy is per token, not per class
        return ""
    if n > 12:
        return "<br>".join(f"<b>{escape(r['name'])}</b> per class: " + " ".join(f"{v:.2f}" for v in r["per_class"]) for r in rows)
    head = "".join(f"<th align='right'>{c}</th>" for c in range(n))
    body = "".join(f"<tr><td><b>{escape(r['name'])}</b></td>" + "".join(f"<td align='right'>{v:.2f}</td>" for v in r["per_class"]) + "</tr>" for r in rows)
    return f"<table cellspacing='0' cellpadding='2'><tr><td>per-class accuracy</td>{head}</tr>{body}</table>"


def _pct(v) -> str:
    return "" if v is None else f"{v:.1%}"


def _int(v) -> str:
    return "" if v is None else f"{v:,}"


def _num(v) -> str:
    return "" if v is None else f"{v:.4f}"
