"""JobRunner: a core generator runs in the worker, reports items and its return value, cancels."""

from __future__ import annotations

import threading

import pytest

from pruneviz.core.errors import PrunevizError
from pruneviz.qt.job_runner import JobRunner


@pytest.fixture
def jobs(qtbot):
    from pruneviz.qt.app import make_app

    make_app()
    runner = JobRunner()
    yield runner
    runner.shutdown(5000)


def test_items_and_return_value_arrive_in_order_on_the_gui_thread(qtbot, jobs):
    seen, threads = [], set()

    def work(cancel):
        threads.add(threading.get_ident())
        for i in range(5):
            yield i
        return "total 10"

    jobs.progress.connect(lambda name, item: seen.append((name, item)))
    with qtbot.waitSignal(jobs.finished, timeout=10_000) as blocker:
        assert jobs.start("count", work)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)
    assert blocker.args == ["count", "total 10"]
    assert seen == [("count", i) for i in range(5)]
    assert threading.get_ident() not in threads  # the generator ran in the worker


def test_one_job_at_a_time(qtbot, jobs):
    gate = threading.Event()

    def blocked(cancel):
        while not cancel.is_set() and not gate.is_set():
            gate.wait(0.01)
            yield None

    assert jobs.start("first", blocked)
    assert not jobs.start("second", blocked)
    assert jobs.name == "first"
    gate.set()
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)
    assert jobs.start("second", lambda cancel: iter([1]))


def test_cancel_closes_the_generator_in_the_worker(qtbot, jobs):
    closed_in = []
    ran = threading.Event()

    def forever(cancel):
        try:
            while True:
                ran.set()
                yield 1
        finally:
            closed_in.append(threading.get_ident())

    finished = []
    jobs.finished.connect(lambda *a: finished.append(a))
    assert jobs.start("forever", forever, throttle_ms=40)
    assert ran.wait(10)
    with qtbot.waitSignal(jobs.cancelled, timeout=10_000) as blocker:
        jobs.cancel()
    assert blocker.args == ["forever"]
    assert len(closed_in) == 1 and closed_in[0] != threading.get_ident()
    assert finished == []


def test_failure_is_one_line_and_the_runner_is_reusable(qtbot, jobs):
    def broken(cancel):
        yield 1
        raise PrunevizError("learning rate must be positive, got -1\nsecond line")

    with qtbot.waitSignal(jobs.failed, timeout=10_000) as blocker:
        jobs.start("train", broken)
    assert blocker.args == ["train", "learning rate must be positive, got -1"]
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)

    def bug(cancel):
        raise KeyError("x")
        yield  # pragma: no cover

    with qtbot.waitSignal(jobs.failed, timeout=10_000) as blocker:
        jobs.start("bug", bug)
    assert blocker.args == ["bug", "KeyError: 'x'"]


def test_throttle_coalesces_but_delivers_the_last_item(qtbot, jobs):
    seen = []
    jobs.progress.connect(lambda name, item: seen.append(item))
    with qtbot.waitSignal(jobs.finished, timeout=10_000):
        jobs.start("many", lambda cancel: iter(range(20_000)), throttle_ms=1000)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)
    assert seen[0] == 0 and seen[-1] == 19_999
    assert len(seen) < 100


def test_garbage_is_collected_on_the_gui_thread_never_in_a_worker(qtbot, jobs):
    """A worker that allocates a lot must not run Python's cyclic collector: collecting a cycle that
    holds a Qt object off the GUI thread deadlocks PySide6. The app collects on a GUI-thread timer."""
    import gc
    import weakref

    from PySide6.QtCore import QObject

    assert not gc.isenabled()  # make_app switched automatic collection off
    collected_in: list[int] = []

    def watch(phase, info):
        if phase == "start":
            collected_in.append(threading.get_ident())

    class Holder:
        pass

    h = Holder()
    h.me, h.obj = h, QObject()
    gone = weakref.ref(h)
    del h  # a cycle with a QObject in it: only the cyclic collector frees it
    gc.callbacks.append(watch)
    try:
        def churn(cancel):
            junk = [[i] for i in range(200_000)]  # far past the collector's threshold
            yield len(junk)

        with qtbot.waitSignal(jobs.finished, timeout=30_000):
            jobs.start("churn", churn)
        worker_runs = [t for t in collected_in if t != threading.get_ident()]
        assert worker_runs == []
        keep = [[i] for i in range(5_000)]  # live allocations: the timer's next check collects
        qtbot.waitUntil(lambda: gone() is None, timeout=10_000)  # the GUI-thread timer collected it
        del keep
    finally:
        gc.callbacks.remove(watch)
    assert collected_in and set(collected_in) == {threading.get_ident()}


