"""Live re-evaluation: after every change the model is evaluated again as a job of the app's one
worker kind (:class:`~pruneviz.qt.job_runner.JobRunner`); the GUI thread never waits.

Evaluation is a job like the others: :meth:`Session.evaluate_iter` (after the cancellable
:meth:`Session.baseline_iter` the first time) runs in the runner's worker, its progress streams
back as items, and it follows the runner's two rules: latest wins (``replace``: a new request
cancels the running evaluation and starts once its worker has returned, so two runs never race
on the activation cache) and the staleness rule keyed by :attr:`Session.version` (``session=``:
evaluation reads the live parameters without a lock, so every change cancels it at once and its
late items are dropped; :meth:`JobRunner.stale`). What is left here is the display side: the
request's step and sparsity, a short debounce for slider drags, the baseline once per session
and data, and at most ~25 estimates a second (each request's first one always shown).

Example::

    live = LiveEval(session)
    live.finished.connect(lambda req, result: print(result.accuracy))
    live.request()
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal

from pruneviz.core.evaluate import EvalResult, Progress

from .job_runner import JobRunner

JOB = "evaluation"


@dataclass(frozen=True)
class Request:
    """One evaluation request: its id and what the model looked like when it was made."""

    id: int
    step: int  #: history index at request time
    sparsity: float
    version: int = -1  #: Session.version at request time


@dataclass(frozen=True)
class _Baseline:
    """An item of the evaluation job: the unpruned model's result, for the session it measured."""

    session: object
    result: EvalResult


class LiveEval(QObject):
    """Evaluates the session in the background after each request; newer requests cancel older ones."""

    started = Signal(object)  #: Request
    progress = Signal(object, object)  #: Request, Progress
    finished = Signal(object, object)  #: Request, EvalResult
    baselineReady = Signal(object)  #: EvalResult
    failed = Signal(object, str)  #: Request, message
    cancelled = Signal()
    idle = Signal()  #: nothing running or pending any more

    def __init__(self, session, debounce_ms: int = 100, parent=None):
        super().__init__(parent)
        self.session = None
        self.jobs = JobRunner(self)
        self.jobs.started.connect(self._on_started)
        self.jobs.progress.connect(self._on_item)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.idle.connect(self._on_idle)
        self._next_id = 0
        self._current: Request | None = None
        self._queued: Request | None = None  # handed to the runner, not started yet
        self._baseline_done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._launch)
        self._closed = False
        self._clock = QElapsedTimer()
        self._clock.start()
        self._shown_rid = -1  # the request whose progress was last shown
        self.set_session(session)

    # ------------------------------------------------------------------ API
    @property
    def busy(self) -> bool:
        return self.jobs.busy or self._timer.isActive()

    @property
    def enabled(self) -> bool:
        return self.session is not None and self.session.data is not None and not self._closed

    def request(self, debounce: bool = False) -> None:
        """Ask for a fresh evaluation of the model as it is now (a running one is cancelled)."""
        if not self.enabled:
            return
        if debounce:
            self.jobs.cancel()  # the running one is stale already; the new one starts after the pause
            self._timer.start()
        else:
            self._timer.stop()
            self._launch()

    def cancel(self) -> None:
        """Stop the running evaluation and drop any pending one."""
        self._timer.stop()
        self._queued = None
        self.jobs.cancel()
        if self._current is not None:  # an evaluation ran since this runner began: say it stopped
            self.cancelled.emit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait (bounded) for the worker; call once when the window closes."""
        self.cancel()
        self._closed = True
        self._disconnect()
        return self.jobs.shutdown(timeout_ms)

    def set_session(self, session) -> None:
        """Switch to another session (after File > Open); cancels work on the old one. The
        runner listens to the new session's changes first, so an edit cancels a running
        evaluation before anything else reacts."""
        self.cancel()
        self._disconnect()
        self.session = session
        self._baseline_done = False
        self.jobs.watch(session)
        if session is not None:
            session.changed.connect(self._on_session_changed)

    # ------------------------------------------------------------- internals
    def _disconnect(self) -> None:
        if self.session is not None:
            try:
                self.session.changed.disconnect(self._on_session_changed)
            except (ValueError, RuntimeError):
                pass

    def _on_session_changed(self, change) -> None:
        if getattr(change, "kind", None) == "data":  # new data needs a new baseline
            self._baseline_done = False

    def _launch(self) -> None:
        if self._closed or self.session is None:
            return
        s = self.session
        self._next_id += 1
        self._queued = Request(self._next_id, s.history.index, s.sparsity(), s.version)
        self.jobs.start(JOB, lambda cancel: self._job(s, cancel), replace=True, session=s)

    def _job(self, s, cancel):
        """The evaluation job (runs in the worker): the baseline first if none was reported for
        this session and its data, then the current model's Progress items and EvalResult."""
        if not self._baseline_done:
            for item in s.baseline_iter(cancel=cancel):
                if isinstance(item, EvalResult):
                    yield _Baseline(s, item)
        if not cancel.is_set():
            yield from s.evaluate_iter(cancel=cancel)

    def _on_started(self, name: str) -> None:
        self._current, self._queued = self._queued, None
        if self._current is not None:
            self.started.emit(self._current)

    def _on_item(self, name: str, item) -> None:
        req = self._current
        if req is None:
            return
        if isinstance(item, Progress):
            # at most ~25 redraws a second: fast evaluations yield far more batches than a screen
            # shows; but a request's first estimate is always shown at once (what the user waits for)
            if req.id != self._shown_rid or self._clock.elapsed() >= 40 or item.done >= item.total:
                self._shown_rid = req.id
                self._clock.restart()
                self.progress.emit(req, item)
        elif isinstance(item, EvalResult):
            self.finished.emit(req, item)
        elif isinstance(item, _Baseline) and item.session is self.session:
            self._baseline_done = True
            self.baselineReady.emit(item.result)

    def _on_failed(self, name: str, msg: str) -> None:
        if self._current is not None:
            self.failed.emit(self._current, msg)

    def _on_idle(self) -> None:
        if not self._timer.isActive():
            self.idle.emit()
