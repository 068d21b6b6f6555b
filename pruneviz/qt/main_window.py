"""The main window: layer browser, heatmap + neuron strip, histogram + threshold, accuracy, history.

The window holds a :class:`~pruneviz.core.session.Session` and only *calls its verbs*; it
redraws from ``session.changed`` (only the touched layers) and asks the
:class:`~pruneviz.qt.eval_runner.EvalRunner` for a fresh evaluation after every change.
Errors from the engine (:class:`PrunevizError`) become a message box; the session is unchanged.
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from pruneviz.core import display
from pruneviz.core.errors import PrunevizError
from pruneviz.core.evaluate import device_name
from pruneviz.core.importance import NEURON_METHODS

from .accuracy_plot import AccuracyPanel
from .controls import PruneDialog, RunUntilDialog, methods
from .eval_runner import EvalRunner
from .filter_view import FilterPanel
from .heatmap_view import HeatmapView, Histogram, NeuronStrip
from .kernels import KernelLayout
from .layer_tree import LayerTree
from .run_loop import RunLoop

def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"``: binary multiples, short SI-like names, as file managers show them."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"

MAX_RECENT = 8
EXPORT_FORMATS = {"state_dict (*.pt)": ("state_dict", ".pt"), "safetensors (*.safetensors)": ("safetensors", ".safetensors"), "pt2 (*.pt2)": ("pt2", ".pt2"), "ONNX (*.onnx)": ("onnx", ".onnx")}


class MainWindow(QMainWindow):
    """The pruneviz app window over one session (``set_session`` switches models)."""

    sessionChanged = Signal(object)
    errorShown = Signal(str)

    def __init__(self, session, open_session=None, parent=None, restore_layout: bool = True, autosave: bool = False):
        """``open_session(model, data, arch, trust)`` opens a new Session (File > Open); defaults to Session.open.
        With ``autosave``, every edit is journalled to the user data dir (see pruneviz.core.persist)."""
        super().__init__(parent)
        self._autosave_enabled = autosave
        self.autosave = None
        self.setWindowTitle("pruneviz")
        self.setAcceptDrops(True)
        self.session = None
        self.layer: str | None = None
        self.selected: set[int] = set()
        self.kernels = KernelLayout(1)
        self._open_session = open_session
        self._weights_cache: dict[tuple, np.ndarray] = {}
        self.runner = EvalRunner(None, parent=self)
        self.loop = RunLoop(self)
        self._build_ui()
        self._build_actions()
        self._wire_runner()
        self._restored_state = False
        if restore_layout:
            self._restore_settings()
        else:
            self.resize(1400, 900)
            self._fill_recent()
        self.set_session(session)

    # =============================================================== UI
    def _build_ui(self) -> None:
        self.heatmap = HeatmapView()
        self.strip = NeuronStrip()
        self.strip.setYLink(self.heatmap.vb)
        self.hist = Histogram()
        self.filter = FilterPanel()
        self.tree = LayerTree()
        self.tree.setMinimumWidth(360)  # every column readable, sparsity bar included
        self.acc = AccuracyPanel()
        self.history = QListWidget()
        self.history.setAlternatingRowColors(True)

        # view controls above the heatmap
        self.mode = QComboBox()
        self.mode.addItems(["weights", "importance"])
        self.method = QComboBox()
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sort = QCheckBox("sort neurons")
        self.block = QToolButton()
        self.block.setText("Block tool")
        self.block.setCheckable(True)
        self.block.setToolTip("Drag a rectangle on the heatmap to prune it (hold Ctrl to restore it)")
        self.prune_sel = QPushButton("Prune neurons")
        self.restore_sel = QPushButton("Restore neurons")
        self.sel_label = QLabel("no neuron selected")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self.mode)
        bar.addWidget(QLabel("by"))
        bar.addWidget(self.method)
        bar.addSpacing(10)
        bar.addWidget(self.sort)
        bar.addWidget(self.block)
        bar.addStretch(1)
        bar.addWidget(self.sel_label)
        bar.addWidget(self.prune_sel)
        bar.addWidget(self.restore_sel)
        self.title = QLabel()
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.2)
        f.setBold(True)
        self.title.setFont(f)

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(4, 4, 4, 0)
        tl.addWidget(self.title)
        tl.addLayout(bar)
        hv = QHBoxLayout()
        hv.setSpacing(2)
        hv.addWidget(self.heatmap, 1)
        hv.addWidget(self.strip)
        tl.addLayout(hv, 1)

        # threshold row under the histogram
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setDecimals(4)
        self.threshold.setRange(0.0, 1.0)
        self.thr_gran = QComboBox()
        self.thr_gran.addItems(["weights", "neurons"])
        self.thr_gran.setToolTip("Threshold the scores of single weights, or of whole neurons (rows)")
        self.apply_thr = QPushButton("Apply threshold")
        self.apply_thr.setToolTip("Prune the weights (or neurons) of this layer whose score is below the threshold (one undo step)")
        self.thr_info = QLabel(" ")
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(4, 0, 4, 4)
        # the histogram shares its place with the per-filter kernels: one selected filter shows there
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(self.hist, "Histogram")
        self.lower_tabs.addTab(self.filter, "Filter kernels")
        self._filter_auto = False  # the filter tab came up by itself on a selection
        bl.addWidget(self.lower_tabs, 1)
        tr = QHBoxLayout()
        tr.addWidget(QLabel("Threshold"))
        tr.addWidget(self.thr_gran)
        tr.addWidget(self.threshold, 1)
        tr.addWidget(self.thr_info)
        tr.addWidget(self.apply_thr)
        bl.addLayout(tr)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([600, 240])
        self.setCentralWidget(self.splitter)

        self.dock_layers = self._dock("Layers", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.dock_acc = self._dock("Accuracy", self.acc, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_hist = self._dock("History", self.history, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._docks_sized = False

        sb = self.statusBar()
        self.hover = QLabel(" ")
        self.device = QLabel()
        self.totals = QLabel()
        self.memory = QLabel()
        self.memory.setToolTip("memory held by masks and original values, undo history, and cached activations")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(150)
        self.progress.setTextVisible(True)
        self.progress.setFormat("eval %p%")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        sb.addWidget(self.hover, 1)
        sb.addPermanentWidget(self.totals)
        sb.addPermanentWidget(self.memory)
        sb.addPermanentWidget(self.device)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel)

        self.tree.layerSelected.connect(self.show_layer)
        self.mode.currentTextChanged.connect(lambda _: self._refresh_layer(reset_view=False))
        self.method.currentTextChanged.connect(lambda _: self._refresh_layer(reset_view=False))
        self.sort.toggled.connect(lambda on: self.strip.set_sorted(on, self.heatmap.vb))
        self.block.toggled.connect(self._set_block_mode)
        self.heatmap.rowsClicked.connect(self._click_row)
        self.strip.rowsClicked.connect(self._click_row)
        self.heatmap.rectDragged.connect(self._drag_rect)
        self.heatmap.hovered.connect(self._hover)
        self.prune_sel.clicked.connect(lambda: self.prune_selected(False))
        self.restore_sel.clicked.connect(lambda: self.prune_selected(True))
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.filter.failed.connect(self.show_error)
        self.filter.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.thr_gran.currentTextChanged.connect(lambda _: self._refresh_threshold(reset=True))
        self.hist.thresholdDragged.connect(self.threshold.setValue)
        self.apply_thr.clicked.connect(self.apply_threshold)
        self.history.itemClicked.connect(lambda it: self._guard(self.session.goto, self.history.row(it)))
        self.cancel.clicked.connect(self._cancel_clicked)
        self.heatmap.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.heatmap.customContextMenuRequested.connect(self._context_menu)
        self.heatmap.plot.setMenuEnabled(False)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.lower()}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_actions(self) -> None:
        mb = self.menuBar()
        fm = mb.addMenu("&File")
        self.act_open = fm.addAction("&Open model…", QKeySequence.StandardKey.Open, self.open_model_dialog)
        self.act_open_data = fm.addAction("Open &data…", self.open_data_dialog)
        self.recent_menu = fm.addMenu("Open &recent")
        fm.addSeparator()
        self.act_export = fm.addAction("&Export…", QKeySequence("Ctrl+E"), self.export_dialog)
        fm.addAction("Save heatmap as &PNG…", self.save_heatmap_dialog)
        fm.addSeparator()
        fm.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        em = mb.addMenu("&Edit")
        self.act_undo = em.addAction("Undo", QKeySequence.StandardKey.Undo, lambda: self._guard(self.session.undo))
        self.act_redo = em.addAction("Redo", QKeySequence.StandardKey.Redo, lambda: self._guard(self.session.redo))
        em.addSeparator()
        self.act_prune = em.addAction("Prune selected neurons", lambda: self.prune_selected(False))
        self.act_prune.setShortcuts([QKeySequence(Qt.Key.Key_Delete), QKeySequence(Qt.Key.Key_Backspace)])
        self.act_restore = em.addAction("Restore selected neurons", QKeySequence("Shift+Delete"), lambda: self.prune_selected(True))
        em.addAction("Clear selection", QKeySequence(Qt.Key.Key_Escape), lambda: self._select(set()))

        pm = mb.addMenu("&Prune")
        self.act_prune_dlg = pm.addAction("&Prune…", QKeySequence("Ctrl+P"), self.prune_dialog)
        self.act_step = pm.addAction("&Step", QKeySequence("Ctrl+T"), self.step)
        self.act_run = pm.addAction("&Run until…", QKeySequence("Ctrl+R"), self.run_until_dialog)
        self.act_stop = pm.addAction("S&top", self.loop.stop)
        self.act_stop.setEnabled(False)
        pm.addSeparator()
        pm.addAction("Re-&evaluate", QKeySequence("F5"), self.runner.request)

        vm = mb.addMenu("&View")
        for d in (self.dock_layers, self.dock_hist, self.dock_acc):
            vm.addAction(d.toggleViewAction())
        vm.addAction(self.block.text(), QKeySequence("B"), self.block.toggle)

        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        for a in (self.act_undo, self.act_redo, None, self.act_prune_dlg, self.act_step, self.act_run, self.act_stop):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.act_prune_dlg.setText("Prune…")
        self.act_step.setToolTip("Remove the least important neuron (one undo step)")

    def _wire_runner(self) -> None:
        r = self.runner
        r.started.connect(lambda req: (self.progress.setValue(0), self.cancel.setEnabled(True)))
        r.progress.connect(self._on_progress)
        r.finished.connect(self._on_result)
        r.baselineReady.connect(self.acc.set_baseline)
        r.failed.connect(self._on_failed)
        r.cancelled.connect(lambda: self.acc.clear_running("evaluation cancelled"))
        r.idle.connect(lambda: self.cancel.setEnabled(False))

    # ========================================================= session
    def set_session(self, s) -> None:
        """Show session ``s`` (replaces the current one; its history goes with it)."""
        if self.session is not None:
            self.session.changed.disconnect(self._on_changed)
            self.loop.stop()
        self.session = s
        if self._autosave_enabled:
            from pruneviz.core import persist

            if self.autosave is not None:
                self.autosave.close()
            try:
                self.autosave = persist.Autosave(s)
            except OSError as exc:  # a read-only home must not stop the app
                self.autosave = None
                self.statusBar().showMessage(f"autosave is off: {exc}", 10_000)
        self.runner.set_session(s)  # the runner listens first: an edit cancels a running evaluation
        s.changed.connect(self._on_changed)
        self._notices_seen = len(s.notices)
        self.selected = set()
        self.acc.reset()
        self.tree.set_session(s)
        self._fill_methods()
        self.device.setText(f"  {device_name(s.device)}  ")
        self.device.setToolTip("where the model is evaluated")
        self.setWindowTitle(f"pruneviz — {s.spec}" + (f"  ·  {s.data.spec}" if s.data is not None and getattr(s.data, "spec", None) else ""))
        neurons = s.neuron_pruning
        for w in (self.prune_sel, self.restore_sel, self.act_prune, self.act_restore, self.act_step, self.act_run):
            w.setEnabled(neurons)
            w.setToolTip("" if neurons else (s.coupling_error or "neuron pruning unavailable"))
        self.acc.setEnabled(s.data is not None)
        if s.data is None:
            self.acc.clear_running("no evaluation data: File > Open data…")
        first = next((layer.name for layer in s.layers if not layer.is_output), s.layers[0].name)
        self.layer = None
        self.tree.select(first)
        if self.layer is None:
            self.show_layer(first)
        self._refresh_history()
        self._refresh_totals()
        self.sessionChanged.emit(s)
        self.runner.request()

    def _fill_methods(self) -> None:
        """Scoring methods the session allows (data methods only with data); keeps the choice."""
        s = self.session
        cur = self.method.currentText()
        self.method.blockSignals(True)
        self.method.clear()
        self.method.addItems(methods("weight", s.data is not None))
        if cur and self.method.findText(cur) >= 0:
            self.method.setCurrentText(cur)
        self.method.blockSignals(False)

    def _on_changed(self, change) -> None:
        s = self.session
        if change.kind == "data":  # new evaluation data: new baseline, new data-driven methods
            self.acc.reset()
            self.acc.setEnabled(s.data is not None)
            self._fill_methods()
            self._refresh_layer(reset_view=False)
        else:
            if change.kind == "edit":
                self.acc.forget_after(s.history.index)
            if self.layer in change.layers:
                self._refresh_layer(reset_view=False, rows=self._rows_touched(change))
        self.tree.refresh(change.layers)
        self._refresh_history()
        self._refresh_totals()
        self.runner.request()

    def _rows_touched(self, change):
        """Neuron rows of the shown layer that the step behind ``change`` touched, or None when
        it may have touched more (other layers' neurons change this layer's inputs, i.e. columns)."""
        s, name = self.session, self.layer
        h = s.history
        if change.kind in ("edit", "redo"):
            step = h.steps[h.index - 1] if h.index > 0 else None
        elif change.kind == "undo":
            step = h.steps[h.index] if h.index < len(h.steps) else None
        else:
            return None
        if step is None or step.label != change.label or any(f.layer != name for f in step.flips):
            return None
        cols = s.layer(name).view_shape[1]
        rows = []
        for f in step.flips:
            idx = f.idx.numpy()
            if f.store == "elem":
                rows.append(idx // cols)
            else:
                coupling = s.coupling[name] if s.coupling else None
                weight = s.layer(name).weight
                if coupling is not None and (coupling.coupled or any(e.param == weight and e.dim != 0 for e in coupling.effects)):
                    return None
                rows.append(idx)
        return np.unique(np.concatenate(rows)) if rows else None

    def _refresh_history(self) -> None:
        s = self.session
        h = s.history
        self.history.blockSignals(True)
        self.history.clear()
        self.history.addItem("(unpruned model)")
        self.history.addItems(h.labels)
        self.history.setCurrentRow(h.index)
        for i in range(h.index + 1, self.history.count()):
            it = self.history.item(i)
            it.setForeground(self.palette().placeholderText())
        self.history.blockSignals(False)
        self.history.scrollToItem(self.history.currentItem())
        labels = h.labels
        self.act_undo.setEnabled(h.can_undo)
        self.act_redo.setEnabled(h.can_redo)
        self.act_undo.setText(f"Undo {labels[h.index - 1]}" if h.can_undo else "Undo")
        self.act_redo.setText(f"Redo {labels[h.index]}" if h.can_redo else "Redo")
        for a, short in ((self.act_undo, "Undo"), (self.act_redo, "Redo")):
            a.setIconText(short)  # the toolbar stays compact; the menu and tooltip say what
            a.setToolTip(a.text())

    def _refresh_totals(self) -> None:
        s = self.session
        self.totals.setText(f"  {s.params_remaining():,} / {s.original_params:,} params · sparsity {s.sparsity():.1%}  ")
        self._refresh_memory()

    def _refresh_memory(self) -> None:
        mem = self.session.memory()  # the cache sums itself under its lock
        self.memory.setText(f"  masks {human_bytes(mem['masks'])} · history {human_bytes(mem['history'])} · cache {human_bytes(mem['cache'])}  ")
        self.memory.setToolTip(f"memory held by masks and original values ({mem['masks']:,} bytes), undo history ({mem['history']:,} bytes) and cached activations ({mem['cache']:,} bytes)")

    def _show_notices(self) -> None:
        """New fallback messages of the session (out of memory, CPU instead of GPU) → status bar."""
        s = self.session
        new = s.notices[self._notices_seen :]
        self._notices_seen = len(s.notices)
        if new:
            self.statusBar().showMessage(" · ".join(new), 15_000)

    # ========================================================= layer view
    def show_layer(self, name: str) -> None:
        """Show layer ``name`` in the heatmap, strip and histogram."""
        if name == self.layer:
            return
        self.layer = name
        self.selected = set()
        if self._filter_auto:
            self.lower_tabs.setCurrentWidget(self.hist)
            self._filter_auto = False
        info = self.session.layer(name)
        self.kernels = KernelLayout.of(info.shape)
        self.heatmap.set_kernels(self.kernels)
        self.lower_tabs.setTabText(1, "Filter kernels" if self.kernels.is_conv else "Neuron inputs")
        self.title.setText(f"Layer {name}  <span style='font-weight:normal'>— {info.kind} {'×'.join(map(str, info.shape))}, view {info.view_shape[0]} neurons × {info.view_shape[1]} inputs</span>")
        self._refresh_layer(reset_view=True)

    def _method(self) -> str:
        return self.method.currentText() or "magnitude"

    def _refresh_layer(self, reset_view: bool = False, rows=None) -> None:
        """Redraw the shown layer; with ``rows`` (neuron rows an edit touched) the heatmap re-pools
        only those rows in weights mode, instead of copying and pooling the whole layer."""
        s, name = self.session, self.layer
        if s is None or name is None:
            return
        method = self._method()
        weights_mode = self.mode.currentText() == "weights"
        try:
            scores = s.scores(name, method, "weight").float().numpy()
            if rows is not None and weights_mode and self.heatmap.can_update_rows and self.heatmap.shape == s.layer(name).view_shape:
                self.heatmap.update_rows(rows, lambda a, b: s.view_rows(name, a, b))
                self._w2d, self._pruned2d = self.heatmap.values, self.heatmap.pruned_src
            else:
                self._w2d = display.as_2d(s.weight(name).numpy())
                self._pruned2d = display.as_2d(~s.mask(name).numpy())
                rows = None
        except PrunevizError as exc:
            self.show_error(str(exc))
            return
        self._scores2d = display.as_2d(scores)
        if rows is None:
            values = self._w2d if weights_mode else self._scores2d
            self.heatmap.set_layer(values, self._pruned2d, self.mode.currentText(), reset_view=reset_view)
        self.heatmap.set_selection(sorted(self.selected))
        kept = ~self._pruned2d
        self.hist.set_scores(scores, kept, "|w|" if method == "magnitude" else f"{method} score")
        self._refresh_threshold(reset=reset_view)

    def _neuron_scores(self, original: bool = False):
        s, name = self.session, self.layer
        try:
            return s.scores(name, self._method(), "neuron", original=original).float().numpy()
        except PrunevizError:
            return None

    def _refresh_threshold(self, reset: bool = False) -> None:
        """Range of the threshold slider from the scores it thresholds (weights or neurons)."""
        if self.session is None or self.layer is None:
            return
        neurons = self.thr_gran.currentText() == "neurons"
        if neurons:
            ns = self._neuron_scores()
            hi = float(np.nanmax(ns)) if ns is not None and ns.size else 1.0
        else:
            hi = float(np.nanmax(self._scores2d)) if self._scores2d.size else 1.0
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

    def _refresh_strip(self, preview=None) -> None:
        s, name = self.session, self.layer
        kept = s.neuron_mask(name).numpy()
        ns = self._neuron_scores()
        if ns is None:
            ns = np.abs(self._w2d).sum(1)
            orig = None
        else:
            orig = self._neuron_scores(original=True) if not kept.all() else ns
        self.strip.set_neurons(ns, kept, self.selected, original=orig, preview=preview)
        if not self.strip.sorted:
            # the strip's limits changed with the layer after the linked heatmap set its range:
            # line the rows up again
            self.strip.getViewBox().linkedViewChanged(self.heatmap.vb, self.strip.getViewBox().YAxis)
        self.heatmap.set_selection(sorted(self.selected))
        self._refresh_filter()
        n = len(self.selected)
        self.sel_label.setText("no neuron selected" if not n else f"{n} neuron{'s' if n > 1 else ''} selected")

    def _refresh_filter(self) -> None:
        """The filter tab follows the selection and every change: one neuron -> its kernels."""
        row = next(iter(self.selected)) if len(self.selected) == 1 else None
        if row is not None and not 0 <= row < self._w2d.shape[0]:
            row = None  # a stale or out-of-range selection: the engine refuses it on use
        levels = self.heatmap.levels if self.heatmap.mode == "weights" else display.symmetric_levels(self._w2d)
        values = (self._w2d[row], self._pruned2d[row]) if row is not None else None  # current rows, no second fetch
        self.filter.show_neuron(self.session, self.layer, row, levels, values)

    # ========================================================= selection & edits
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
        try:
            would = s.preview_below(name, t, self._method(), "neuron" if neurons else "weight").numpy()
        except PrunevizError as exc:
            self.heatmap.set_preview(None)
            self.thr_info.setText(str(exc).splitlines()[0])
            self._refresh_strip(None)
            return
        if neurons:
            self.heatmap.set_preview_rows(would)
            self._refresh_strip(would)
            n = int(would.sum())
            self.thr_info.setText(f"would prune {n:,} more neuron{'s' if n != 1 else ''}")
        else:
            self.heatmap.set_preview(display.as_2d(would))
            self._refresh_strip(None)
            self.thr_info.setText(f"would prune {int(would.sum()):,} more")

    def apply_threshold(self) -> None:
        gran = "neuron" if self.thr_gran.currentText() == "neurons" else "weight"
        n = self._guard(self.session.prune_below, self.layer, self.threshold.value(), self._method(), gran)
        if n == 0:
            self.statusBar().showMessage("nothing below the threshold", 3000)

    def _hover(self, r: int, c: int) -> None:
        if r < 0:
            self.hover.setText(" ")
            return
        w = float(self._w2d[r, c])
        imp = float(self._scores2d[r, c])
        state = "pruned" if self._pruned2d[r, c] else "kept"
        self.hover.setText(f"{self.kernels.describe(r, c)}, w = {w + 0.0:+.4g} · {self.method.currentText()} {imp:.4g} · {state}")

    # ========================================================= verbs with dialogs
    def _guard(self, fn, *args, **kw):
        """Call a Session verb; a PrunevizError becomes a message box and leaves the session unchanged."""
        try:
            return fn(*args, **kw)
        except PrunevizError as exc:
            self.show_error(str(exc))
            return None

    def show_error(self, msg: str) -> None:
        self.errorShown.emit(msg)
        QMessageBox.warning(self, "pruneviz", msg)

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

    def _cancel_clicked(self) -> None:
        self.loop.stop()
        self.runner.cancel()

    def _on_progress(self, req, p) -> None:
        self.progress.setValue(int(100 * p.fraction))
        self.acc.set_progress(req, p)

    def _on_result(self, req, r) -> None:
        self.progress.setValue(100)
        self.cancel.setEnabled(self.loop.running)
        self.acc.set_result(req, r)
        self.device.setText(f"  {r.device}  ")
        self._refresh_memory()
        self._show_notices()

    def _on_failed(self, req, msg: str) -> None:
        """An exception in the worker: say so in the accuracy panel and the status bar; the
        window keeps working and the next edit evaluates again."""
        self.acc.clear_running(f"evaluation failed: {msg}")
        self.cancel.setEnabled(False)
        self.statusBar().showMessage(f"evaluation failed: {msg}", 15_000)
        self.errorShown.emit(f"evaluation failed: {msg}")
        self._show_notices()

    # ========================================================= files
    def _open(self, model: str, data: str | None, arch: str | None = None) -> bool:
        from .app import open_session_interactive

        s = open_session_interactive(self, model, data, arch, self._open_session)
        if s is None:
            return False
        self.set_session(s)
        self._add_recent(model)
        return True

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", "", "Models (*.pt *.pth *.bin *.safetensors *.pt2 *.ts);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str, arch: str | None = None) -> bool:
        """Open a model file, keeping the current data; asks for --arch when a state_dict needs one."""
        data = self.session.data.spec if self.session is not None and self.session.data is not None else None
        if arch is None and path.endswith((".safetensors", ".bin", ".pth", ".pt")):
            pass  # try without first; the engine says when it needs an architecture
        return self._open(path, data, arch)

    def ask_arch(self, message: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Architecture needed", f"{message}\n\nArchitecture factory (package.module:function):")
        return text.strip() if ok and text.strip() else None

    def open_data_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open evaluation data", "", "Data (*.npz *.pt);;All files (*)")
        if path:
            self._guard_data(path)

    def _guard_data(self, spec: str) -> None:
        """Attach evaluation data; the session's ``changed`` (kind "data") redraws the rest."""
        self._guard(self.session.set_data, spec)

    def _add_recent(self, path: str) -> None:
        st = QSettings()
        rec = [p for p in (st.value("recent", []) or []) if p != path]
        st.setValue("recent", [path, *rec][:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        rec = QSettings().value("recent", []) or []
        if isinstance(rec, str):
            rec = [rec]
        for p in rec:
            self.recent_menu.addAction(os.path.basename(p) or p, lambda p=p: self.open_path(p)).setToolTip(p)
        self.recent_menu.setEnabled(bool(rec))

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            p = urls[0]
            if p.endswith(".npz"):
                self._guard_data(p)
            else:
                self.open_path(p)

    def export_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self, "Export pruned model", "pruned.pt", ";;".join(EXPORT_FORMATS))
        if not path:
            return
        fmt, ext = EXPORT_FORMATS.get(flt, ("state_dict", ".pt"))
        shrink = False
        if self.session.neuron_pruning:
            shrink = QMessageBox.question(self, "Export", "Remove pruned neurons physically (smaller model)?") == QMessageBox.StandardButton.Yes
        report = os.path.splitext(path)[0] + ".report.json"
        if self._guard(self.session.export, path, fmt, shrink, report) is not None:
            self.statusBar().showMessage(f"exported {path} and {os.path.basename(report)}", 5000)

    def save_heatmap_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save heatmap", f"{self.layer}.png", "PNG (*.png)")
        if path:
            self.save_heatmap(path)

    def save_heatmap(self, path: str) -> bool:
        return self.heatmap.grab().save(path)

    # ========================================================= settings & close
    def _restore_settings(self) -> None:
        st = QSettings()
        geo = st.value("window/geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1400, 900)
        state = st.value("window/state")
        self._restored_state = isinstance(state, QByteArray) and self.restoreState(state)
        self._fill_recent()

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if not self._docks_sized and not self._restored_state:
            self._docks_sized = True
            QTimer.singleShot(0, self._size_docks)

    def _size_docks(self) -> None:
        w = self.width()
        if True:
            self.resizeDocks([self.dock_layers, self.dock_acc], [int(w * 0.28), int(w * 0.24)], Qt.Orientation.Horizontal)
            self.resizeDocks([self.dock_layers, self.dock_hist], [int(self.height() * 0.62), int(self.height() * 0.3)], Qt.Orientation.Vertical)

    def closeEvent(self, ev) -> None:
        self.loop.stop()
        st = QSettings()
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/state", self.saveState())
        self.runner.shutdown(5000)
        if self.autosave is not None:  # a clean exit: nothing to recover next time
            self.autosave.close()
            self.autosave = None
        if self.session is not None:
            try:
                self.session.changed.disconnect(self._on_changed)
            except Exception:  # noqa: BLE001 - already disconnected
                pass
        super().closeEvent(ev)
