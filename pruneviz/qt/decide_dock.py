"""The "Decide" dock: the analyses of :mod:`pruneviz.core.analysis` as views.

Tabs: layer sensitivity (click a curve to show that layer), the knockout map of the current
layer beside a criterion's scores and every criterion's faithfulness, two criteria side by side,
overlaid sweeps, the budget allocation with Apply, and the plans (:mod:`.plans_view`). Every
analysis runs in a :class:`~pruneviz.qt.job_runner.JobRunner` worker on a copy of the session;
points stream into the plot as they are measured, with progress and Cancel, and the window stays
usable meanwhile. :class:`~pruneviz.qt.decide_page.DecidePage` puts it in a dock of the window
(View > Decide), or a page in presentation mode.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pruneviz.core import allocation, analysis, units
from pruneviz.core.errors import PrunevizError

from .hints import error_text, no_neurons_text
from . import decide_plots as dp
from .accuracy_plot import ElidedLabel
from .controls import methods
from .job_runner import JobRunner
from .criteria_view import CriteriaView
from .plans_view import PlansView
from .plain import plain_label


def _levels(text: str) -> list[float]:
    try:
        return analysis.check_levels([float(t) for t in text.replace(" ", "").split(",") if t])
    except ValueError:
        raise PrunevizError(f"levels must be numbers separated by commas, e.g. 0.1,0.5,0.9; got {text!r}") from None


#: the Decide plots' least height: with it, the window with the dock open still fits 1280×720,
#: also in presentation mode (the dock takes more room whenever the window has it)
PLOT_MIN_HEIGHT = 48


class DecidePanel(QWidget):
    """The Decide tabs over one window's session; one analysis runs at a time."""

    def __init__(self, state, *, status, tree, acc, parent=None):
        super().__init__(parent)
        self.state, self.reports, self.tree = state, status, tree
        self.jobs = JobRunner(self)
        self.sens_result: dict | None = None
        self.sens_version = None  # version the sensitivity was measured at
        self.plan: dict[str, float] | None = None
        self._partial: dict | None = None
        self._total = 0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.jobs.cancel)
        # on the progress row, elided (whole text in the tooltip): a line of its own cost the dock
        # a row of height that a 1280×720 window does not have
        self.status = ElidedLabel("")
        self.progress.setMinimumWidth(160)
        self.progress.setMaximumWidth(320)
        self.ray = dp.ray_field()
        status_row = dp.row(self.progress, self.cancel, self.status, "Ray", self.ray)
        status_row.setStretch(2, 1)
        lay.addLayout(status_row)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        lay.addWidget(self.tabs, 1)
        self._build_sensitivity()
        self._build_knockout()
        self.criteria = CriteriaView(state, self._fill)
        self.criteria.run.clicked.connect(self.run_compare)
        self.tabs.addTab(self.criteria, "Criteria")
        self._build_sweeps()
        self._build_allocation()
        self.plans = PlansView(state, self.jobs, self, status=status, acc=acc)
        self.tabs.addTab(self.plans, "Plans")
        for plot in (self.sens_plot, self.ko_plot, self.ko_table, self.criteria.view, self.sweep_plot, self.alloc_plot, self.plans.tree, self.plans.plot, self.plans.curves):
            plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(lambda name: self._done(f"{name}: cancelled"))
        self.jobs.started.connect(self._on_started)

    @property
    def session(self):
        return self.state.session

    @property
    def ray_address(self) -> str | None:
        """Where analyses run: None here, else ``local`` or a Ray cluster address."""
        text = self.ray.text().strip()
        return text or None

    def set_session(self, s) -> None:
        self.jobs.cancel()
        self.sens_result, self.plan, self.sens_version = None, None, None
        # the old model's results go first: refilling the criterion boxes redraws the knockout,
        # which asked the new session for the scores of the old model's layer (an exception in a slot)
        self.ko_result = None
        self.criteria.result = None
        for combo, gran in ((self.sens_method, self.sens_gran.currentText()), (self.ko_method, "neuron"), (self.criteria.a, self.criteria.gran.currentText()), (self.criteria.b, self.criteria.gran.currentText())):
            self._fill(combo, gran)
        if self.criteria.b.findText("random") >= 0 and self.criteria.b.currentText() == self.criteria.a.currentText():
            self.criteria.b.setCurrentText("taylor" if self.criteria.b.findText("taylor") >= 0 else "random")
        has_data = s.data is not None
        for b in (self.sens_run, self.ko_run, self.sweep_run, self.alloc_plan):
            b.setEnabled(has_data)
            b.setToolTip("" if has_data else "needs evaluation data: File > Open data…")
        self.ko_run.setEnabled(has_data and s.neuron_pruning)
        self.alloc_apply.setEnabled(False)
        for w in (self.sens_plot, self.sweep_plot, self.ko_plot, self.alloc_plot):
            w.getPlotItem().clear()
        self.plans.refresh()

    @staticmethod
    def _page() -> tuple[QWidget, QVBoxLayout]:
        """A tab page with thin margins (every pixel of height counts at 1280×720)."""
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.setSpacing(3)
        return tab, lay

    def _fill(self, combo: QComboBox, granularity: str) -> None:
        cur = combo.currentText()
        combo.clear()
        combo.addItems(methods(granularity, self.session is not None and self.session.data is not None))
        if combo.findText(cur) >= 0:
            combo.setCurrentText(cur)

    # ------------------------------------------------------------------ tabs
    def _build_sensitivity(self) -> None:
        tab, lay = self._page()
        self.sens_gran = QComboBox()
        self.sens_gran.addItems(units.leveled())
        self.sens_method = QComboBox()
        self.sens_levels = QLineEdit("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
        self.sens_run = QPushButton("Run")
        self.sens_gran.currentTextChanged.connect(lambda g: self._fill(self.sens_method, g))
        self.sens_run.clicked.connect(self.run_sensitivity)
        lay.addLayout(dp.row(self.sens_gran, "by", self.sens_method, "levels", self.sens_levels, self.sens_run))
        self.sens_plot = pg.PlotWidget(background="w")
        self.sens_plot.setToolTip("click a curve to show its layer")
        lay.addWidget(self.sens_plot, 1)
        self.tabs.addTab(tab, "Sensitivity")

    def _build_knockout(self) -> None:
        tab, lay = self._page()
        self.ko_layer = plain_label(QLabel(""))  # names a layer from the file
        self.ko_method = QComboBox()
        self.ko_run = QPushButton("Run on this layer")
        self.ko_run.clicked.connect(self.run_knockout)
        self.ko_method.currentTextChanged.connect(lambda _m: self._draw_knockout())
        lay.addLayout(dp.row(self.ko_layer, "criterion", self.ko_method, None, self.ko_run))
        self.ko_plot = pg.PlotWidget(background="w")
        body = QHBoxLayout()  # side by side: stacked, they made the dock too tall for 1280×720
        body.addWidget(self.ko_plot, 3)
        lay.addLayout(body, 1)
        self.ko_table = QTableWidget(0, 3)
        self.ko_table.setHorizontalHeaderLabels(["criterion", "Spearman ρ", "top-10 overlap"])
        self.ko_table.verticalHeader().setVisible(False)
        self.ko_table.horizontalHeader().setStretchLastSection(True)
        body.addWidget(self.ko_table, 2)
        self.ko_result: dict | None = None
        self.tabs.addTab(tab, "Knockout")

    def _build_sweeps(self) -> None:
        tab, lay = self._page()
        self.sweep_methods = {m: QCheckBox(m) for m in units.WEIGHT.methods()}
        for m in units.WEIGHT.methods(has_data=False):
            self.sweep_methods[m].setChecked(True)
        self.sweep_scopes = {sc: QCheckBox(sc) for sc in units.SCOPES}
        self.sweep_scopes["layer"].setChecked(True)
        self.sweep_levels = QLineEdit("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
        self.sweep_run = QPushButton("Run")
        self.sweep_run.clicked.connect(self.run_sweeps)
        lay.addLayout(dp.row(*self.sweep_methods.values(), "|", *self.sweep_scopes.values(), "levels", self.sweep_levels, self.sweep_run))
        self.sweep_plot = pg.PlotWidget(background="w")
        lay.addWidget(self.sweep_plot, 1)
        self.tabs.addTab(tab, "Sweeps")

    def _build_allocation(self) -> None:
        tab, lay = self._page()
        self.alloc_target = QDoubleSpinBox()
        self.alloc_target.setRange(1.0, 99.0)
        self.alloc_target.setValue(60.0)
        self.alloc_target.setSuffix(" %")
        self.alloc_plan = QPushButton("Plan")
        self.alloc_apply = QPushButton("Apply")
        self.alloc_apply.setEnabled(False)
        self.alloc_plan.clicked.connect(self.run_allocation)
        self.alloc_apply.clicked.connect(self.apply_allocation)
        self.alloc_info = ElidedLabel("per-layer sparsities from the weight sensitivity curves (greedy over their convex hulls)")
        controls = dp.row("target sparsity", self.alloc_target, self.alloc_plan, self.alloc_apply, self.alloc_info)
        controls.setStretch(4, 1)
        lay.addLayout(controls)
        self.alloc_plot = pg.PlotWidget(background="w")
        lay.addWidget(self.alloc_plot, 1)
        self.tabs.addTab(tab, "Allocation")

    # --------------------------------------------------------------- running
    def _start(self, name: str, factory, total: int) -> bool:
        if self.session is None or self.session.data is None:
            return False
        self._total = total
        if not self.jobs.start(name, factory):
            self.status.setText("another analysis is running: cancel it first")
            return False
        return True

    def _guarded(self, fn):
        try:
            return fn()
        except PrunevizError as exc:
            self.reports.show_error(error_text(exc))
            return None

    def run_sensitivity(self) -> bool:
        s = self.session
        levels = self._guarded(lambda: _levels(self.sens_levels.text()))
        if levels is None:
            return False
        gran, method = self.sens_gran.currentText(), self.sens_method.currentText()
        names = self._guarded(lambda: s.select_layers(None, gran))
        if names is None:
            return False
        self._partial = {"baseline": None, "granularity": gran, "method": method, "levels": levels, "layers": {n: [] for n in names}}
        self._version = s.version
        ray = self.ray_address
        return self._start("sensitivity", lambda cancel: s.sensitivity(None, levels, gran, method, cancel=cancel, ray=ray), len(names) * len(levels))

    def run_knockout(self) -> bool:
        s, layer = self.session, self.state.layer
        self.ko_result = {"layer": layer, "baseline": {"loss": 0.0}, "neurons": [], "faithfulness": {}}
        ray = self.ray_address
        return self._start("knockout", lambda cancel: s.knockout(layer, cancel=cancel, ray=ray), int(s.neuron_mask(layer).sum()))

    def run_compare(self) -> bool:
        s, layer = self.session, self.state.layer
        a, b, g = self.criteria.a.currentText(), self.criteria.b.currentText(), self.criteria.gran.currentText()
        if units.get(g).edits == "chan" and not s.neuron_pruning:
            self.reports.show_error(f"neuron pruning is not available for this model: {no_neurons_text(s)}")
            return False
        return self.jobs.start("criteria", lambda cancel: s.compare_criteria(layer, a, b, g, cancel=cancel)) and self.set_total(2)

    def set_total(self, n: int) -> bool:
        """The run ahead measures ``n`` points (the progress bar's range); True, to chain after a start."""
        self._total = n
        return True

    def show_count(self, done: int, total: int) -> None:
        """``done`` of ``total`` points measured (a run that knows its own count: plans)."""
        self._count = done
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def run_sweeps(self) -> bool:
        s = self.session
        levels = self._guarded(lambda: _levels(self.sweep_levels.text()))
        ms = [m for m, c in self.sweep_methods.items() if c.isChecked() and (s.data is not None or m in units.WEIGHT.methods(has_data=False))]
        scopes = [sc for sc, c in self.sweep_scopes.items() if c.isChecked()]
        if levels is None or not ms or not scopes:
            if levels is not None:
                self.reports.show_error("choose at least one method and one scope")
            return False
        combos = [(m, sc, "weight") for m in ms for sc in scopes]
        self._partial = {"curves": [{"method": m, "scope": sc, "granularity": g, "points": []} for m, sc, g in combos]}
        ray = self.ray_address
        return self._start("sweeps", lambda cancel: analysis.sweeps(s, levels, scopes, ["weight"], ms, cancel=cancel, ray=ray), len(combos) * len(levels))

    def run_allocation(self) -> bool:
        s = self.session
        if self.sens_result is not None and self.sens_result["granularity"] == "weight" and self.sens_version == s.version:
            return self._make_plan()
        self._partial = None
        self._version = s.version
        names = [layer.name for layer in s.layers]
        return self._start("allocation", lambda cancel: s.sensitivity(None, None, "weight", "magnitude", cancel=cancel), len(names) * 9)

    def _make_plan(self) -> bool:
        s = self.session
        target = self.alloc_target.value() / 100
        plan = self._guarded(lambda: allocation.allocate(s, target, self.sens_result))
        if plan is None:
            return False
        self.plan = plan
        current = {layer.name: s.sparsity(layer.name) for layer in s.layers}
        dp.allocation_plot(plan, current, self.alloc_plot, target)
        self.alloc_apply.setEnabled(True)
        base = self.sens_result["baseline"]
        self.alloc_info.setText(f"plan for {target:.0%} overall: " + ", ".join(f"{n} {v:.0%}" for n, v in plan.items())
                                + f"  (baseline accuracy {base['accuracy']:.4f}); Apply prunes it as one undo step")
        return True

    def apply_allocation(self) -> None:
        if self.plan is None:
            return
        n = self.reports.guard(self.session.apply_allocation, self.plan)
        if n is not None:
            self.status.setText(f"applied the plan: pruned {n:,} weights (one undo step)")
            self.alloc_apply.setEnabled(False)

    # ----------------------------------------------------------- job signals
    def _on_started(self, name: str) -> None:
        self.cancel.setEnabled(True)
        self._count = 0
        self.progress.setRange(0, max(self._total, 1))
        self.progress.setValue(0)
        self.progress.setFormat(f"{name}: %v of %m")
        self.status.setText(f"{name} running: the window stays usable; analyses use a copy of the model")

    def _on_progress(self, name: str, item) -> None:
        if name == "plans":
            self.plans.on_row(item)
            return
        self._count += 1
        self.progress.setValue(min(self._count, self.progress.maximum()))
        if name == "sensitivity" and self._partial is not None:
            self._partial["layers"][item["layer"]].append(item)
            dp.sensitivity_plot(self._partial, self.sens_plot, self.state.layer)
            self._connect_curves()
        elif name == "sweeps" and self._partial is not None:
            c = next(c for c in self._partial["curves"] if (c["method"], c["scope"]) == (item["method"], item["scope"]))
            c["points"].append(item)
            dp.sweep_plot(self._partial, self.sweep_plot)
        elif name == "knockout" and self.ko_result is not None:
            self.ko_result["neurons"].append(item)
        elif name == "criteria":
            self.status.setText(f"scored {item['method']} (colour scale: {item['scale']})")

    def _on_finished(self, name: str, value) -> None:
        if name == "sensitivity" or name == "allocation":
            self.sens_result, self.sens_version = value, self._version
            if name == "sensitivity":
                dp.sensitivity_plot(value, self.sens_plot, self.state.layer)
                self._connect_curves()
            else:
                self._make_plan()
        elif name == "sweeps":
            dp.sweep_plot(value, self.sweep_plot)
        elif name == "knockout":
            self.ko_result = value
            self._draw_knockout()
        elif name == "criteria":
            self.criteria.result = value
            self.criteria.draw()
        elif name == "plans":
            self.plans.on_done(value)
        self._done(f"{name}: done", finished=True)

    def _on_failed(self, name: str, msg: str) -> None:
        self._done(f"{name} failed: {msg}")
        self.reports.show_error(f"{name} failed: {msg}")

    def _done(self, text: str, finished: bool = False) -> None:
        """The bar keeps how far the run got (full when it finished) and says how it ended."""
        self.cancel.setEnabled(False)
        if finished:
            self.progress.setValue(self.progress.maximum())
        self.progress.setFormat(("done" if finished else "stopped") + (": %v of %m" if self.progress.maximum() > 1 else ""))
        self.status.setText(text)

    # ---------------------------------------------------------------- drawing
    def _connect_curves(self) -> None:
        for curve in getattr(self.sens_plot, "curves", {}).values():
            curve.sigClicked.connect(lambda c: self.tree.select(c.layer))

    def _draw_knockout(self) -> None:
        res = self.ko_result
        if res is None or "faithfulness" not in res or not res.get("neurons"):
            return
        method = self.ko_method.currentText()
        self.ko_layer.setText(f"layer {res['layer']}")
        scores = self.session.scores(res["layer"], method, "neuron").tolist() if method else None
        dp.knockout_plot(res, self.ko_plot, scores, method)
        dp.faithfulness_table(res, self.ko_table)
