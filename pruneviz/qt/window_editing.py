"""Editing from the window: neuron selection, prune/restore, the block tool, the threshold, dialogs.

Every edit is a Session verb called through the status reports' ``guard`` (one undo step each); the window redraws
from ``session.changed``, never from here. The threshold previews in yellow what Apply would
prune (single weights, or whole neuron rows) without editing anything.

:class:`Editing` is a controller object (``window.editing``): it takes the window state
(session, layer shown, selection), the layer view (its scores, strip and tabs), the views it
reads clicks from (``heatmap``, ``strip``, ``hist``), the accuracy panel (the baseline Run
until… starts from), the status reports and the action registry; it registers its verbs there
(Prune/Restore selected, Clear selection, Prune…, Step, Run until…, Block tool). Run until…
asks for its run with ``runRequested(args)``; the window hands it to the run loop.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QPushButton, QToolButton
from superqt import QLabeledDoubleSlider


from pruneviz.core import prune_pipeline, units
from pruneviz.core.importance import LOCAL_METHODS
from pruneviz.core.training import complete

from .controls import PruneDialog, RunUntilDialog
from .job_runner import JobRunner
from .labels import ShrinkingLabel


class Editing(QObject):
    """Selection, pruning controls and the threshold: a controller that the window assembles.

    It owns the block tool, the Prune/Restore buttons, the selection read-out and the threshold
    row; the selection and the layer shown are the window state's, shared with the layer view."""

    #: Run until… was accepted: the window's run loop starts with these :class:`RunArgs`
    runRequested = Signal(object)

    def __init__(self, state, *, view, heatmap, strip, hist, acc, status, actions, parent=None):
        super().__init__(parent)
        self.state, self.view, self.status, self.actions = state, view, status, actions
        self.heatmap, self.strip, self.hist, self.acc = heatmap, strip, hist, acc
        self._dialog_parent = parent
        # data-driven scores (taylor, obd, wanda, ...) run a model pass: computed here, in a worker,
        # before the edit that ranks by them (the edit then reads the session's score cache)
        self.prep = JobRunner(self)
        self.prep.finished.connect(self._scores_ready)
        self.prep.failed.connect(self._scores_failed)
        self.prep.dropped.connect(self._scores_stale)
        self._after_scores = None
        self._build_edit_controls()
        self._build_actions()
        view.refreshed.connect(self.refresh_threshold)
        state.selectionChanged.connect(self._show_count)

    def _build_edit_controls(self) -> None:
        """Block tool, Prune/Restore neurons and the selection read-out; the threshold row."""
        self.block = QToolButton()
        self.block.setText("Block tool")
        self.block.setCheckable(True)
        self.block.setToolTip("Drag a rectangle on the heatmap to prune it (hold Ctrl to restore it)")
        self.prune_sel = QPushButton("Prune")
        self.prune_sel.setToolTip("Prune the selected neurons (Delete)")
        self.restore_sel = QPushButton("Restore")
        self.restore_sel.setToolTip("Restore the selected neurons (Shift+Delete)")
        self.sel_label = ShrinkingLabel("none selected")  # elided rather than widening the window
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setDecimals(4)
        self.threshold.setRange(0.0, 1.0)
        self.thr_gran = QComboBox()
        self.thr_gran.addItems([units.get(n).counted_in for n in units.leveled()])
        self.thr_gran.setToolTip("Threshold the scores of single weights, or of whole neurons (rows)")
        self.apply_thr = QPushButton("Apply threshold")
        self.apply_thr.setToolTip("Prune the weights (or neurons) of this layer whose score is below the threshold (one undo step)")
        self.thr_info = QLabel(" ")

        self.block.toggled.connect(self._set_block_mode)
        self.heatmap.rowsClicked.connect(self._click_row)
        self.strip.rowsClicked.connect(self._click_row)
        self.heatmap.rectDragged.connect(self._drag_rect)
        self.prune_sel.clicked.connect(lambda: self.prune_selected(False))
        self.restore_sel.clicked.connect(lambda: self.prune_selected(True))
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.thr_gran.currentTextChanged.connect(lambda _: self.refresh_threshold(reset=True))
        self.hist.thresholdDragged.connect(self.threshold.setValue)
        self.apply_thr.clicked.connect(self.apply_threshold)
        self.heatmap.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.heatmap.customContextMenuRequested.connect(self._context_menu)
        self.heatmap.plot.setMenuEnabled(False)

    def _build_actions(self) -> None:
        """This controller's verbs in the registry: the Edit menu's selection entries, the Prune
        menu's Prune…, Step, Run until…, Stop, and View > Block tool."""
        acts = self.actions
        acts.add("prune", "Prune selected neurons", lambda: self.prune_selected(False), menu="edit",
                 shortcut=[QKeySequence(Qt.Key.Key_Delete), QKeySequence(Qt.Key.Key_Backspace)])
        acts.add("restore", "Restore selected neurons", lambda: self.prune_selected(True), menu="edit", shortcut="Shift+Delete")
        acts.add("clear_selection", "Clear selection", lambda: self.select_neurons(()), menu="edit", shortcut=QKeySequence(Qt.Key.Key_Escape))
        acts.add("prune_dialog", "&Prune…", self.prune_dialog, menu="prune", shortcut="Ctrl+P")
        acts.add("step", "&Step", self.step, menu="prune", shortcut="Ctrl+T", tip="Remove the least important neuron (one undo step)")
        acts.add("run", "&Run until…", self.run_until_dialog, menu="prune", shortcut="Ctrl+R")

    def _show_count(self, rows) -> None:
        n = len(rows)
        self.sel_label.setText("none selected" if not n else f"{n} selected")
        self.sel_label.setTip("neurons selected: click heatmap rows (Ctrl, Shift for more)")

    def _select(self, rows: set[int]) -> None:
        rows = set(rows)
        changed_one = len(rows) == 1 and rows != self.state.selected
        self.state.select(rows)
        self.view.refresh_strip(self.strip.preview if len(self.strip.preview) else None)
        if changed_one or len(rows) != 1:
            self.view.follow_selection(rows)

    def _click_row(self, row: int, mods) -> None:
        if mods & Qt.KeyboardModifier.ControlModifier:
            self._select(self.state.selected ^ {row})
        elif mods & Qt.KeyboardModifier.ShiftModifier and self.state.selected:
            anchor = min(self.state.selected, key=lambda r: abs(r - row))
            lo, hi = sorted((anchor, row))
            self._select(self.state.selected | set(range(lo, hi + 1)))
        else:
            self._select({row})

    def select_neurons(self, rows) -> None:
        """Select neuron rows of the current layer (as clicking them would)."""
        self._select(set(int(r) for r in rows))

    def prune_selected(self, restore: bool = False) -> None:
        if not self.state.selected or self.state.layer is None:
            self.status.bar.showMessage("select neurons first: click rows in the heatmap or the strip", 3000)
            return
        if self.state.session.layer(self.state.layer).kind == "Conv1D":  # shown as stored: rows are inputs, not neurons
            self.status.bar.showMessage("the rows of a Conv1D layer are its inputs: prune its neurons with the Prune controls (granularity neuron)", 5000)
            return
        verb = self.state.session.restore_neurons if restore else self.state.session.prune_neurons
        self.status.guard(verb, self.state.layer, sorted(self.state.selected))

    def _drag_rect(self, r0, r1, c0, c1, restore) -> None:
        self.status.guard(self.state.session.prune_rect, self.state.layer, (r0, r1), (c0, c1), restore=restore)

    def _set_block_mode(self, on: bool) -> None:
        self.heatmap.vb.block_mode = on
        self.status.bar.showMessage("Block tool: drag to prune a block, Ctrl+drag to restore it" if on else "Block tool off: drag to pan", 4000)

    def _context_menu(self, pos) -> None:
        m = QMenu(self.heatmap)
        m.addAction(self.actions["prune"])
        m.addAction(self.actions["restore"])
        m.addSeparator()
        m.addAction("Reset zoom", lambda: self.heatmap.vb.autoRange(padding=0.01))
        m.exec(self.heatmap.mapToGlobal(pos))

    def refresh_threshold(self, reset: bool = False) -> None:
        """Range of the threshold slider from the scores it thresholds (weights or neurons)."""
        if self.state.session is None or self.state.layer is None:
            return
        neurons = self.thr_gran.currentText() == "neurons"
        view = self.view.score_view(self.state.layer, self.view.current_method())
        if neurons:
            ns = self.view.neuron_scores()
            hi = float(np.nanmax(ns)) if ns is not None and ns.size else 1.0
        else:
            hi = float(view.edges[-1]) if view is not None else 1.0
        hi = hi if np.isfinite(hi) and hi > 0 else 1.0
        self.threshold.blockSignals(True)
        if reset or self.threshold.maximum() != hi:
            val = self.threshold.value() if not reset else 0.0
            self.threshold.setRange(0.0, hi)
            self.threshold.setValue(min(val, hi))
        self.threshold.blockSignals(False)
        self.hist.set_threshold(self.threshold.value() if not neurons else 0.0)
        self.hist.line.setVisible(not neurons)
        self._update_preview()

    def _threshold_moved(self, value: float) -> None:
        self.view.show_histogram()  # the threshold is drawn on the histogram
        if self.thr_gran.currentText() == "weights":
            self.hist.set_threshold(value)
        self._update_preview()

    def _update_preview(self) -> None:
        """Yellow: what Apply would prune now (weights in the heatmap, or whole neuron rows in the
        heatmap and the strip)."""
        s, name = self.state.session, self.state.layer
        t = self.threshold.value()
        neurons = self.thr_gran.currentText() == "neurons"
        if t <= 0:
            self.heatmap.set_preview(None)
            self.thr_info.setText("")
            self.view.refresh_strip(None)
            return
        view = self.view.score_view(name, self.view.current_method())
        if view is None or (neurons and view.neurons is None):
            self.heatmap.set_preview(None)
            self.thr_info.setText("scores not ready" if view is None else "no neuron scores for this layer")
            self.view.refresh_strip(None)
            return
        # the window's own scores (what Session.preview_below computes, without scoring again)
        would = view.neurons_below(t, s.neuron_mask(name).numpy()) if neurons else view.below(t)
        if neurons:
            self.heatmap.set_preview_rows(would)
            self.view.refresh_strip(would)
            n = int(would.sum())
            self.thr_info.setText(f"would prune {n:,} more neuron{'s' if n != 1 else ''}")
        else:
            self.heatmap.set_preview(would)
            if self.strip.preview.any():
                self.view.refresh_strip(None)
            self.thr_info.setText(f"would prune {int(np.count_nonzero(would)):,} more")

    def apply_threshold(self) -> None:
        gran = next(n for n in units.leveled() if units.get(n).counted_in == self.thr_gran.currentText())
        n = self.status.guard(self.state.session.prune_below, self.state.layer, self.threshold.value(), self.view.current_method(), gran)
        if n == 0:
            self.status.bar.showMessage("nothing below the threshold", 3000)

    def prune_dialog(self) -> None:
        d = PruneDialog(self.state.session, self.state.layer, self._dialog_parent)
        if d.exec():
            a = d.args()
            # the engine's prune pipeline, as `pruneviz prune` runs it; the live evaluation measures
            job = prune_pipeline.PruneJob(amount=a.amount, scope=a.scope, granularity=a.granularity, method=a.method, layers=a.layers, compensate=a.compensate or None, measure=False)
            self.scored(a.method, a.granularity, lambda: self.status.guard(lambda: complete(prune_pipeline.run(self.state.session, job))))

    def step(self) -> None:
        method = self.view.current_method()

        def go() -> None:
            target = self.status.guard(self.state.session.step, method)
            if target is None and self.state.session.neuron_pruning:
                self.status.bar.showMessage("no neuron left to remove", 3000)

        self.scored(method, "neuron", go)

    # ------------------------------------------------- scores before an edit
    def scored(self, method: str, granularity: str, action) -> bool:
        """Run ``action`` (an edit ranking by ``method``) once the scores it needs are computed.

        A neuron edit before the session's coupling graph exists builds it in the worker first.
        Magnitude and random read one layer's weights and go at once. Data-driven methods
        compute every layer's scores in the worker first, the window usable meanwhile; the
        action runs on the GUI thread when they arrive, unless the model changed in between.
        Returns False when an earlier computation is still running (nothing is done)."""
        s = self.state.session
        # the first neuron edit builds the coupling graph (seconds on a big model): in the worker
        couple = units.get(granularity).edits == "chan" and s.neuron_pruning and s.coupling_built is None
        score = not (method in LOCAL_METHODS or s.data is None)  # a model pass (else the verb refuses itself)
        if not (couple or score):
            action()
            return True
        if self.prep.busy:
            self.status.bar.showMessage(f"still computing {self.prep.name}…", 3000)
            return False
        self._after_scores = (s, action)

        def job(cancel):
            if couple:
                s.build_coupling()  # bounded; a failure leaves the verb to say why
            if score:
                s.scores(None, method, granularity)  # fills the session's score cache for this version
            return None
            yield  # a generator: the JobRunner runs it in the worker

        name = f"{method} scores" if score else "the neuron coupling"
        self.status.bar.showMessage(f"computing {name}…")
        self.prep.start(name, job, session=s)  # keyed: a change meanwhile drops it (JobRunner.stale)
        return True

    def _scores_ready(self, name, _value) -> None:
        pending, self._after_scores = self._after_scores, None
        self.status.bar.clearMessage()
        if pending is None:
            return
        s, action = pending
        if s is self.state.session:
            action()

    def _scores_stale(self, name) -> None:
        self._after_scores = None
        self.status.bar.showMessage(f"{name}: the model changed meanwhile, nothing pruned", 5000)

    def _scores_failed(self, name, msg) -> None:
        self._after_scores = None
        self.status.show_error(f"{name}: {msg}")

    def run_until_dialog(self) -> None:
        base = self.acc.baseline.accuracy if self.acc.baseline else None
        d = RunUntilDialog(self.state.session, base, self._dialog_parent)
        if d.exec():
            self.runRequested.emit(d.args())
