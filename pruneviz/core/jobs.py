"""One writer at a time: the job that holds a session while it runs.

A fine-tune, a schedule or a lesson step changes the model step after step from a generator,
often driven by a worker thread. A training run keeps the masks it read at its start and
re-applies them after every optimizer step, so an edit made in between would be overwritten
(pruned weights coming back non-zero, restored weights staying 0) and the journal would record
steps that never took effect. So a session has at most one running :class:`Job`, and while one
runs every verb that changes the model, the masks or the history is refused with
:class:`~pruneviz.core.errors.SessionBusy`, one line naming the job. Reading verbs (scores,
evaluation, masks, export) stay allowed.

The job's own code may edit: a thread *inside* the job (executing its generator between two
``next()`` calls, or inside a ``with session.running(...)`` block) passes the check, and a job
started there (a lesson step that fine-tunes) runs as part of the outer one. Code in the same
thread between two ``next()`` calls is outside: ``g = s.finetune(2); next(g); s.undo()`` is refused.

Every write takes :meth:`Writer.writing` for its whole extent: the session's lock plus the
check, so a job cannot begin in the middle of an edit, and an edit cannot begin while a job runs.

Example::

    gen = session.finetune(epochs=2)  # held from its first next() until it ends, is closed or collected
    with session.running("lesson step"):
        session.prune(0.5)            # the job's own edit
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Generator, Iterator

from .errors import SessionBusy


class Job:
    """A running job: its ``name`` (for messages) and what the app says it is doing (``doing``)."""

    def __init__(self, name: str, doing: str | None = None):
        self.name = name
        self.doing = doing or f"{name[:1].upper()}{name[1:]} running"
        self._local = threading.local()

    def here(self) -> bool:
        """True when the calling thread is executing the job's own code right now."""
        return getattr(self._local, "depth", 0) > 0

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Mark the calling thread as running the job's code for the block."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def refusal(self) -> SessionBusy:
        return SessionBusy(f"{self.name} is running; wait for it or cancel it first", self)

    def __repr__(self) -> str:
        return f"Job({self.name!r})"


class Writer:
    """A session's writer slot: the running job (or None) and the check every write makes.

    ``lock`` is the session's (re-entrant) lock; ``announce(job_or_None)`` is called, outside
    the lock, when a job begins and when it ends."""

    def __init__(self, lock, announce: Callable[[Job | None], None]):
        self._lock = lock
        self._announce = announce
        self.job: Job | None = None

    def check(self) -> None:
        """Raise :class:`SessionBusy` unless no job runs or the caller is inside it."""
        job = self.job
        if job is not None and not job.here():
            raise job.refusal()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The session's lock and the check, for the whole extent of one edit."""
        with self._lock:
            self.check()
            yield

    def begin(self, name: str, doing: str | None = None) -> Job | None:
        """Take the slot for a new job; None when the caller is already inside the running job
        (the new work is part of it). Raises :class:`SessionBusy` when another job holds it."""
        with self._lock:
            job = self.job
            if job is not None:
                if job.here():
                    return None
                raise job.refusal()
            self.job = job = Job(name, doing)
        self._announce(job)
        return job

    def end(self, job: Job) -> None:
        with self._lock:
            if self.job is not job:
                return
            self.job = None
        self._announce(None)

    @contextmanager
    def running(self, name: str, doing: str | None = None) -> Iterator[Job]:
        """Hold the session for the block (the calling thread is inside the job throughout)."""
        job = self.begin(name, doing)
        if job is None:  # nested in the running job
            yield self.job
            return
        try:
            with job.inside():
                yield job
        finally:
            self.end(job)

    def hold(self, name: str, gen: Generator, doing: str | None = None) -> Generator:
        """Wrap a generator so it holds the session from its first ``next()`` until it returns,
        raises, is closed or is garbage-collected; its own code runs inside the job. The
        return value (``StopIteration.value``) passes through; ``send`` and ``throw`` do not
        (an exception thrown in closes the wrapped generator first)."""
        job = self.begin(name, doing)
        if job is None:
            return (yield from gen)
        try:
            while True:
                with job.inside():
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                try:
                    yield item
                except BaseException:  # closed, collected, or an exception thrown in
                    with job.inside():
                        gen.close()  # its finally blocks run inside the job (a run records its step)
                    raise
        finally:
            self.end(job)
