"""Edits pause while a job holds the session (a fine-tune, a schedule, a lesson step).

The engine refuses every edit while a job runs (:mod:`pruneviz.core.jobs`); the window says so
before the user tries: :class:`EditPause` follows the session's ``job_changed`` signal (emitted
from the worker that drives the job, delivered here on the GUI thread) and, while a job runs,
disables the controls that edit (prune and restore, threshold, block tool, undo / redo, the
history list, opening models, data and sessions, Decide's Apply, switching plans, starting
another run) with the reason in the status bar; when the job ends they come back as their
owners last set them.

Actions join a non-exclusive ``QActionGroup``: Qt keeps each action's own enabled state under a
disabled group (``actions["undo"].setEnabled(can_undo)`` during a run takes effect when the group is
enabled again). Widgets are disabled one by one; one enabled by its owner during the pause is
disabled again and remembered as wanted. Whatever still reaches the engine (a double-click on a
plan, a lesson button) is refused there, and the window shows the refusal in the status bar.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QWidget


class EditPause(QObject):
    """Disables the window's editing controls while the session's job runs.

    It takes the status bar (the reason goes there), the hover read-out (hidden meanwhile, to
    give the reason its room) and the block tool (switched off: a drag would edit); the window
    gates its editing actions and widgets with :meth:`add` and points it at each session with
    :meth:`follow`."""

    pausedChanged = Signal(bool)  #: True when edits pause, False when they resume
    _poke = Signal()  # from any thread: re-read the session's job on the GUI thread

    def __init__(self, parent=None, *, bar, hover, block):
        super().__init__(parent)
        self.bar, self.hover, self.block = bar, hover, block
        self.group = QActionGroup(self)
        self.group.setExclusionPolicy(QActionGroup.ExclusionPolicy.None_)
        self.widgets: list[QWidget] = []
        self._wanted: dict[QWidget, bool] = {}
        self._session = None
        self._message = ""
        self._own_change = False
        self.job = None  #: the job the window shows as running (None: edits allowed)
        self._poke.connect(self.sync, Qt.ConnectionType.QueuedConnection)

    @property
    def paused(self) -> bool:
        return self.job is not None

    def add(self, *items) -> None:
        """Gate these actions and widgets (None entries are skipped)."""
        for it in items:
            if it is None:
                continue
            if isinstance(it, QAction):
                self.group.addAction(it)
            elif it not in self.widgets:
                self.widgets.append(it)
                it.installEventFilter(self)
                if self.paused:
                    self._disable(it)

    def follow(self, session) -> None:
        """Watch ``session``'s job (the window switched sessions)."""
        if self._session is not None:
            try:
                self._session.job_changed.disconnect(self._on_job)
            except (RuntimeError, TypeError, ValueError):
                pass
        self._session = session
        if session is not None:
            session.job_changed.connect(self._on_job)
        self.sync()

    def _on_job(self, _job) -> None:  # the driving thread: a worker's, or this one
        self._poke.emit()

    def sync(self) -> None:
        """Match the controls to the session's job now (the signal only says it changed)."""
        job = self._session.job if self._session is not None else None
        if job is self.job:
            return
        was = self.paused
        self.job = job
        sb = self.bar
        if job is not None:
            self._message = f"{job.doing}: edits are paused until it finishes or is cancelled"
            sb.showMessage(self._message)
            if not was:
                self._room(False)
                self.group.setEnabled(False)
                for wdg in self.widgets:
                    self._disable(wdg)
                if self.block.isChecked():
                    self.block.setChecked(False)  # a drag would edit: back to panning
        else:
            if sb.currentMessage() == self._message:
                sb.clearMessage()
            self._message = ""
            self._room(True)
            self.group.setEnabled(True)
            for wdg in self.widgets:
                self._own_change = True
                try:
                    wdg.setEnabled(self._wanted.pop(wdg, True))
                finally:
                    self._own_change = False
        if was != self.paused:
            self.pausedChanged.emit(self.paused)

    def _room(self, hover: bool) -> None:
        """The hover read-out gives its share of the status bar to the reason while paused."""
        self.hover.setVisible(hover)

    def say(self, text: str) -> None:
        """Show why an edit was refused; cleared with the pause."""
        self._message = text
        self.bar.showMessage(text)

    def _disable(self, wdg: QWidget) -> None:
        self._wanted[wdg] = not wdg.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled)
        self._own_change = True
        try:
            wdg.setEnabled(False)
        finally:
            self._own_change = False

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if ev.type() == QEvent.Type.EnabledChange and self.paused and not self._own_change and obj in self._wanted:
            if not obj.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled):  # its owner enabled it meanwhile
                self._disable(obj)
        return False