def test_latest_wins_starts_the_newest_after_the_worker_returns(qtbot, jobs):
    """``replace``: a running job is cancelled (quietly: no ``cancelled``), only the newest of the
    waiting ones starts, and only once the old worker has returned (they never overlap)."""
    inside, overlap, cancelled, done = [], [], [], []
    gate = threading.Event()

    def job(tag):
        def run(cancel):
            overlap.append(bool(inside))
            inside.append(tag)
            try:
                while not cancel.is_set() and not (tag == "c" or gate.is_set()):
                    yield tag
                    gate.wait(0.005)
                return tag
            finally:
                inside.remove(tag)
        return run

    jobs.cancelled.connect(cancelled.append)
    jobs.finished.connect(lambda name, value: done.append(value))
    assert jobs.start("a", job("a"))
    qtbot.waitUntil(lambda: "a" in inside, timeout=10_000)
    assert jobs.start("b", job("b"), replace=True) and jobs.start("c", job("c"), replace=True)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)
    assert done == ["c"] and cancelled == [] and overlap == [False, False]


class _FakeSession:
    """What the staleness rule reads of a session: ``version`` and ``changed``."""

    def __init__(self):
        from psygnal import Signal as PSignal

        class _S:
            changed = PSignal(object)

        self._sig = _S()
        self.changed = self._sig.changed
        self.version = 0

    def edit(self):
        self.version += 1
        self.changed.emit("edit")


def test_a_keyed_job_is_stale_after_a_change_dropped_or_requeued(qtbot, jobs):
    """The one staleness rule: a job keyed by a session is cancelled by the session's change, in
    the thread that made it; its items and result are dropped; ``requeue`` runs it again on the
    new version, whose result arrives."""
    s = _FakeSession()
    seen, done, dropped = [], [], []
    ran = threading.Event()

    def read(cancel):
        version = s.version
        ran.set()
        while not cancel.is_set() and s.version == 0:
            yield version
            cancel.wait(0.005)
        return version

    jobs.progress.connect(lambda name, item: seen.append(item))
    jobs.finished.connect(lambda name, value: done.append(value))
    jobs.dropped.connect(dropped.append)
    assert jobs.start("scores", read, session=s)
    assert ran.wait(10)
    running = jobs.running
    s.edit()
    assert running.is_set() and jobs.stale()  # cancelled synchronously by the change
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)
    assert done == [] and dropped == ["scores"] and set(seen) <= {0}

    ran.clear()
    seen.clear()
    s.version = 0
    assert jobs.start("scores", read, session=s, requeue=True)
    assert ran.wait(10)
    s.edit()  # to version 1: the first run is dropped, the second reads version 1 and returns
    qtbot.waitUntil(lambda: bool(done) and not jobs.busy, timeout=10_000)
    assert done == [1] and dropped == ["scores", "scores"] and seen == []


def test_an_unkeyed_job_is_never_stale(qtbot, jobs):
    """A job without a session (a training run changes the model itself) keeps its result."""
    s = _FakeSession()
    jobs.watch(s)

    def edits(cancel):
        s.edit()
        yield s.version
        return "trained"

    with qtbot.waitSignal(jobs.finished, timeout=10_000) as blocker:
        jobs.start("fine-tune", edits)
    assert blocker.args == ["fine-tune", "trained"] and not jobs.stale()
