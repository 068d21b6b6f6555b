"""The evaluation worker under stress: closing mid-run, failures inside it, edits during a run."""

from __future__ import annotations

import threading

import torch
import torch.nn as nn
from PySide6.QtCore import QThread

from pruneviz.core.data import EvalData
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.qt.conftest import demo_opener
from tests.qt.test_main_window import _Slow, _slow_session, _wait_eval


def _threads_left(w):
    qthreads = [t for t in w.runner.findChildren(QThread) if t.isRunning()]
    py = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    return qthreads, py


def test_close_during_evaluation_exits_cleanly(qtbot):
    from pruneviz.qt.main_window import MainWindow

    before = set(threading.enumerate())
    s = _slow_session(delay=0.05)
    slow = s.model[3]
    slow.calls = 0  # the baseline pass of _slow_session
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.status.progress.value() > 0 and w.runner.busy, timeout=10_000)
    w.close()
    assert slow.calls < len(s.eval_tensors()[1]) // s.batch_size  # stopped at the next batch, not after the whole pass
    assert w.runner.jobs.running is None  # the worker returned (the window joined it)
    qthreads, _ = _threads_left(w)
    assert not qthreads
    assert set(threading.enumerate()) - before == set()


class _CountedSlow(_Slow):
    batches = 0  # a class attribute: the worker's deep copy of the model counts here too

    def forward(self, x):
        type(self).batches += 1
        return super().forward(x)


def test_close_during_baseline_stops_it(qtbot):
    """The first run computes the baseline: it is cancellable too (Session.baseline_iter)."""
    from pruneviz.qt.main_window import MainWindow

    s = _slow_session(delay=0.05, slow=_CountedSlow(0.05))
    s.evaluation.baseline_result = None  # the baseline is computed by the first run, in the worker
    start = _CountedSlow.batches
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.runner.busy and w.runner.jobs.running is not None, timeout=10_000)
    qtbot.waitUntil(lambda: _CountedSlow.batches >= start + 3, timeout=10_000)  # a few baseline batches ran
    w.close()
    assert w.runner.jobs.running is None and s.evaluation.baseline_result is None  # an incomplete baseline is not kept
    assert not _threads_left(w)[0]


class _Boom(nn.Module):
    armed = False  # a class attribute: the baseline's deep copy sees the same switch

    def forward(self, x):
        if _Boom.armed:
            raise RuntimeError("boom in forward")
        return x


def _boom_session():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), _Boom(), nn.Linear(24, 4)).eval()
    x = torch.randn(256, 16)
    y = torch.randint(0, 4, (256,))
    loaded = LoadedModel(model=model, spec="boom", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    s = Session(loaded, EvalData(x=x, y=y, spec="synthetic"), device="cpu")
    s.build_coupling()  # traced now, unarmed: the test is about an exception in the evaluation worker
    return s


def test_worker_exception_is_shown_and_app_keeps_working(qtbot):
    from pruneviz.qt.main_window import MainWindow

    _Boom.armed = False
    w = MainWindow(_boom_session(), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    _wait_eval(qtbot, w, 0)
    s = w.session
    try:
        _Boom.armed = True
        with qtbot.waitSignal(w.errorShown, timeout=10_000) as shown:
            w.editing.select_neurons([3])
            w.editing.prune_selected()
        assert "RuntimeError: boom in forward" in shown.args[0]
        assert "evaluation failed" in w.acc.estimate.text()
        assert "boom in forward" in w.statusBar().currentMessage()
        qtbot.waitUntil(lambda: not w.runner.busy, timeout=5_000)
        assert w.acc.current_step == 0  # no result was reported for the failed step
    finally:
        _Boom.armed = False
    w.editing.select_neurons([5])
    w.editing.prune_selected()
    _wait_eval(qtbot, w, 2)
    assert w.acc.points[2][0] == s.sparsity()
    assert w.runner.shutdown(5000)


def test_edit_cancels_running_evaluation_and_discards_it(qtbot):
    from pruneviz.qt.main_window import MainWindow

    w = MainWindow(_slow_session(delay=0.03, n=2048), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    results = []
    w.runner.finished.connect(lambda req, r: results.append(req))
    qtbot.waitUntil(lambda: w.runner.jobs.running is not None, timeout=5_000)
    running = w.runner.jobs.running
    w.session.prune_neurons(w.layer, [0])  # straight through the session, as a notebook would
    assert running.is_set()  # cancelled synchronously, before the event loop runs again
    qtbot.waitUntil(lambda: bool(results) and not w.runner.busy, timeout=30_000)
    assert [r.step for r in results] == [1]
    assert results[0].version == w.session.version
    assert w.runner.shutdown(5000)
