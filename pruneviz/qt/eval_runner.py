"""Live re-evaluation in a worker thread: latest request wins, the GUI thread never waits.

The runner wraps :meth:`Session.evaluate_iter` (a generator with a cancel flag) in a QThread.
``request()`` debounces (slider drags), cancels the stale run by setting its
``threading.Event`` and starts the new one once the old thread has returned (so two runs never
race on the activation cache). Progress and results come back as queued signals, tagged with a
request id so a late result of a cancelled run is dropped.

Evaluation reads the live parameters without a lock (see :meth:`Session.evaluate_iter`), so the
runner honours the session's contract itself: it listens to ``session.changed`` and cancels the
running evaluation at once on every edit, and a result is accepted only when the masks' version
is still the one the request saw. The baseline runs through the cancellable
:meth:`Session.baseline_iter`, so closing the window stops it at the next batch.

Example::

    runner = EvalRunner(session)
    runner.finished.connect(lambda rid, result: print(result.accuracy))
    runner.request()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PySide6.QtCore import QElapsedTimer, QObject, QThread, QTimer, Signal

from pruneviz.core.evaluate import EvalResult, Progress

from .job_runner import message_of, track, wait_or_keep


@dataclass(frozen=True)
class Request:
    """One evaluation request: its id and what the model looked like when it was made."""

    id: int
    step: int  #: history index at request time
    sparsity: float
    version: int = -1  #: mask version at request time: a result for another version is stale


class _EvalThread(QThread):
    progress = Signal(int, object)  # request id, Progress
    result = Signal(int, object)  # request id, EvalResult
    baseline = Signal(object, object)  # session, EvalResult of its unpruned model
    failed = Signal(int, str)

    def __init__(self, session, req: Request, cancel: threading.Event, want_baseline: bool, parent=None):
        super().__init__(parent)
        self.session, self.req, self.cancel, self.want_baseline = session, req, cancel, want_baseline

    def run(self) -> None:  # runs in the worker thread
        try:
            if self.want_baseline and not self.cancel.is_set():
                base = self.session.baseline_iter(cancel=self.cancel)
                try:
                    for item in base:
                        if self.cancel.is_set():
                            return
                        if isinstance(item, EvalResult):
                            self.baseline.emit(self.session, item)
                finally:
                    close = getattr(base, "close", None)
                    if close is not None:
                        close()
            if self.cancel.is_set():
                return
            gen = self.session.evaluate_iter(cancel=self.cancel)
            try:
                for item in gen:
                    if self.cancel.is_set():
                        return
                    if isinstance(item, Progress):
                        self.progress.emit(self.req.id, item)
                    elif isinstance(item, EvalResult):
                        self.result.emit(self.req.id, item)
            finally:
                gen.close()
        except Exception as exc:  # noqa: BLE001 - any failure is reported in the window, not raised in a thread
            if not self.cancel.is_set():  # a cancelled run may fail on half-edited weights: not news
                self.failed.emit(self.req.id, message_of(exc))


class EvalRunner(QObject):
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
        self.session = session
        self._next_id = 0
        self._current: Request | None = None
        self._cancel: threading.Event | None = None
        self._thread: _EvalThread | None = None
        self._pending: Request | None = None
        self._baseline_done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._launch)
        self._closed = False
        self._clock = QElapsedTimer()
        self._clock.start()
        self._shown_rid = -1  # the request whose progress was last shown

    # ------------------------------------------------------------------ API
    @property
    def busy(self) -> bool:
        return self._thread is not None or self._pending is not None or self._timer.isActive()

    @property
    def enabled(self) -> bool:
        return self.session is not None and self.session.data is not None and not self._closed

    def request(self, debounce: bool = False) -> None:
        """Ask for a fresh evaluation of the model as it is now (a running one is cancelled)."""
        if not self.enabled:
            return
        if self._cancel is not None:
            self._cancel.set()
        if debounce:
            self._timer.start()
        else:
            self._timer.stop()
            self._launch()

    def cancel(self) -> None:
        """Stop the running evaluation and drop any pending one."""
        self._timer.stop()
        self._pending = None
        if self._cancel is not None:
            self._cancel.set()
            self.cancelled.emit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait (bounded) for the worker; call once when the window closes."""
        self._closed = True
        self.cancel()
        self._disconnect()
        ok = wait_or_keep(self._thread, timeout_ms)  # never let Qt destroy a running thread
        self._thread = None
        return ok

    def set_session(self, session) -> None:
        """Switch to another session (after File > Open); cancels work on the old one."""
        self.cancel()
        self._disconnect()
        self.session = session
        self._baseline_done = False
        if session is not None:
            session.changed.connect(self._on_session_changed)

    def _disconnect(self) -> None:
        if self.session is not None:
            try:
                self.session.changed.disconnect(self._on_session_changed)
            except (ValueError, RuntimeError):
                pass

    def _on_session_changed(self, change) -> None:
        """Every edit invalidates the running evaluation: cancel it now, before anything else
        reacts (the result would mix old and new weights). New data also needs a new baseline."""
        if self._cancel is not None:
            self._cancel.set()
        if getattr(change, "kind", None) == "data":
            self._baseline_done = False

    # ------------------------------------------------------------- internals
    def _launch(self) -> None:
        if self._closed or self.session is None:
            return
        s = self.session
        self._next_id += 1
        req = Request(self._next_id, s.history.index, s.sparsity(), s.version)
        if self._thread is not None:  # the stale run is cancelled; start when it returns
            self._pending = req
            return
        self._start(req)

    def _start(self, req: Request) -> None:
        self._pending = None
        self._current = req
        self._cancel = threading.Event()
        t = _EvalThread(self.session, req, self._cancel, not self._baseline_done)
        t.progress.connect(self._on_progress)
        t.result.connect(self._on_result)
        t.baseline.connect(self._on_baseline)
        t.failed.connect(self._on_failed)
        t.finished.connect(self._on_thread_done)
        self._thread = t
        track(t)  # joined at exit (job_runner.join_all)
        self.started.emit(req)
        t.start(QThread.Priority.LowPriority)

    def _on_thread_done(self) -> None:
        t, self._thread = self._thread, None
        if t is not None:
            t.deleteLater()
        if self._pending is not None and not self._closed:
            self._start(self._pending)
        elif not self._timer.isActive():
            self.idle.emit()

    def _live(self, rid: int) -> bool:
        if self._current is None or rid != self._current.id or self._pending is not None:
            return False
        if self._cancel is not None and self._cancel.is_set():
            return False
        # belt and braces: an edit that reached the masks without a changed signal still voids it
        return self.session is not None and self.session.version == self._current.version

    def _on_progress(self, rid: int, p) -> None:
        # at most ~25 redraws a second: fast evaluations yield far more batches than a screen
        # shows; but a request's first estimate is always shown at once (what the user waits for)
        first = rid != self._shown_rid
        if self._live(rid) and (first or self._clock.elapsed() >= 40 or p.done >= p.total):
            self._shown_rid = rid
            self._clock.restart()
            self.progress.emit(self._current, p)

    def _on_result(self, rid: int, r) -> None:
        if self._live(rid):
            self.finished.emit(self._current, r)

    def _on_baseline(self, session, r) -> None:
        if session is not self.session:  # the baseline of a model that was replaced meanwhile
            return
        self._baseline_done = True
        self.baselineReady.emit(r)

    def _on_failed(self, rid: int, msg: str) -> None:
        if self._current is not None and rid == self._current.id:
            self.failed.emit(self._current, msg)
