"""The main window: layer browser, heatmap + neuron strip, histogram + threshold, accuracy, history.

The window holds a :class:`~pruneviz.core.session.Session` and only *calls its verbs*; it
redraws from ``session.changed`` (only the touched layers) and asks the
:class:`~pruneviz.qt.live_eval.LiveEval` for a fresh evaluation after every change.
Errors from the engine (:class:`PrunevizError`) become a message box; the session is unchanged.

:class:`MainWindow` is the assembly: it builds the views, lays them out in docks, switches
sessions and routes ``session.changed``. What it does with them lives in small controller
objects, one concept a module, each created with the window and kept on it (napari's
``QtViewer`` is the model):

- ``window.view`` (:mod:`.window_layer`): the shown layer's heatmap, strip, histogram, filter
  panel, hover read-out, its controls and its score views
- ``window.editing`` (:mod:`.window_editing`): selection, prune / restore, block tool, threshold,
  the Prune… and Run until… dialogs
- ``window.files`` (:mod:`.window_files`): menus, toolbar, open / recent / demos / sessions /
  drag and drop / export / save PNG
- ``window.status`` (:mod:`.window_status`): status bar, evaluation progress, memory, notices,
  error boxes
- ``window.presentation`` (:mod:`.presentation`): presentation mode
- ``window.edit_pause`` (:mod:`.edit_pause`): the editing controls off while a run holds the session

The state they share is the window's: ``session``, ``layer`` (the layer shown), ``selected``
(its selected neuron rows). The controllers' widgets and verbs are also reachable on the window
under their old names (``window.threshold``, ``window.select_neurons``, ``window.act_undo`` …),
as one-line delegations generated at the end of this module.

For code that attaches to the window (``attach_*(window)``): ``window.session``,
``window.menuBar()``, ``window.addDockWidget``, ``window.runner`` (the LiveEval),
``window.statusBar()``, ``window.show_error`` and the actions ``window.act_*`` stay as they were.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pruneviz.core.importance import LOCAL_METHODS

from .accuracy_plot import AccuracyPanel
from .controls import methods
from .decide_dock import attach_decide
from .decide_page import attach_decide_page
from .edit_pause import attach_edit_pause
from .live_eval import LiveEval
from .filter_view import FilterPanel
from .heatmap_view import HeatmapView
from .histogram import Histogram
from .knockout_track import attach_knockout_track
from .kernels import KernelLayout
from .layer_tree import LayerTree
from .lesson_panel import attach_lessons
from .neuron_strip import NeuronStrip
from .presentation import Presentation
from .run_loop import RunLoop
from .screen_fit import ScreenFit
from .training_ui import prune_menu, attach_training
from .window_editing import Editing
from .window_files import FileActions
from .window_layer import LayerViewer
from .window_status import StatusReports, human_bytes
from .plain import literal

__all__ = ["MainWindow", "human_bytes"]  # human_bytes: where callers found it before the split

#: the file controller's actions and menus, readable on the window as before (``window.act_undo``)
#: the layer view's and editing's widgets and verbs, reachable on the window as before
_VIEW_ATTRS = ("mode", "method", "sort", "title", "score_jobs", "_score_views")
_VIEW_METHODS = ("show_layer", "scores_view", "scores_ready", "hist_edges", "_refresh_layer", "_rows_touched", "_scores_follow", "_reset_scores", "_method", "_refresh_strip", "_neuron_scores")
_EDIT_ATTRS = ("block", "prune_sel", "restore_sel", "sel_label", "threshold", "thr_gran", "apply_thr", "thr_info")
_EDIT_METHODS = ("select_neurons", "prune_selected", "_select", "apply_threshold", "prune_dialog", "step", "run_until_dialog", "_refresh_threshold")
_STATUS_ATTRS = ("progress", "cancel", "memory", "totals", "device")
_FILE_ATTRS = ("act_open", "act_open_spec", "act_open_data", "act_save_session", "act_open_session", "act_export", "act_undo", "act_redo", "act_prune", "act_restore", "act_prune_dlg", "act_step", "act_run", "act_stop", "recent_menu", "demos_menu")


class MainWindow(QMainWindow):
    """The pruneviz app window over one session (``set_session`` switches models)."""

    sessionChanged = Signal(object)
    errorShown = Signal(str)

    def __init__(self, session, open_session=None, parent=None, restore_layout: bool = True, autosave: bool = False, save_layout: bool = True):
        """``open_session(model, data, arch, trust)`` opens a new Session (File > Open); defaults to Session.open.
        With ``autosave``, every edit is journalled to the user data dir (see pruneviz.core.persist).
        ``save_layout=False`` leaves the user's saved window layout alone on close (screenshots)."""
        super().__init__(parent)
        self._save_layout = save_layout
        self._autosave_enabled = autosave
        self.autosave = None
        self.setAcceptDrops(True)
        self.session = None
        self.layer: str | None = None
        self.selected: set[int] = set()
        self.kernels = KernelLayout(1)
        self._open_session = open_session
        self.runner = LiveEval(None, parent=self)
        self.loop = RunLoop(self)
        self._build_ui()
        self.presentation = Presentation(self)
        self.files = FileActions(self)  # menus, toolbar, open / save / export
        self.status.wire_runner()
        self.act_measure_shrunk = prune_menu(self).addAction("Measure the shrunk model", self.status.measure_shrunk)
        self.act_measure_shrunk.setToolTip("remove pruned neurons and heads from a copy, count its MACs and time it against the original (status bar)")
        attach_training(self)  # Fine-tune / Train… (Prune menu, toolbar) and the Training tab
        attach_decide(self)
        attach_decide_page(self)  # in presentation mode Decide swaps with the layer view
        attach_knockout_track(self)  # the Decide dock's knockout of the shown layer, beside the strip
        attach_lessons(self)  # Lessons menu, File > Open lesson, the Lesson dock
        attach_edit_pause(self)  # editing controls off while a fine-tune, schedule or lesson step holds the session
        self._restored_state = False
        self.screen_fit = ScreenFit(self)  # inside the screen at the start and whenever it grows
        if restore_layout:
            self._restore_settings()
        else:
            self.resize(1400, 900)
        self.set_session(session)

    def _build_ui(self) -> None:
        self.heatmap = HeatmapView()
        self.strip = NeuronStrip()
        self.strip.setYLink(self.heatmap.vb)
        self.hist = Histogram()
        self.filter = FilterPanel()
        self.tree = LayerTree()
        self.tree.setMinimumWidth(180)  # name, shape, sparsity readable; wider by default (_size_docks)
        self.acc = AccuracyPanel()
        self.history = QListWidget()
        self.history.setAlternatingRowColors(True)
        self._filter_auto = False  # the filter tab came up by itself on a selection (view and editing share it)
        self.view = LayerViewer(self)  # the shown layer's views, controls and score views
        self.editing = Editing(self)  # selection, prune / restore, block tool, threshold
        self.status = StatusReports(self)  # status bar, progress, notices, error boxes
        self.hover = self.status.hover  # the layer view writes the hovered cell here

        # the title and the selection's actions on one line, the view controls on the next: two
        # short rows keep the central area narrow enough for a 1280-pixel projector
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.sel_label)
        head.addWidget(self.block)  # a selection tool: beside the selection's actions
        head.addWidget(self.prune_sel)
        head.addWidget(self.restore_sel)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self.mode)
        bar.addWidget(QLabel("by"))
        bar.addWidget(self.method)
        bar.addSpacing(10)
        bar.addWidget(self.sort)
        bar.addStretch(1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(4, 4, 4, 0)
        tl.addLayout(head)
        tl.addLayout(bar)
        hv = QHBoxLayout()
        hv.setSpacing(2)
        hv.addWidget(self.heatmap, 1)
        hv.addWidget(self.strip)
        tl.addLayout(hv, 1)

        # the histogram shares its place with the per-filter kernels: one selected filter shows
        # there; the threshold row sits under both
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(4, 0, 4, 4)
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(self.hist, "Histogram")
        self.lower_tabs.addTab(self.filter, "Filter kernels")
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
        self.splitter.setSizes([560, 300])  # the histogram keeps a readable share at 720 pixels
        self.setCentralWidget(self.splitter)

        self.dock_layers = self._dock("Layers", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.dock_acc = self._dock("Accuracy", self.acc, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_hist = self._dock("History", self.history, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._docks_sized = False

        self.tree.layerSelected.connect(self.show_layer)
        self.filter.failed.connect(self.show_error)
        self.filter.neuronPicked.connect(lambda row: self.select_neurons([row]))
        self.acc.use_demo.clicked.connect(lambda: self._guard_data("demo:digits"))
        self.acc.open_data.clicked.connect(lambda: self.open_data_dialog())
        self.filter.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.history.itemClicked.connect(lambda it: self._guard(self.session.goto, self.history.row(it)))

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.lower()}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    # ------------------------------------------------------------- status
    def _guard(self, fn, *args, **kw):
        """Call a Session verb; a PrunevizError becomes a message box (session unchanged)."""
        return self.status.guard(fn, *args, **kw)

    def show_error(self, msg: str) -> None:
        """A message box (and ``errorShown``)."""
        self.status.show_error(msg)

    # ------------------------------------------------------- file actions
    # what the file controller does, under the names other code and tests reach the window by
    def open_path(self, path: str, arch: str | None = None) -> bool:
        """Open a model file, keeping the current data (see :class:`FileActions`)."""
        return self.files.open_path(path, arch)

    def open_spec(self, spec: str) -> bool:
        """Open a model spec as the command line takes it (``demo:cnn`` with its data)."""
        return self.files.open_spec(spec)

    def save_session(self, path: str) -> bool:
        return self.files.save_session(path)

    def open_session(self, path: str) -> bool:
        return self.files.open_session(path)

    def ask_arch(self, message: str) -> str | None:
        return self.files.ask_arch(message)

    def export_dialog(self) -> None:
        self.files.export_dialog()

    def save_heatmap_dialog(self) -> None:
        self.files.save_heatmap_dialog()

    def save_heatmap(self, path: str) -> bool:
        return self.files.save_heatmap(path)

    def open_data_dialog(self) -> None:
        self.files.open_data_dialog()

    def _guard_data(self, spec: str) -> None:
        self.files._guard_data(spec)

    def dragEnterEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        self.files.dragEnterEvent(ev)

    def dropEvent(self, ev) -> None:  # noqa: N802
        self.files.dropEvent(ev)

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
                # encoded, written and fsynced by a writer thread: the GUI thread only snapshots
                self.autosave = persist.Autosave(s, background=True, on_error=self.files.autosave_failed.emit)
            except OSError as exc:  # a read-only home must not stop the app
                self.autosave = None
                self.statusBar().showMessage(f"autosave is off: {exc}", 10_000)
        self.runner.set_session(s)  # the runner listens first: an edit cancels a running evaluation
        self.edit_pause.follow(s)
        s.changed.connect(self._on_changed)
        self.status.follow_session(s)
        self.selected = set()
        self._reset_scores()
        self.acc.reset()
        self.tree.set_session(s)
        self._fill_methods()
        # Qt appends the application's display name ("— pruneviz") itself
        self.setWindowTitle(s.spec + (f"  ·  {s.data.spec}" if s.data is not None and getattr(s.data, "spec", None) else ""))
        neurons = s.neuron_pruning
        for w in (self.prune_sel, self.restore_sel, self.act_prune, self.act_restore, self.act_step, self.act_run):
            w.setEnabled(neurons)
            w.setToolTip("" if neurons else literal(s.coupling_error or "neuron pruning unavailable"))
        self.acc.set_has_data(s.data is not None)
        first = next((layer.name for layer in s.layers if not layer.is_output), s.layers[0].name)
        self.layer = None
        self.tree.select(first)
        if self.layer is None:
            self.show_layer(first)
        self._refresh_history()
        self.status.refresh_totals()
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
        rows = self._rows_touched(change) if change.kind != "data" and self.layer in change.layers else None
        self._scores_follow(change, rows)
        if change.kind == "data":  # new evaluation data: new baseline, new data-driven methods
            self.acc.reset()
            self.acc.set_has_data(s.data is not None)
            self._fill_methods()
            self._refresh_layer(reset_view=False)
        else:
            if change.kind == "edit":
                self.acc.forget_after(s.history.index)
            if self.layer in change.layers:
                self._refresh_layer(reset_view=False, rows=rows)
            elif self._method() not in LOCAL_METHODS:
                self._refresh_layer(reset_view=False)  # every edit changes data-driven scores
        self.tree.refresh(change.layers)
        self._refresh_history()
        self.status.refresh_totals()
        self.runner.request()

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
            a.setToolTip(literal(a.text()))

    def _restore_settings(self) -> None:
        st = QSettings()
        geo = st.value("window/geometry")
        saved = None
        if isinstance(geo, QByteArray) and self.restoreGeometry(geo):
            saved = self.geometry()  # kept only when it fits the screen it is on
        self.screen_fit.initial(saved)
        state = st.value("window/state")
        self._restored_state = isinstance(state, QByteArray) and self.restoreState(state)

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if not self._docks_sized and not self._restored_state:
            self._docks_sized = True
            QTimer.singleShot(0, self._size_docks)

    def _size_docks(self) -> None:
        w = self.width()
        self.resizeDocks([self.dock_layers, self.dock_acc], [int(w * 0.28), int(w * 0.24)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_layers, self.dock_hist], [int(self.height() * 0.62), int(self.height() * 0.3)], Qt.Orientation.Vertical)

    def closeEvent(self, ev) -> None:
        self.loop.stop()
        self.score_jobs.shutdown(5000)
        self.editing.prep.shutdown(5000)
        if self._save_layout:
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


for _name in _FILE_ATTRS:
    setattr(MainWindow, _name, property(lambda self, n=_name: getattr(self.files, n), doc=f"``window.files.{_name}``"))
for _name in _STATUS_ATTRS:
    setattr(MainWindow, _name, property(lambda self, n=_name: getattr(self.status, n), doc=f"``window.status.{_name}``"))
for _owner, _names in (("view", _VIEW_ATTRS), ("editing", _EDIT_ATTRS)):
    for _name in _names:
        setattr(MainWindow, _name, property(lambda self, o=_owner, n=_name: getattr(getattr(self, o), n), doc=f"``window.{_owner}.{_name}``"))
for _owner, _names in (("view", _VIEW_METHODS), ("editing", _EDIT_METHODS)):
    for _name in _names:
        setattr(MainWindow, _name, lambda self, *a, o=_owner, n=_name, **k: getattr(getattr(self, o), n)(*a, **k))
