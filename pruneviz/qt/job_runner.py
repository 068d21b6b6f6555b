"""Run long core work (training, sweeps, analyses, slow scores) in a worker thread.

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
#: every worker thread started (job and evaluation workers), for :func:`join_all` at exit
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


class JobRunner(QObject):
    """One background job at a time; ``start`` refuses (returns False) while one runs."""

    started = Signal(str)  #: job name
    progress = Signal(str, object)  #: job name, yielded item
    finished = Signal(str, object)  #: job name, the generator's return value
    failed = Signal(str, str)  #: job name, one-line message
    cancelled = Signal(str)  #: job name
    idle = Signal()  #: the worker has returned (after finished, failed or cancelled)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: _JobThread | None = None
        self._cancel: threading.Event | None = None
        self._name = ""
        self._id = 0
        self._closed = False

    @property
    def busy(self) -> bool:
        """True while a job's worker thread has not returned."""
        return self._thread is not None

    @property
    def name(self) -> str:
        """Name of the running job ('' when idle)."""
        return self._name if self._thread is not None else ""

    def start(self, name: str, factory: Factory, throttle_ms: int = 0) -> bool:
        """Run ``factory(cancel_event)`` (which returns a generator) in the worker.

        ``throttle_ms`` > 0 coalesces progress to at most one item per interval (training steps);
        0 delivers every item (sweep points). Returns False when a job is already running."""
        if self._thread is not None or self._closed:
            return False
        self._id += 1
        self._name = name
        self._cancel = threading.Event()
        t = _JobThread(self._id, factory, self._cancel, throttle_ms / 1000.0)
        t.item.connect(self._on_item)
        t.done.connect(self._on_done)
        t.failed.connect(self._on_failed)
        t.finished.connect(self._on_thread_done)
        self._thread = t
        track(t)
        self.started.emit(name)
        t.start(QThread.Priority.LowPriority)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next check; ``cancelled`` follows when it has."""
        if self._cancel is not None and not self._cancel.is_set() and self._thread is not None:
            self._cancel.set()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the worker returns (tests and shutdown only; never in a slot)."""
        t = self._thread
        return True if t is None else t.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait (bounded); call once when the window closes."""
        self._closed = True
        self.cancel()
        return wait_or_keep(self._thread, timeout_ms)

    # ------------------------------------------------------------ internals
    def _mine(self, jid: int) -> bool:
        return jid == self._id and not self._closed

    def _on_item(self, jid: int, obj) -> None:
        if self._mine(jid) and not (self._cancel is not None and self._cancel.is_set()):
            self.progress.emit(self._name, obj)

    def _on_done(self, jid: int, value) -> None:
        if self._mine(jid):
            self.finished.emit(self._name, value)

    def _on_failed(self, jid: int, msg: str) -> None:
        if self._mine(jid):
            self.failed.emit(self._name, msg)

    def _on_thread_done(self) -> None:
        t, self._thread = self._thread, None
        was_cancelled = self._cancel is not None and self._cancel.is_set()
        if t is not None:
            t.deleteLater()
        if was_cancelled and not self._closed:
            self.cancelled.emit(self._name)
        if not self._closed:
            self.idle.emit()
