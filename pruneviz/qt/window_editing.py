"""Editing from the window: neuron selection, prune/restore, the block tool, the threshold, dialogs.

Every edit is a Session verb called through ``_guard`` (one undo step each); the window redraws
from ``session.changed``, never from here. The threshold previews in yellow what Apply would
prune (single weights, or whole neuron rows) without editing anything.

:class:`Editing` is a mixin of :class:`~pruneviz.qt.main_window.MainWindow`: it expects the
window's ``session``, ``layer``, ``selected``, views (``heatmap``, ``strip``, ``hist``, ``filter``,
``lower_tabs``), ``loop``, ``acc`` and the layer viewer's ``_method``, ``_refresh_strip``,
``_neuron_scores``, ``_scores2d``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QPushButton, QToolButton
from superqt import QLabeledDoubleSlider

from pruneviz.core import display
from pruneviz.core.errors import PrunevizError

from .controls import PruneDialog, RunUntilDialog


class Editing:
    """Selection, pruning controls and the threshold of the main window."""

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
        self.sel_label = QLabel("none selected")
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setDecimals(4)
        self.threshold.setRange(0.0, 1.0)
        self.thr_gran = QComboBox()
        self.thr_gran.addItems(["weights", "neurons"])
        self.thr_gran.setToolTip("Threshold the scores of single weights, or of whole neurons (rows)")
        self.apply_thr = QPushButton("Apply threshold")
        self.apply_thr.setToolTip("Prune the weights (or neurons) of this layer whose score is below the threshold (one undo step)")
        self.thr_info = QLabel(" ")
        self._filter_auto = False  # the filter tab came up by itself on a selection

        self.block.toggled.connect(self._set_block_mode)
        self.heatmap.rowsClicked.connect(self._click_row)
        self.strip.rowsClicked.connect(self._click_row)
        self.heatmap.rectDragged.connect(self._drag_rect)
        self.prune_sel.clicked.connect(lambda: self.prune_selected(False))
        self.restore_sel.clicked.connect(lambda: self.prune_selected(True))
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.thr_gran.currentTextChanged.connect(lambda _: self._refresh_threshold(reset=True))
        self.hist.thresholdDragged.connect(self.threshold.setValue)
        self.apply_thr.clicked.connect(self.apply_threshold)
        self.heatmap.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.heatmap.customContextMenuRequested.connect(self._context_menu)
        self.heatmap.plot.setMenuEnabled(False)

    def _select(self, rows: set[int]) -> None:
        one = len(rows) == 1 and set(rows) != self.selected
        self.selected = set(rows)
        self._refresh_strip(self.strip.preview if len(self.strip.preview) else None)
        if one and self.lower_tabs.currentWidget() is not self.filter:
            self.lower_tabs.setCurrentWidget(self.filter)
            self._filter_auto = True
        elif len(rows) != 1 and self._filter_auto:
            self.lower_tabs.setCurrentWidget(self.hist)
            self._filter_auto = False

    def _click_row(self, row: int, mods) -> None:
        if mods & Qt.KeyboardModifier.ControlModifier:
            self._select(self.selected ^ {row})
        elif mods & Qt.KeyboardModifier.ShiftModifier and self.selected:
            anchor = min(self.selected, key=lambda r: abs(r - row))
            lo, hi = sorted((anchor, row))
            self._select(self.selected | set(range(lo, hi + 1)))
        else:
            self._select({row})

    def select_neurons(self, rows) -> None:
        """Select neuron rows of the current layer (as clicking them would)."""
        self._select(set(int(r) for r in rows))

    def prune_selected(self, restore: bool = False) -> None:
        if not self.selected or self.layer is None:
            self.statusBar().showMessage("select neurons first: click rows in the heatmap or the strip", 3000)
            return
        if self.session.layer(self.layer).kind == "Conv1D":  # shown as stored: rows are inputs, not neurons
            self.statusBar().showMessage("the rows of a Conv1D layer are its inputs: prune its neurons with the Prune controls (granularity neuron)", 5000)
            return
        verb = self.session.restore_neurons if restore else self.session.prune_neurons
        self._guard(verb, self.layer, sorted(self.selected))

    def _drag_rect(self, r0, r1, c0, c1, restore) -> None:
        self._guard(self.session.prune_rect, self.layer, (r0, r1), (c0, c1), restore=restore)

    def _set_block_mode(self, on: bool) -> None:
        self.heatmap.vb.block_mode = on
        self.statusBar().showMessage("Block tool: drag to prune a block, Ctrl+drag to restore it" if on else "Block tool off: drag to pan", 4000)

    def _context_menu(self, pos) -> None:
        m = QMenu(self)
        m.addAction(self.act_prune)
        m.addAction(self.act_restore)
        m.addSeparator()
        m.addAction("Reset zoom", lambda: self.heatmap.vb.autoRange(padding=0.01))
        m.exec(self.heatmap.mapToGlobal(pos))

    def _refresh_threshold(self, reset: bool = False) -> None:
        """Range of the threshold slider from the scores it thresholds (weights or neurons)."""
        if self.session is None or self.layer is None:
            return
        neurons = self.thr_gran.currentText() == "neurons"
        view = self._score_views.get((self.layer, self._method()))
        if neurons:
            ns = self._neuron_scores()
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
        self.lower_tabs.setCurrentWidget(self.hist)  # the threshold is drawn on the histogram
        self._filter_auto = False
        if self.thr_gran.currentText() == "weights":
            self.hist.set_threshold(value)
        self._update_preview()

    def _update_preview(self) -> None:
        """Yellow: what Apply would prune now (weights in the heatmap, or whole neuron rows in the
        heatmap and the strip)."""
        s, name = self.session, self.layer
        t = self.threshold.value()
        neurons = self.thr_gran.currentText() == "neurons"
        if t <= 0:
            self.heatmap.set_preview(None)
            self.thr_info.setText("")
            self._refresh_strip(None)
            return
        view = self._score_views.get((name, self._method()))
        if view is None or (neurons and view.neurons is None):
            self.heatmap.set_preview(None)
            self.thr_info.setText("scores not ready" if view is None else "no neuron scores for this layer")
            self._refresh_strip(None)
            return
        # the window's own scores (what Session.preview_below computes, without scoring again)
        would = (view.neurons < t) & s.neuron_mask(name).numpy() if neurons else view.below(t)
        if neurons:
            self.heatmap.set_preview_rows(would)
            self._refresh_strip(would)
            n = int(would.sum())
            self.thr_info.setText(f"would prune {n:,} more neuron{'s' if n != 1 else ''}")
        else:
            self.heatmap.set_preview(would)
            if self.strip.preview.any():
                self._refresh_strip(None)
            self.thr_info.setText(f"would prune {int(np.count_nonzero(would)):,} more")

    def apply_threshold(self) -> None:
        gran = "neuron" if self.thr_gran.currentText() == "neurons" else "weight"
        n = self._guard(self.session.prune_below, self.layer, self.threshold.value(), self._method(), gran)
        if n == 0:
            self.statusBar().showMessage("nothing below the threshold", 3000)

    def prune_dialog(self) -> None:
        d = PruneDialog(self.session, self.layer, self)
        if d.exec():
            a = d.args()
            self._guard(self.session.prune, a.amount, a.scope, a.granularity, a.method, a.layers)

    def step(self) -> None:
        target = self._guard(self.session.step, self.method.currentText() or "magnitude")
        if target is None and self.session.neuron_pruning:
            self.statusBar().showMessage("no neuron left to remove", 3000)

    def run_until_dialog(self) -> None:
        base = self.acc.baseline.accuracy if self.acc.baseline else None
        d = RunUntilDialog(self.session, base, self)
        if d.exec():
            self.loop.start(d.args())
