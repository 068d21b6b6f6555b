"""The app's one kind of worker: long core work (evaluation, training, sweeps, analyses, slow
scores) runs here, in a worker thread.

The core writes long work as a plain generator that yields progress and checks a cancel flag
(STYLE.md, lesson 4). :class:`JobRunner` runs one such generator at a time in a ``QThread`` and
reports back through queued signals, so the GUI thread never waits:

* ``progress(name, item)`` for each yielded item (optionally coalesced to at most one per
  ``throttle_ms``; the last item is always delivered before ``finished``);
* ``finished(name, value)`` with the generator's return value (``StopIteration.value``);
* ``failed(name, message)`` with a one-line message, or ``cancelled(name)``.

Cancelling sets the job's :class:`threading.Event` (the generator sees it at its next check)
and the worker closes the generator at its next ``yield``, so its ``finally`` blocks run in the
worker (a training run records its undo step there). A runner that is shut down while a job
is still running keeps the thread referenced until it returns: Qt never destroys a running
``QThread``.

Two options cover the rest, each written once here:

* ``replace=True``: latest wins. A job started while another runs cancels it and starts once its
  worker has returned (two runs never race on the session's caches); only the newest waits.
* ``session=s``: the job reads the model, so it is keyed by :attr:`Session.version`. The one
  staleness rule (:meth:`JobRunner.stale`): a keyed job is stale once the session's version is
  no longer the one it started at, or the session told of a change (``Session.changed``, new
  data included). The runner cancels it at once, in the thread that made the change (an
  evaluation reads live weights: it must stop before it mixes old and new ones), drops its
  items, result and failure, and emits ``dropped``; with ``requeue=True`` it runs again on the
  new version once the worker has returned.

Example::

    jobs = JobRunner()
    jobs.progress.connect(lambda name, p: print(name, p))
    jobs.finished.connect(lambda name, value: print("done", value))
    jobs.start("fine-tune", lambda cancel: session.finetune(epochs=3, cancel=cancel), throttle_ms=40)
"""

from __future__ import annotations

import threading
import weakref
import time
from typing import Any, Callable, Iterator

from PySide6.QtCore import QObject, QThread, Signal

#: threads that outlived shutdown()'s wait: referenced until they return (see module docstring)
_ORPHANS: set = set()
#: every worker thread started, for :func:`join_all` at exit
_STARTED: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def track(thread: QThread) -> None:
    """Remember a worker thread (it has a ``cancel`` event) so :func:`join_all` can stop it."""
    _STARTED.add(thread)


def join_all(timeout_ms: int = 30_000) -> bool:
    """Cancel every worker thread still running and wait for each to return (at most
    ``timeout_ms`` in all). The app calls it before the interpreter exits: Qt aborts the process
    (exit code 134, "QThread: Destroyed while thread is still running") when a running QThread
    is destroyed. Returns whether all of them returned."""
    threads = [t for t in list(_STARTED) + list(_ORPHANS) if t.isRunning()]
    for t in threads:
        cancel = getattr(t, "cancel", None)
        if isinstance(cancel, threading.Event):
            cancel.set()
    deadline = time.monotonic() + timeout_ms / 1000
    ok = True
    for t in threads:
        ok = t.wait(max(0, int((deadline - time.monotonic()) * 1000))) and ok
    return ok

Factory = Callable[[threading.Event], Iterator[Any]]


