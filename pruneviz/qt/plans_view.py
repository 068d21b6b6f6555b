"""The plans tab of the Decide dock: every branch of the history tree with its sparsity,
parameters, accuracy and loss, switched to with a double click, renamed in place, and two plans
compared side by side (per-layer sparsity bars, per-class accuracy)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget
import pyqtgraph as pg

from . import decide_plots as dp

COLUMNS = ["plan", "steps", "sparsity", "params", "accuracy", "loss"]


class PlansView(QWidget):
    def __init__(self, window, jobs, panel, parent=None):
        super().__init__(parent)
        self.window, self.jobs, self.panel = window, jobs, panel
        self.rows: dict[str, dict] = {}
        self._session = None
        lay = QVBoxLayout(self)
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
        lay.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background="w")
        rl.addWidget(self.plot, 1)
        self.classes = QLabel("")
        self.classes.setWordWrap(True)
        rl.addWidget(self.classes)
        split.addWidget(right)
        split.setSizes([420, 520])
        lay.addWidget(split, 1)

    @property
    def session(self):
        return self.window.session

    def refresh(self) -> None:
        s = self.session
        if s is not self._session:
            if self._session is not None:
                self._session.changed.disconnect(self._on_change)
            self._session = s
            self.rows = {}
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
        acc = getattr(self.window, "acc", None)
        if change.kind == "plan" and acc is not None:
            # switching at the shared steps: the accuracy points past them belong to the other plan
            acc.forget_after(self.session.history.index + 1)
        if change.kind == "edit":
            self.rows.pop(self.session.history.current_plan, None)  # its figures are stale now
        QTimer.singleShot(0, self.refresh)  # not inside the tree's own signal (a rename in place)

    def _switch(self, item, _col=0) -> None:
        if item is None:
            return
        while item.parent() is not None:
            item = item.parent()
        self.window._guard(self.session.switch_plan, item.data(0, Qt.ItemDataRole.UserRole))

    def _renamed(self, item, col) -> None:
        if col != 0 or item.parent() is not None:
            return
        old, new = item.data(0, Qt.ItemDataRole.UserRole), item.text(0).strip()
        if new != old:
            self.window._guard(self.session.rename_plan, old, new)  # refused: a dialog, nothing renamed
            if old in self.rows and any(p["name"] == new for p in self.session.plans()):
                self.rows[new] = self.rows.pop(old)
        QTimer.singleShot(0, self.refresh)

    def run_measure(self) -> bool:
        s = self.session
        self.rows = {}
        self.panel._total = len(s.plans())
        return self.jobs.start("plans", lambda cancel: s.plan_summaries(cancel))

    def on_row(self, row: dict) -> None:
        self.rows[row["name"]] = row
        self.panel._count += 1
        self.panel.progress.setValue(self.panel._count)
        self.refresh()

    def on_done(self, rows) -> None:
        for row in rows or []:
            self.rows[row["name"]] = row
        self.refresh()
        names = [r["name"] for r in rows or []]
        if len(names) >= 2:
            self.show_compare(names[:2])

    def compare_selected(self) -> None:
        names = []
        for item in self.tree.selectedItems():
            while item.parent() is not None:
                item = item.parent()
            name = item.data(0, Qt.ItemDataRole.UserRole)
            if name not in names:
                names.append(name)
        if len(names) != 2 or not all(n in self.rows for n in names):
            self.window.show_error("select two plans, after Measure plans, to compare them")
            return
        self.show_compare(names)

    def show_compare(self, names: list[str]) -> None:
        rows = [self.rows[n] for n in names]
        layers = [layer.name for layer in self.session.layers]
        dp.plans_plot(rows, layers, self.plot)
        lines = []
        for r in rows:
            acc = "no data" if r["accuracy"] is None else f"accuracy {r['accuracy']:.4f}, per class " + " ".join(f"{v:.2f}" for v in r["per_class"])
            lines.append(f"<b>{r['name']}</b>: sparsity {r['sparsity']:.1%}, {r['params']:,} params, {acc}")
        self.classes.setText("<br>".join(lines))


def _pct(v) -> str:
    return "" if v is None else f"{v:.1%}"


def _int(v) -> str:
    return "" if v is None else f"{v:,}"


def _num(v) -> str:
    return "" if v is None else f"{v:.4f}"
