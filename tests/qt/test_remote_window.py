"""The real window evaluating on a Ray replica: with ``--eval-on local`` an edit's evaluation runs
on the replica and its progress (the estimate with its interval) and exact figure appear in the
same views as a local one; with the whole cluster killed mid-evaluation (``--eval-on ray://`` to
a Ray started in a separate process) the window finishes the evaluation here and says so in the
status bar, and the next edit is evaluated here without a second message."""

from __future__ import annotations

import argparse
import os

import pytest
from PySide6.QtCore import Qt

ray = pytest.importorskip("ray")

from pruneviz import cli_remote  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402
from tests.qt.conftest import demo_opener  # noqa: E402
from tests.ray_head import RayHead  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray instance starts in each test


@pytest.fixture
def no_ray():
    """Each test connects Ray itself (as the app does) and leaves it shut down (``local``'s private
    head stopped, as the app's exit does)."""
    from pruneviz.core import ray_local

    if ray.is_initialized():
        ray.shutdown()
    yield
    ray_local.shutdown()
    ray.shutdown()


def _window(qtbot, eval_on: str, data: str = "demo:digits", batch_size: int = 30):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    s = Session.open("demo:cnn", data=data, device="cpu")
    cli_remote.attach(argparse.Namespace(eval_on=eval_on, remote_data=None, remote_model=None), s)  # what `gui --eval-on` does
    s.batch_size = batch_size  # several batches: progress before the exact figure
    make_app()
    w = MainWindow(s, open_session=demo_opener, restore_layout=False, autosave=False, save_layout=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None and not w.runner.busy, timeout=120_000)
    return w


def _prune_neuron(w, layer: str, row: int) -> None:
    w.tree.select(layer)
    w.heatmap.rowsClicked.emit(row, Qt.KeyboardModifier.NoModifier)
    w.editing.prune_sel.click()


def _wait_eval(qtbot, w, timeout: int = 120_000) -> None:
    step = w.session.history.index
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.current_step == step and not w.runner.busy, timeout=timeout)


def test_eval_on_local_streams_the_replicas_progress_into_the_same_views(qtbot, no_ray):
    w = _window(qtbot, "local")
    s = w.session
    local = s.evaluation.local
    try:
        assert "Ray replica" in w.status.device.text() and "Ray replica" in w.acc.estimate.text()
        shown = []  # (progress, the estimate the panel shows as it arrives)
        w.runner.progress.connect(lambda req, p: shown.append((p, w.acc.estimate.text())))
        _prune_neuron(w, "8", 3)
        _wait_eval(qtbot, w)
        assert shown and shown[0][0].done < shown[0][0].total  # an estimate before the exact figure
        assert all(text.startswith("running: ") and "95% CI" in text for _p, text in shown)
        exact = local.evaluate()  # the same masks evaluated here
        assert (w.acc.current.accuracy, w.acc.current.correct) == (exact.accuracy, exact.correct)
        assert w.acc.current.device == "cpu (Ray replica)" and "Ray replica" in w.status.device.text()
        assert w.acc.points[s.history.index][1] == exact.accuracy  # the curve's point is the replica's figure
        assert s.evaluation.remote.down is None and not s.notices
    finally:
        w.close()
        w.runner.shutdown(5000)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="ends the cluster's processes by their session (Linux /proc)")
def test_cluster_killed_mid_evaluation_the_window_evaluates_here_and_says_so(qtbot, no_ray, monkeypatch):
    monkeypatch.setenv("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "2")  # Ray's client gives up after 2 s (default 30)
    head = RayHead().start()
    w = None
    try:
        # 1,437 samples one at a time: the replica is still evaluating when the cluster goes
        w = _window(qtbot, head.address, data="demo:digits-train", batch_size=1)
        s = w.session
        local = s.evaluation.local
        assert "Ray replica" in w.status.device.text()
        killed = []

        def kill_on_first_estimate(req, p):
            if not killed:
                killed.append(p)
                assert head.kill()  # GCS, raylet, client server, the replica: the machine goes away

        w.runner.progress.connect(kill_on_first_estimate)
        _prune_neuron(w, "8", 5)
        _wait_eval(qtbot, w)
        assert killed and killed[0].done < killed[0].total  # killed mid-evaluation
        qtbot.waitUntil(lambda: "is gone" in w.statusBar().currentMessage(), timeout=10_000)
        assert "evaluating here" in w.statusBar().currentMessage() and s.evaluation.remote.down
        exact = local.evaluate()
        assert (w.acc.current.accuracy, w.acc.current.correct) == (exact.accuracy, exact.correct)
        assert "Ray replica" not in w.acc.current.device and "Ray replica" not in w.status.device.text()
        # the window stays usable: the next edit and its undo are evaluated here, with no new message
        s.batch_size = 256
        _prune_neuron(w, "8", 6)
        _wait_eval(qtbot, w)
        w.actions["undo"].trigger()
        _wait_eval(qtbot, w)
        assert w.acc.current.accuracy == local.evaluate().accuracy and not s.neuron_mask("8")[5] and s.neuron_mask("8")[6]
        assert len([n for n in s.notices if "is gone" in n]) == 1
    finally:
        if w is not None:
            w.close()
            w.runner.shutdown(5000)
        ray.shutdown()
        assert head.stop(), head.processes()