def message_of(exc: BaseException) -> str:
    """One line for the user: the engine's own message, else the exception type and its first line."""
    from pruneviz.core.errors import PrunevizError

    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, PrunevizError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _JobThread(QThread):
    item = Signal(int, object)  # job id, yielded item
    done = Signal(int, object)  # job id, return value
    failed = Signal(int, str)

    def __init__(self, jid: int, factory: Factory, cancel: threading.Event, throttle_s: float, parent=None):
        super().__init__(parent)
        self.jid, self.factory, self.cancel, self.throttle_s = jid, factory, cancel, throttle_s

    def run(self) -> None:  # the worker thread
        gen = None
        try:
            gen = self.factory(self.cancel)
            last_emit = 0.0
            held = _NOTHING
            while True:
                if self.cancel.is_set():
                    return
                try:
                    obj = next(gen)
                except StopIteration as stop:
                    if held is not _NOTHING:
                        self.item.emit(self.jid, held)
                    self.done.emit(self.jid, stop.value)
                    return
                now = time.monotonic()
                if self.throttle_s <= 0 or now - last_emit >= self.throttle_s:
                    self.item.emit(self.jid, obj)
                    last_emit, held = now, _NOTHING
                else:
                    held = obj
        except Exception as exc:  # noqa: BLE001 - reported in the window, never raised in a thread
            if not self.cancel.is_set():
                self.failed.emit(self.jid, message_of(exc))
        finally:
            if gen is not None:
                try:
                    gen.close()  # runs the generator's finally blocks here, in the worker
                except Exception as exc:  # noqa: BLE001
                    self.failed.emit(self.jid, message_of(exc))


_NOTHING = object()


def wait_or_keep(thread: QThread | None, timeout_ms: int) -> bool:
    """Wait (bounded) for ``thread`` to return; one that does not is unparented and kept
    referenced until it finishes, because Qt aborts the process when a running QThread is
    destroyed. Returns whether it returned in time (True for no thread)."""
    if thread is None or thread.wait(timeout_ms):
        return True
    thread.setParent(None)
    _ORPHANS.add(thread)
    thread.finished.connect(lambda t=thread: _ORPHANS.discard(t))
    return False


class _Job:
    """One job: what to run, and what it was started against (its id, its session's version)."""

    def __init__(self, jid: int, name: str, factory: Factory, throttle_ms: int, session, requeue: bool):
        self.id, self.name, self.factory, self.throttle_ms = jid, name, factory, throttle_ms
        self.session, self.requeue = session, requeue
        self.version = -1  #: the session's version when the worker started it
        self.cancel = threading.Event()
        self.by_user = False  #: cancelled through cancel() (not superseded, not stale)
        self.superseded = False  #: a newer job replaced it: nothing more of it is delivered


