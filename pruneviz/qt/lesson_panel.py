"""Lessons in the app: a Lessons menu, a caption panel with Back / Next, live steps.

:class:`LessonController` (``window.lessons``) registers the Lessons menu's entries (and File >
Open lesson…) in the action registry and adds a "Lesson" dock; it takes the window (its docks
and dialogs, ``set_session`` for a lesson's session), the window state, the action registry,
the status reports (errors), the layer list (a step's layer is selected there) and the docks
it puts away while a lesson runs.
Starting a lesson opens its session in the worker (a generated problem trains its network
there) and shows it in the window; each Next sets up the view (the step's layer) and runs the
step's action in the worker through :class:`~pruneviz.qt.job_runner.JobRunner`, drawing its
chart live. A predict step shows a multiple choice, sized from the window's font so it scales
with presentation mode; choosing (or Next) reveals the answer. After the last step, "What we
saw" shows the claim and the figures measured in this run. Back undoes the last step.

While a step runs in the worker, the session's ``changed`` signal is held (its listeners are
Qt widgets, which only the GUI thread may touch). When the step is done (also when it failed or
was cancelled), exactly one change is emitted on the GUI thread: kind ``"edit"`` when the step
moved the history (every listener, the autosave journal included, then sees the steps it added),
else ``"load"`` (a refresh). The widgets refresh once either way.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog, QWidget

from pruneviz.core import lessons as core
from pruneviz.core.errors import PrunevizError, TrustRequired
from pruneviz.core.history import Change

from .job_runner import JobRunner
from .lesson_widgets import LessonPanel
from .opening import ask_trust, replace_question

class LessonController(QObject):
    """Runs one lesson at a time in the window: menus, dock, worker, Back / Next."""

    stepShown = Signal(int)  #: steps done after a step (or Back) finished
    opened = Signal(str)  #: lesson name, once its session is in the window

    def __init__(self, window, state, *, actions, status, tree, docks):
        super().__init__(window)
        self.window = window
        self.state, self.reports, self.tree, self.docks = state, status, tree, docks
        self.run: core.LessonRun | None = None
        self.page = "none"  # none | opening | intro | step | running | summary
        self.jobs = JobRunner(self)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.idle.connect(self._on_idle)
        self._done = None  # what the finished job gave, shown once its thread has returned
        self._before = None  # the history's state before the running step (see _notify)
        self.panel = LessonPanel()
        self.panel.next.clicked.connect(self.next)
        self.panel.back.clicked.connect(self.back)
        self.panel.close_btn.clicked.connect(self.close)
        self.panel.playground.failed.connect(self._error)
        self.dock = QDockWidget("Lesson", window)
        self.dock.setObjectName("dock_lesson")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        self._hidden: list[QWidget] = []  # docks the lesson put away, shown again when it ends
        self.replace_box = None  # the "Start the lesson?" question while it is open
        self.dock.hide()
        self._build_menus(actions)
        window.installEventFilter(self)
        state.sessionChanged.connect(self._on_window_session)

    # ---------------------------------------------------------------------------------- menus
    def _build_menus(self, actions) -> None:
        menu = actions.menu("lessons")
        self.menu = menu
        self.lesson_actions: dict[str, object] = {}  #: lesson name -> its entry (verb ``lesson:NAME``)
        for name in core.available():
            try:
                lesson = core.load(name)
            except PrunevizError as exc:  # a broken shipped file must not stop the app
                act = menu.addAction(f"{name} (cannot be read)")
                act.setEnabled(False)
                act.setToolTip(str(exc))
                continue
            text = lesson.title + (f"   (needs: {', '.join(lesson.needs)})" if lesson.needs else "")
            act = actions.add(f"lesson:{name}", text, lambda n=name: self.start(n), menu="lessons", tip=lesson.summary, enabled=lesson.runnable)
            self.lesson_actions[name] = act
        menu.addSeparator()
        self.act_open = actions.add("open_lesson", "Open lesson file…", self.open_file, menu="lessons")
        file_menu = actions.menu("file")  # also in File, with the other openers (before the first separator)
        sep = next((a for a in file_menu.actions() if a.isSeparator()), None)
        if sep is None:
            file_menu.addAction(self.act_open)
        else:
            file_menu.insertAction(sep, self.act_open)

    def eventFilter(self, obj, ev) -> bool:
        if obj is self.window and ev.type() == QEvent.Type.Close:
            # end the lesson before the window saves its layout: the next start shows the editor
            self.close()
            self.shutdown()
        return False

    def _on_window_session(self, session) -> None:
        if self.run is None or session is not self.run.session:
            if self.page not in ("opening",) and self.dock.isVisible():
                self.close()  # another model was opened (or a saved layout showed an empty lesson)

    def open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open lesson", str(Path.home()), "Lessons (*.toml);;All files (*)")
        if path:
            self.start(path)

    # ------------------------------------------------------------------------------- running
    @property
    def lesson(self):
        return self.run.lesson if self.run else None

    def start(self, name_or_path: str, trust: bool = False) -> bool:
        """Start a lesson (a shipped name or a file). Errors become a message; returns success.

        A lesson file naming code to run (a data factory) is opened only after the user agrees in
        the same prompt a session file naming code gets (it names the module, its file and the
        lesson file), or with ``trust`` (``pruneviz gui --lesson FILE --trust``). A model with
        edits is replaced only after the user agrees (:meth:`confirm_replace`)."""
        if not self.confirm_replace():
            return False
        if self.jobs.busy:
            self.jobs.cancel()
            self.jobs.wait(30_000)
            QApplication.processEvents()
        try:
            try:
                lesson = core.load(name_or_path, trust=trust)
            except TrustRequired as exc:
                if trust or not ask_trust(self.window, exc):
                    return False
                lesson = core.load(name_or_path, trust=True)
            run = core.LessonRun(lesson, device="cpu")
        except PrunevizError as exc:
            self._error(str(exc))
            return False
        self.run = run
        self.page = "opening"
        self._show_dock()
        self.panel.show_opening(lesson)
        self._buttons()

        def opening(cancel):
            run.open()
            return run.session
            yield  # noqa: B901 - a generator for the runner

        self.jobs.start("open", opening)
        return True

    def confirm_replace(self) -> bool:
        """Ask before a lesson replaces a model the user edited (its undo history goes with it);
        True to go on. A lesson's own session, or one with no edits, is replaced without asking."""
        s = self.state.session
        if s is None or s.history.index == 0 or (self.run is not None and s is self.run.session):
            return True
        box, start = replace_question(self.window, s, "Start the lesson?", "The lesson opens its own model in this window", "Start the lesson")
        self.replace_box = box  # tests answer it
        box.exec()
        self.replace_box = None
        return box.clickedButton() is start

    def _show_dock(self) -> None:
        w = self.window
        self.panel.scale_fonts(w.font().pointSizeF() if w.font().pointSizeF() > 0 else 10.0)
        if not self.dock.isVisible():
            # the lesson takes the place of the editor, the layer list and the history; the
            # accuracy panel stays beside it (End lesson brings the editor back)
            for d in [self.docks.get("layers"), self.docks.get("history"), w.centralWidget()]:
                if isinstance(d, QWidget) and d.isVisible():
                    d.hide()
                    self._hidden.append(d)
            self.dock.show()
            self.size_docks()
            QTimer.singleShot(0, self.size_docks)  # again once the window has laid itself out

    def size_docks(self) -> None:
        """The lesson gets three quarters of the window's width, the accuracy panel the rest."""
        w = self.window
        acc = self.docks["accuracy"]
        if self.dock.isVisible() and acc.isVisible():
            w.resizeDocks([self.dock, acc], [int(w.width() * 0.74), int(w.width() * 0.26)], Qt.Orientation.Horizontal)

    def next(self) -> None:
        """Reveal a pending answer, else run the next step, else show "What we saw"."""
        run = self.run
        if run is None or self.jobs.busy or self.page in ("opening", "none"):
            return
        if self.page == "step" and self.panel.stack.currentWidget() is self.panel.predict and not self.panel.predict.revealed:
            self.panel.predict.reveal()
            return
        k = run.done
        if k >= len(run.lesson.steps):
            self._show_summary()
            return
        step = run.lesson.steps[k]
        self._caption(k, step)
        self._setup_view(step)
        if step["action"] == "predict":
            list(_drain(run.step_iter()))  # nothing to compute: the question is the step
            self.panel.predict.ask(step, self._base_pt())
            self.panel.stack.setCurrentWidget(self.panel.predict)
            self.panel.note.setText("")
            self.page = "step"
            self._buttons()
            self.stepShown.emit(run.done)
            return
        self.page = "running"
        self.panel.note.setText("running…")
        self._buttons()
        session = run.session
        self._before = _history_state(session)

        def step_job(cancel):
            with session.changed.blocked():  # listeners are widgets: refresh once, on the GUI thread
                return (yield from run.step_iter(cancel))

        self.jobs.start("step", step_job, throttle_ms=60)

    def back(self) -> None:
        """Cancel a running step, or undo the last step run and show the one before."""
        run = self.run
        if run is None or self.page in ("opening", "none"):
            return
        if self.jobs.busy:
            self.jobs.cancel()
            return
        if self.page == "summary":
            self._show_result(run.results[-1] if run.results else None)
            return
        if run.done:
            run.back()
        self._show_result(run.results[-1] if run.results else None)

    def close(self) -> None:
        """End the lesson; the window keeps the lesson's session."""
        if self.jobs.busy:
            self.jobs.cancel()
            self.jobs.wait(30_000)
        self.run = None
        self.page = "none"
        self.panel.playground.set_session(None)
        self.dock.hide()
        for d in self._hidden:
            d.show()
        self._hidden = []

    def shutdown(self) -> None:
        self.jobs.shutdown(5000)

    # ----------------------------------------------------------------------------- displays
    def _base_pt(self) -> float:
        pt = self.window.font().pointSizeF()
        return pt if pt > 0 else 10.0

    def _caption(self, k: int, step: dict) -> None:
        p = self.panel
        p.scale_fonts(self._base_pt())
        p.counter.setText(f"step {k + 1} of {len(self.run.lesson.steps)}")
        p.caption.setText(html.escape(step["caption"]))

    def _setup_view(self, step: dict) -> None:
        if step.get("layer"):
            try:
                self.state.session.layer(step["layer"])
            except PrunevizError:
                return
            self.tree.select(step["layer"])
        if self.run.lesson.problem is not None:
            self.panel.stack.setCurrentWidget(self.panel.playground)
        else:
            self.panel.chart.set_charts([])
            self.panel.stack.setCurrentWidget(self.panel.chart)

    def _show_result(self, r) -> None:
        run = self.run
        self.page = "step" if r is not None else "intro"
        if r is None:
            self.panel.show_intro(run.lesson)
        else:
            self._caption(r.index, r.step)
            self.panel.show_step(r, run.lesson, self._base_pt())
        self._buttons()
        self.stepShown.emit(run.done)

    def _show_summary(self) -> None:
        run = self.run
        self.page = "summary"
        try:
            holds = run.holds()
        except PrunevizError as exc:
            holds = None
            self._error(str(exc))
        self.panel.show_summary(run, holds)
        self._buttons()
        self.stepShown.emit(run.done)

    def _buttons(self) -> None:
        self.panel.set_buttons(self.run, self.page)

    # ---------------------------------------------------------------------------- job signals
    def _on_progress(self, name: str, item) -> None:
        if name != "step" or not isinstance(item, dict):
            return
        if item.get("text"):
            self.panel.note.setText(item["text"])
        if item.get("chart") and self.run is not None and self.run.lesson.problem is None:
            self.panel.chart.set_charts([item["chart"]])

    def _on_finished(self, name: str, value) -> None:
        # shown on idle: until the worker's thread has returned, the runner refuses a new job
        self._done = (name, value)

    def _on_idle(self) -> None:
        done, self._done = self._done, None
        if self.run is None or done is None:
            return
        name, value = done
        if name == "failed":
            self._failed(*value)
            return
        if name == "open":
            if self.state.session is not value:
                self.window.set_session(value)
            self.panel.playground.set_session(value if self.run.lesson.problem is not None else None)
            self._show_result(None)
            self.opened.emit(self.run.lesson.name)
            return
        self._notify()
        if value is not None:
            self._show_result(value)

    def _notify(self) -> None:
        """The one change a finished (failed, cancelled) step emits: see the module docstring."""
        s = self.run.session
        before, self._before = self._before, None
        now = _history_state(s)
        moved = before is not None and (now[0] != before[0] or len(now[1]) != len(before[1]) or any(a is not b for a, b in zip(now[1], before[1])))
        s.changed.emit(Change("lesson step", frozenset(layer.name for layer in s.layers), "edit" if moved else "load"))

    def _on_failed(self, name: str, message: str) -> None:
        self._done = ("failed", (name, message))

    def _failed(self, name: str, message: str) -> None:
        if self.run is not None and name == "step":
            self._notify()
            self._show_result(self.run.results[-1] if self.run.results else None)
        elif name == "open":
            self.close()
        self._error(message)

    def _on_cancelled(self, name: str) -> None:
        if self.run is None:
            return
        if name == "open":
            self.close()
            return
        self._notify()
        self._show_result(self.run.results[-1] if self.run.results else None)

    def _error(self, message: str) -> None:
        self.reports.show_error(message)

    # --------------------------------------------------------------------------- blocking use
    def wait_idle(self, timeout_ms: int = 120_000) -> bool:
        """Process events until no job runs (screenshots and tests; never from a slot)."""
        from PySide6.QtCore import QElapsedTimer

        clock = QElapsedTimer()
        clock.start()
        while (self.jobs.busy or self.page in ("opening", "running")) and clock.elapsed() < timeout_ms:
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            self.jobs.wait(20)
        QApplication.processEvents()
        return not self.jobs.busy


def _history_state(session) -> tuple:
    """What identifies the history's state: the applied index and the steps on the current path."""
    h = session.history
    return (h.index, list(h.steps))


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return
