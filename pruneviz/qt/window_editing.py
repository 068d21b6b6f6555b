"""Editing from the window: neuron selection, prune/restore, the block tool, the threshold, dialogs.

Every edit is a Session verb called through ``_guard`` (one undo step each); the window redraws
from ``session.changed``, never from here. The threshold previews in yellow what Apply would
prune (single weights, or whole neuron rows) without editing anything.

:class:`Editing` is a controller object (``window.editing``): it reads the window's ``session``,
``layer``, ``selected``, views (``heatmap``, ``strip``, ``hist``, ``filter``, ``lower_tabs``),
``loop``, ``acc`` and the layer view's scores through the window.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QPushButton, QToolButton
from superqt import QLabeledDoubleSlider


from pruneviz.core import units
from pruneviz.core.importance import LOCAL_METHODS

from .controls import PruneDialog, RunUntilDialog
from .job_runner import JobRunner
from .labels import ShrinkingLabel


class Editing(QObject):
    """Selection, pruning controls and the threshold: a controller that the window assembles.

    It owns the block tool, the Prune/Restore buttons, the selection read-out and the threshold
    row; the selection itself (``window.selected``) and the layer shown (``window.layer``) are
    the window's, shared with the layer view."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        # data-driven scores (taylor, obd, wanda, ...) run a model pass: computed here, in a worker,
        # before the edit that ranks by them (the edit then reads the session's score cache)
        self.prep = JobRunner(self)
        self.prep.finished.connect(self._scores_ready)
        self.prep.failed.connect(self._scores_failed)
        self.prep.dropped.connect(self._scores_stale)
        self._after_scores = None
        self._build_edit_controls()

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
        self.w._filter_auto = False  # the filter tab came up by itself on a selection

        self.block.toggled.connect(self._set_block_mode)
        self.w.heatmap.rowsClicked.connect(self._click_row)
        self.w.strip.rowsClicked.connect(self._click_row)
        self.w.heatmap.rectDragged.connect(self._drag_rect)
        self.prune_sel.clicked.connect(lambda: self.prune_selected(False))
        self.restore_sel.clicked.connect(lambda: self.prune_selected(True))
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.thr_gran.currentTextChanged.connect(lambda _: self._refresh_threshold(reset=True))
        self.w.hist.thresholdDragged.connect(self.threshold.setValue)
        self.apply_thr.clicked.connect(self.apply_threshold)
        self.w.heatmap.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.w.heatmap.customContextMenuRequested.connect(self._context_menu)
        self.w.heatmap.plot.setMenuEnabled(False)

    def _select(self, rows: set[int]) -> None:
        one = len(rows) == 1 and set(rows) != self.w.selected
        self.w.selected = set(rows)
        self.w._refresh_strip(self.w.strip.preview if len(self.w.strip.preview) else None)
        if one and self.w.lower_tabs.currentWidget() is not self.w.filter:
            self.w.lower_tabs.setCurrentWidget(self.w.filter)
            self.w._filter_auto = True
        elif len(rows) != 1 and self.w._filter_auto:
            self.w.lower_tabs.setCurrentWidget(self.w.hist)
            self.w._filter_auto = False

    def _click_row(self, row: int, mods) -> None:
        if mods & Qt.KeyboardModifier.ControlModifier:
            self._select(self.w.selected ^ {row})
        elif mods & Qt.KeyboardModifier.ShiftModifier and self.w.selected:
            anchor = min(self.w.selected, key=lambda r: abs(r - row))
            lo, hi = sorted((anchor, row))
            self._select(self.w.selected | set(range(lo, hi + 1)))
        else:
            self._select({row})

    def select_neurons(self, rows) -> None:
        """Select neuron rows of the current layer (as clicking them would)."""
        self._select(set(int(r) for r in rows))

    def prune_selected(self, restore: bool = False) -> None:
        if not self.w.selected or self.w.layer is None:
            self.w.statusBar().showMessage("select neurons first: click rows in the heatmap or the strip", 3000)
            return
        if self.w.session.layer(self.w.layer).kind == "Conv1D":  # shown as stored: rows are inputs, not neurons
            self.w.statusBar().showMessage("the rows of a Conv1D layer are its inputs: prune its neurons with the Prune controls (granularity neuron)", 5000)
            return
        verb = self.w.session.restore_neurons if restore else self.w.session.prune_neurons
        self.w._guard(verb, self.w.layer, sorted(self.w.selected))

    def _drag_rect(self, r0, r1, c0, c1, restore) -> None:
        self.w._guard(self.w.session.prune_rect, self.w.layer, (r0, r1), (c0, c1), restore=restore)

    def _set_block_mode(self, on: bool) -> None:
        self.w.heatmap.vb.block_mode = on
        self.w.statusBar().showMessage("Block tool: drag to prune a block, Ctrl+drag to restore it" if on else "Block tool off: drag to pan", 4000)

    def _context_menu(self, pos) -> None:
        m = QMenu(self.w)
        m.addAction(self.w.act_prune)
        m.addAction(self.w.act_restore)
        m.addSeparator()
        m.addAction("Reset zoom", lambda: self.w.heatmap.vb.autoRange(padding=0.01))
        m.exec(self.w.heatmap.mapToGlobal(pos))

    def _refresh_threshold(self, reset: bool = False) -> None:
        """Range of the threshold slider from the scores it thresholds (weights or neurons)."""
        if self.w.session is None or self.w.layer is None:
            return
        neurons = self.thr_gran.currentText() == "neurons"
        view = self.w._score_views.get((self.w.layer, self.w._method()))
        if neurons:
            ns = self.w._neuron_scores()
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
        self.w.hist.set_threshold(self.threshold.value() if not neurons else 0.0)
        self.w.hist.line.setVisible(not neurons)
        self._update_preview()

    def _threshold_moved(self, value: float) -> None:
        self.w.lower_tabs.setCurrentWidget(self.w.hist)  # the threshold is drawn on the histogram
        self.w._filter_auto = False
        if self.thr_gran.currentText() == "weights":
            self.w.hist.set_threshold(value)
        self._update_preview()

    def _update_preview(self) -> None:
        """Yellow: what Apply would prune now (weights in the heatmap, or whole neuron rows in the
        heatmap and the strip)."""
        s, name = self.w.session, self.w.layer
        t = self.threshold.value()
        neurons = self.thr_gran.currentText() == "neurons"
        if t <= 0:
            self.w.heatmap.set_preview(None)
            self.thr_info.setText("")
            self.w._refresh_strip(None)
            return
        view = self.w._score_views.get((name, self.w._method()))
        if view is None or (neurons and view.neurons is None):
            self.w.heatmap.set_preview(None)
            self.thr_info.setText("scores not ready" if view is None else "no neuron scores for this layer")
            self.w._refresh_strip(None)
            return
        # the window's own scores (what Session.preview_below computes, without scoring again)
        would = (view.neurons < t) & s.neuron_mask(name).numpy() if neurons else view.below(t)
        if neurons:
            self.w.heatmap.set_preview_rows(would)
            self.w._refresh_strip(would)
            n = int(would.sum())
            self.thr_info.setText(f"would prune {n:,} more neuron{'s' if n != 1 else ''}")
        else:
            self.w.heatmap.set_preview(would)
            if self.w.strip.preview.any():
                self.w._refresh_strip(None)
            self.thr_info.setText(f"would prune {int(np.count_nonzero(would)):,} more")

    def apply_threshold(self) -> None:
        gran = next(n for n in units.leveled() if units.get(n).counted_in == self.thr_gran.currentText())
        n = self.w._guard(self.w.session.prune_below, self.w.layer, self.threshold.value(), self.w._method(), gran)
        if n == 0:
            self.w.statusBar().showMessage("nothing below the threshold", 3000)

    def prune_dialog(self) -> None:
        d = PruneDialog(self.w.session, self.w.layer, self.w)
        if d.exec():
            a = d.args()
            self.scored(a.method, a.granularity, lambda: self.w._guard(self.w.session.prune, a.amount, a.scope, a.granularity, a.method, a.layers, a.compensate or False))

    def step(self) -> None:
        method = self.w.method.currentText() or "magnitude"

        def go() -> None:
            target = self.w._guard(self.w.session.step, method)
            if target is None and self.w.session.neuron_pruning:
                self.w.statusBar().showMessage("no neuron left to remove", 3000)

        self.scored(method, "neuron", go)

    # ------------------------------------------------- scores before an edit
    def scored(self, method: str, granularity: str, action) -> bool:
        """Run ``action`` (an edit ranking by ``method``) once the scores it needs are computed.

        A neuron edit before the session's coupling graph exists builds it in the worker first.
        Magnitude and random read one layer's weights and go at once. Data-driven methods
        compute every layer's scores in the worker first, the window usable meanwhile; the
        action runs on the GUI thread when they arrive, unless the model changed in between.
        Returns False when an earlier computation is still running (nothing is done)."""
        s = self.w.session
        # the first neuron edit builds the coupling graph (seconds on a big model): in the worker
        couple = units.get(granularity).edits == "chan" and s.neuron_pruning and s.coupling_built is None
        score = not (method in LOCAL_METHODS or s.data is None)  # a model pass (else the verb refuses itself)
        if not (couple or score):
            action()
            return True
        if self.prep.busy:
            self.w.statusBar().showMessage(f"still computing {self.prep.name}…", 3000)
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
        self.w.statusBar().showMessage(f"computing {name}…")
        self.prep.start(name, job, session=s)  # keyed: a change meanwhile drops it (JobRunner.stale)
        return True

    def _scores_ready(self, name, _value) -> None:
        pending, self._after_scores = self._after_scores, None
        self.w.statusBar().clearMessage()
        if pending is None:
            return
        s, action = pending
        if s is self.w.session:
            action()

    def _scores_stale(self, name) -> None:
        self._after_scores = None
        self.w.statusBar().showMessage(f"{name}: the model changed meanwhile, nothing pruned", 5000)

    def _scores_failed(self, name, msg) -> None:
        self._after_scores = None
        self.w.show_error(f"{name}: {msg}")

    def run_until_dialog(self) -> None:
        base = self.w.acc.baseline.accuracy if self.w.acc.baseline else None
        d = RunUntilDialog(self.w.session, base, self.w)
        if d.exec():
            self.w.loop.start(d.args())
