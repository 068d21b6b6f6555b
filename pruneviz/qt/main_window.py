"""The main window: layer browser, heatmap + neuron strip, histogram + threshold, accuracy, history.

The window holds a :class:`~pruneviz.core.session.Session` and only *calls its verbs*; it
redraws from ``session.changed`` (only the touched layers) and asks the
:class:`~pruneviz.qt.live_eval.LiveEval` for a fresh evaluation after every change.
Errors from the engine (:class:`PrunevizError`) become a message box; the session is unchanged.

:class:`MainWindow` is the assembly. It makes its parts in one place, :meth:`MainWindow.__init__`,
in the order they need each other; each part takes in its constructor what it uses (the
:class:`~pruneviz.qt.window_state.WindowState`, the action registry, the views and the few
controllers it calls), never the whole window to look things up in:

1. ``window.state`` (:mod:`.window_state`): the session, the layer shown, the selected rows,
   with signals; ``window.session`` / ``layer`` / ``selected`` read it
2. ``window.actions`` (:mod:`.actions`): verb -> QAction, the menus and the toolbar by key
3. the views: ``heatmap``, ``strip``, ``hist``, ``filter``, ``tree``, ``acc``, ``history``, ``lower_tabs``
4. ``window.runner`` (evaluation) and ``window.loop`` (Run until…)
5. ``window.status`` (:mod:`.window_status`): status bar, progress, notices, ``guard`` and error boxes
6. ``window.presentation`` (:mod:`.presentation`): presentation mode
7. ``window.view`` (:mod:`.window_layer`): the shown layer's views, their controls and scores
8. ``window.editing`` (:mod:`.window_editing`): selection, prune / restore, block tool,
   threshold, Prune… / Step / Run until…
9. the centre and the docks (:mod:`.window_layout`)
10. ``window.files`` (:mod:`.window_files`): File / Edit / Prune / View menus, toolbar, open,
    recent, demos, sessions, drag and drop, export, Save heatmap as PNG
11. ``window.training`` (:mod:`.training_ui`), ``window.decide`` and ``window.decide_page``
    (:mod:`.decide_dock`, :mod:`.decide_page`), ``window.knockout_track``, ``window.lessons``
    (:mod:`.lesson_panel`)
12. ``window.edit_pause`` (:mod:`.edit_pause`): the editing actions and controls off while a
    run holds the session (it gates what the parts above made)

Other code reaches a part by its owner: ``window.files.open_path``, ``window.editing.select_neurons``,
``window.actions["undo"]``, ``window.status.guard``.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QCoreApplication, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QListWidget, QMainWindow, QTabWidget

from pruneviz.core.importance import LOCAL_METHODS

from .accuracy_plot import AccuracyPanel
from .actions import ActionRegistry
from .decide_dock import DecidePanel
from .decide_page import DecidePage
from .edit_pause import EditPause
from .live_eval import LiveEval
from .filter_view import FilterPanel
from .heatmap_view import HeatmapView
from .hints import no_neurons_text
from .histogram import Histogram
from .knockout_track import KnockoutTrack
from .layer_tree import LayerTree
from .lesson_panel import LessonController
from .neuron_strip import NeuronStrip
from .plain import literal
from .presentation import Presentation
from .run_loop import RunLoop
from .screen_fit import ScreenFit
from .training_ui import TrainingUI
from .window_editing import Editing
from .window_files import FileActions
from .window_layer import LayerViewer
from .window_layout import centre, dock, place_knockout_track
from .window_state import WindowState
from .window_status import StatusReports, human_bytes

__all__ = ["MainWindow", "human_bytes"]  # human_bytes: where callers found it before the split

#: the verbs that edit, or replace the session: off while a run holds it (see EditPause)
PAUSED_VERBS = ("open", "open_spec", "open_data", "open_session", "undo", "redo", "prune", "restore",
                "prune_dialog", "step", "run", "block", "finetune", "train")


class MainWindow(QMainWindow):
    """The pruneviz app window over one session (``set_session`` switches models)."""

    sessionChanged = Signal(object)  #: a new session is shown (after the window's own parts follow it)
    errorShown = Signal(str)  #: the status reports showed an error
    autosaveFailed = Signal(str)  #: the autosave's writer thread failed; delivered on the GUI thread

    def __init__(self, session, open_session=None, parent=None, restore_layout: bool = True, autosave: bool = False, save_layout: bool = True):
        """``open_session(model, data, arch, trust)`` opens a new Session (File > Open); defaults to Session.open.
        With ``autosave``, every edit is journalled to the user data dir (see pruneviz.core.persist).
        ``save_layout=False`` leaves the user's saved window layout alone on close (screenshots)."""
        super().__init__(parent)
        self._save_layout = save_layout
        self._autosave_enabled = autosave
        self.autosave = None
        self.setAcceptDrops(True)
        # 1-2: what every part shares
        self.state = WindowState(self)
        self.state.sessionChanged.connect(self._show_session)  # first: the window's own views follow first
        self.actions = ActionRegistry(self)
        # 3: the views (widgets without verbs)
        self.heatmap = HeatmapView()
        self.strip = NeuronStrip()
        self.strip.setYLink(self.heatmap.vb)
        self.hist = Histogram()
        self.filter = FilterPanel()
        self.tree = LayerTree()
        self.tree.setMinimumWidth(180)  # name, shape, sparsity readable; wider by default (size_docks)
        self.acc = AccuracyPanel()
        self.history = QListWidget()
        self.history.setAlternatingRowColors(True)
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(self.hist, "Histogram")
        self.lower_tabs.addTab(self.filter, "Filter kernels")
        # 4-6: evaluation, the Run until… loop, status reports, presentation mode
        self.runner = LiveEval(None, parent=self)
        self.loop = RunLoop(self)
        self.status = StatusReports(self, self.state, runner=self.runner, loop=self.loop, acc=self.acc)
        self.status.errorShown.connect(self.errorShown)
        self.presentation = Presentation(self)
        # 7-8: the layer view and editing
        self.view = LayerViewer(self.state, heatmap=self.heatmap, strip=self.strip, hist=self.hist, filter=self.filter,
                                lower_tabs=self.lower_tabs, status=self.status, parent=self)
        self.editing = Editing(self.state, view=self.view, heatmap=self.heatmap, strip=self.strip, hist=self.hist, acc=self.acc,
                               status=self.status, actions=self.actions, parent=self)
        self.editing.runRequested.connect(self.loop.start)
        # 9: where they sit
        self.splitter, strip_row, view_controls = centre(self, self.view, self.editing)
        self.dock_layers = dock(self, "Layers", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.dock_acc = dock(self, "Accuracy", self.acc, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_hist = dock(self, "History", self.history, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._docks_sized = False
        # 10: menus and toolbar
        self.files = FileActions(self, self.state, actions=self.actions, status=self.status, heatmap=self.heatmap, editing=self.editing,
                                 runner=self.runner, loop=self.loop, presentation=self.presentation, open_session=open_session,
                                 docks={"layers_dock": self.dock_layers, "history_dock": self.dock_hist, "accuracy_dock": self.dock_acc})
        self.actions.add("measure_shrunk", "Measure the shrunk model", self.status.measure_shrunk, menu="prune",
                         tip="remove pruned neurons and heads from a copy, count its MACs and time it against the original (status bar)")
        # 11: training, Decide (a dock, or a page in presentation mode), the knockout track, lessons
        self.training = TrainingUI(self, self.state, actions=self.actions, runner=self.runner, loop=self.loop, acc=self.acc,
                                   status=self.status, tabs=self.lower_tabs)
        self.decide = DecidePanel(self.state, status=self.status, tree=self.tree, acc=self.acc)
        self.sessionChanged.connect(self.decide.set_session)
        self.presentation.add_plots(self.decide.sens_plot, self.decide.ko_plot, self.decide.sweep_plot, self.decide.alloc_plot)
        self.decide_page = DecidePage(self, self.decide, actions=self.actions, presentation=self.presentation)
        self.dock_decide = self.decide_page.dock
        self.knockout_track = KnockoutTrack(self.strip)
        place_knockout_track(self.knockout_track, strip_row, view_controls, self.strip, self.view.method.sizeHint().height())
        self._follow_knockouts()
        self.lessons = LessonController(self, self.state, actions=self.actions, status=self.status, tree=self.tree,
                                        docks={"layers": self.dock_layers, "history": self.dock_hist, "accuracy": self.dock_acc})
        # 12: editing pauses while a run holds the session
        self.edit_pause = EditPause(self, bar=self.status.bar, hover=self.status.hover, block=self.editing.block)
        self.edit_pause.add(*(self.actions[v] for v in PAUSED_VERBS), self.files.recent_menu.menuAction(), self.files.demos_menu.menuAction())
        e = self.editing
        self.edit_pause.add(e.prune_sel, e.restore_sel, e.threshold, e.thr_gran, e.apply_thr, e.block, self.history, self.acc.use_demo, self.acc.open_data)
        self.edit_pause.add(self.decide.alloc_apply, self.decide.plans.switch)
        self.status.refused.connect(self.edit_pause.say)
        self._connect_views()
        app = QCoreApplication.instance()
        if app is not None:  # quitting without closing the window keeps the journal: whole
            app.aboutToQuit.connect(self.flush_autosave)
        self.autosaveFailed.connect(lambda message: self.status.bar.showMessage(message))
        self._restored_state = False
        self.screen_fit = ScreenFit(self)  # inside the screen at the start and whenever it grows
        if restore_layout:
            self._restore_settings()
        else:
            self.resize(1400, 900)
        self.set_session(session)

    # ------------------------------------------------------------- the window state, read here
    @property
    def session(self):
        """The session shown (``window.state.session``)."""
        return self.state.session

    @property
    def layer(self) -> str | None:
        """The layer shown (``window.state.layer``)."""
        return self.state.layer

    @property
    def selected(self) -> set[int]:
        """The selected neuron rows of the layer shown (``window.state.selected``)."""
        return self.state.selected

    def _connect_views(self) -> None:
        self.tree.layerSelected.connect(self.view.show_layer)
        self.filter.failed.connect(self.status.show_error)
        self.filter.neuronPicked.connect(lambda row: self.editing.select_neurons([row]))
        self.acc.use_demo.clicked.connect(lambda: self.files.set_data("demo:digits"))
        self.acc.open_data.clicked.connect(lambda: self.files.open_data_dialog())
        self.filter.message.connect(lambda m: self.status.bar.showMessage(m, 6000))
        self.history.itemClicked.connect(lambda it: self.status.guard(self.session.goto, self.history.row(it)))

    def _follow_knockouts(self) -> None:
        """The knockout track shows the Decide panel's knockouts of the shown layer, row for row
        with the strip; a click on a row selects that neuron as a click on the strip does."""
        track, method = self.knockout_track, self.view.method
        self.strip.redrawn.connect(lambda: track.show_layer(self.state.session, self.state.layer, method.currentText()))
        track.rowsClicked.connect(self.strip.rowsClicked)
        self.sessionChanged.connect(track.set_session)

        def rescale(scale: float) -> None:
            track.row_height = method.sizeHint().height()
            track.set_scale(scale, self.presentation.font())

        self.presentation.changed.connect(rescale)
        jobs = self.decide.jobs
        jobs.started.connect(lambda name: track.measuring(self.state.session) if name == "knockout" else None)
        jobs.finished.connect(lambda name, value: track.add_result(value) if name == "knockout" else None)

    # ------------------------------------------------------------- files and drops
    def flush_autosave(self) -> None:
        """Wait (up to a minute) for the autosave's writer to write what it has."""
        if self.autosave is not None:
            self.autosave.flush(60)

    def dragEnterEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        if not self.edit_pause.paused:  # no opening while a run holds the session
            self.files.dragEnterEvent(ev)

    def dropEvent(self, ev) -> None:  # noqa: N802
        self.files.dropEvent(ev)

    # ------------------------------------------------------------- sessions
    def set_session(self, s) -> None:
        """Show session ``s`` (replaces the current one; its history goes with it)."""
        if self.session is not None:
            self.session.changed.disconnect(self._on_changed)
            self.loop.stop()
        if self._autosave_enabled:
            from pruneviz.core import persist

            if self.autosave is not None:
                self.autosave.close()
            try:
                # encoded, written and fsynced by a writer thread: the GUI thread only snapshots
                self.autosave = persist.Autosave(s, background=True, on_error=self.autosaveFailed.emit)
            except OSError as exc:  # a read-only home must not stop the app
                self.autosave = None
                self.status.bar.showMessage(f"autosave is off: {exc}", 10_000)
        self.runner.set_session(s)  # the runner listens first: an edit cancels a running evaluation
        self.edit_pause.follow(s)
        s.changed.connect(self._on_changed)
        self.state.set_session(s)  # -> _show_session, then the other parts (sessionChanged)

    def _show_session(self, s) -> None:
        """The window's own views follow a new session (the window state's first listener)."""
        self.status.follow_session(s)
        self.view.reset_scores()
        self.acc.reset()
        self.tree.set_session(s)
        self.view.fill_methods(s.data is not None)
        # Qt appends the application's display name ("— pruneviz") itself
        self.setWindowTitle(s.spec + (f"  ·  {s.data.spec}" if s.data is not None and getattr(s.data, "spec", None) else ""))
        neurons = s.neuron_pruning
        e = self.editing
        for w in (e.prune_sel, e.restore_sel, *(self.actions[v] for v in ("prune", "restore", "step", "run"))):
            w.setEnabled(neurons)
            w.setToolTip("" if neurons else literal(no_neurons_text(s) or "neuron pruning unavailable"))
        self.acc.set_has_data(s.data is not None)
        first = next((layer.name for layer in s.layers if not layer.is_output), s.layers[0].name)
        self.tree.select(first)
        if self.layer is None:
            self.view.show_layer(first)
        self._refresh_history()
        self.status.refresh_totals()
        self.sessionChanged.emit(s)
        self.runner.request()

    def _on_changed(self, change) -> None:
        s = self.session
        rows = self.view.rows_touched(change) if change.kind != "data" and self.layer in change.layers else None
        self.view.scores_follow(change, rows)
        if change.kind == "data":  # new evaluation data: new baseline, new data-driven methods
            self.acc.reset()
            self.acc.set_has_data(s.data is not None)
            self.view.fill_methods(s.data is not None)
            self.view.refresh_layer(reset_view=False)
        else:
            if change.kind == "edit":
                self.acc.forget_after(s.history.index)
            if self.layer in change.layers:
                self.view.refresh_layer(reset_view=False, rows=rows)
            elif self.view.current_method() not in LOCAL_METHODS:
                self.view.refresh_layer(reset_view=False)  # every edit changes data-driven scores
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
        undo, redo = self.actions["undo"], self.actions["redo"]
        undo.setEnabled(h.can_undo)
        redo.setEnabled(h.can_redo)
        undo.setText(f"Undo {labels[h.index - 1]}" if h.can_undo else "Undo")
        redo.setText(f"Redo {labels[h.index]}" if h.can_redo else "Redo")
        for a, short in ((undo, "Undo"), (redo, "Redo")):
            a.setIconText(short)  # the toolbar stays compact; the menu and tooltip say what
            a.setToolTip(literal(a.text()))

    # ------------------------------------------------------------- layout
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
            QTimer.singleShot(0, self.size_docks)

    def size_docks(self) -> None:
        """The docks' default shares of the window (a first start, or a screenshot)."""
        w = self.width()
        self.resizeDocks([self.dock_layers, self.dock_acc], [int(w * 0.28), int(w * 0.24)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_layers, self.dock_hist], [int(self.height() * 0.62), int(self.height() * 0.3)], Qt.Orientation.Vertical)

    def closeEvent(self, ev) -> None:
        self.loop.stop()
        self.view.score_jobs.shutdown(5000)
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