class JobRunner(QObject):
    """One background job at a time; ``start`` refuses (returns False) while one runs, unless
    ``replace`` (latest wins). Jobs started with ``session=`` follow the staleness rule."""

    started = Signal(str)  #: job name
    progress = Signal(str, object)  #: job name, yielded item
    finished = Signal(str, object)  #: job name, the generator's return value
    failed = Signal(str, str)  #: job name, one-line message
    cancelled = Signal(str)  #: job name (cancelled through cancel())
    dropped = Signal(str)  #: job name: a keyed job went stale and its result was dropped
    idle = Signal()  #: the worker has returned and nothing waits to start

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: _JobThread | None = None
        self._job: _Job | None = None
        self._pending: _Job | None = None
        self._watched = None  # the session whose changes cancel keyed jobs
        self._id = 0
        self._closed = False

    @property
    def busy(self) -> bool:
        """True while a job's worker thread has not returned or a job waits to start."""
        return self._thread is not None or self._pending is not None

    @property
    def name(self) -> str:
        """Name of the running job ('' when idle)."""
        return self._job.name if self._thread is not None and self._job is not None else ""

    @property
    def running(self) -> threading.Event | None:
        """The running job's cancel event (None when idle): tests check it was set."""
        return self._job.cancel if self._thread is not None and self._job is not None else None

    def start(self, name: str, factory: Factory, throttle_ms: int = 0, *, replace: bool = False, session=None, requeue: bool = False) -> bool:
        """Run ``factory(cancel_event)`` (which returns a generator) in the worker.

        ``throttle_ms`` > 0 coalesces progress to at most one item per interval (training steps);
        0 delivers every item (sweep points). ``replace`` cancels a running job and starts this
        one when its worker returns (latest wins). ``session`` keys the job by the session's
        version (see :meth:`stale`); ``requeue`` runs a stale keyed job again. Returns False when
        a job is already running (and not ``replace``) or the runner is shut down."""
        if self._closed or (self._thread is not None and not replace):
            return False
        self._id += 1
        job = _Job(self._id, name, factory, throttle_ms, session, requeue)
        if session is not None and session is not self._watched:
            self.watch(session)
        if self._thread is not None:
            self._job.superseded = True  # not the user's cancel: no `cancelled`
            self._job.cancel.set()
            self._pending = job
            return True
        self._launch(job)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next check (``cancelled`` follows when it has) and
        drop a job waiting to start."""
        self._pending = None
        job = self._job
        if job is not None and self._thread is not None and not job.cancel.is_set():
            job.by_user = True
            job.cancel.set()

    def stale(self, job: _Job | None = None) -> bool:
        """The staleness rule, in this one place: a job keyed by a session is stale when it was
        cancelled (an edit, new data, a newer job, the user) or the session's version is no
        longer the one it started at; its items, result and failure are then dropped. A job
        without a session is never stale (a training run changes the model itself)."""
        job = self._job if job is None else job
        if job is None or job.session is None:
            return False
        return job.cancel.is_set() or job.session.version != job.version

    def watch(self, session) -> None:
        """Cancel keyed jobs on ``session``'s every change (the runner listens to one session;
        connect it before other listeners so a stale evaluation stops before they react)."""
        self._unwatch()
        self._watched = session
        if session is not None:
            session.changed.connect(self._on_session_changed)

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the worker returns (tests and shutdown only; never in a slot)."""
        t = self._thread
        return True if t is None else t.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait (bounded); call once when the window closes."""
        self._closed = True
        self.cancel()
        self._unwatch()
        self._pending = None
        ok = wait_or_keep(self._thread, timeout_ms)  # never let Qt destroy a running thread
        self._thread = None
        return ok

    # ------------------------------------------------------------ internals
    def _unwatch(self) -> None:
        if self._watched is not None:
            try:
                self._watched.changed.disconnect(self._on_session_changed)
            except (ValueError, RuntimeError):
                pass
            self._watched = None

    def _on_session_changed(self, change) -> None:
        # may run in any thread (the one that edited): setting an Event is all it does
        job = self._job
        if job is not None and job.session is not None and job.session is self._watched:
            job.cancel.set()

    def _launch(self, job: _Job) -> None:
        self._pending = None
        if job.session is not None:
            job.version = job.session.version
        self._job = job
        t = _JobThread(job.id, job.factory, job.cancel, job.throttle_ms / 1000.0)
        t.item.connect(self._on_item)
        t.done.connect(self._on_done)
        t.failed.connect(self._on_failed)
        t.finished.connect(self._on_thread_done)
        self._thread = t
        track(t)
        self.started.emit(job.name)
        t.start(QThread.Priority.LowPriority)

    def _mine(self, jid: int) -> _Job | None:
        job = self._job
        return job if job is not None and jid == job.id and not job.superseded and not self._closed else None

    def _on_item(self, jid: int, obj) -> None:
        job = self._mine(jid)
        if job is not None and not job.cancel.is_set() and not self.stale(job):
            self.progress.emit(job.name, obj)

    def _on_done(self, jid: int, value) -> None:
        job = self._mine(jid)
        if job is not None and not self.stale(job):
            self.finished.emit(job.name, value)

    def _on_failed(self, jid: int, msg: str) -> None:
        job = self._mine(jid)
        if job is not None and not self.stale(job):
            self.failed.emit(job.name, msg)

    def _on_thread_done(self) -> None:
        t, self._thread = self._thread, None
        job = self._job
        if t is not None:
            t.deleteLater()
        if self._closed or job is None:
            return
        if job.by_user:
            self.cancelled.emit(job.name)
        elif self._pending is None and self.stale(job):
            if job.requeue:  # the same work again, keyed to the version the session is at now
                self._id += 1
                self._pending = _Job(self._id, job.name, job.factory, job.throttle_ms, job.session, True)
            self.dropped.emit(job.name)
        if self._pending is not None and self._thread is None and not self._closed:
            self._launch(self._pending)
        else:
            self.idle.emit()
