"""The main window driven like a user: select, prune, undo, threshold, step loop, cancel, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from pruneviz.core.data import EvalData
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from pruneviz.qt.controls import RunArgs
from pruneviz.qt.layer_tree import COL_SPARSITY
from tests.qt.conftest import demo_opener


def _wait_eval(qtbot, w, step=None):
    """Wait until the accuracy panel shows a result for history step ``step`` (default: current)."""
    step = w.session.history.index if step is None else step
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.current_step == step and not w.runner.busy, timeout=30_000)


def test_layer_heatmap_matches_view_shape(window):
    w = window
    for layer in w.session.layers:
        w.tree.select(layer.name)
        assert w.layer == layer.name
        assert w.heatmap.shape == layer.view_shape
        assert w.heatmap.image_shape == layer.view_shape  # small layers are not pooled
        assert len(w.strip.scores) == layer.view_shape[0]


def test_prune_neuron_updates_browser_accuracy_and_undo_redo(window, qtbot):
    w = window
    s = w.session
    name = w.layer
    item = w.tree.items[name]
    before_text = item.text(COL_SPARSITY)
    base_acc = w.acc.current.accuracy
    # click a heatmap row (as the view reports it), then ctrl-click a second one
    w.heatmap.rowsClicked.emit(3, Qt.KeyboardModifier.NoModifier)
    w.heatmap.rowsClicked.emit(7, Qt.KeyboardModifier.ControlModifier)
    assert w.selected == {3, 7}
    w.editing.prune_sel.click()
    assert not s.neuron_mask(name)[[3, 7]].any()
    assert s.sparsity(name) > 0
    assert item.text(COL_SPARSITY) != before_text
    assert w.actions["undo"].text() == f"Undo prune neurons 3, 7 of {name}"
    _wait_eval(qtbot, w)
    assert w.acc.points[1][0] == pytest.approx(s.sparsity())
    pruned_text = item.text(COL_SPARSITY)
    # undo restores masks, browser and the accuracy read-out
    w.actions["undo"].trigger()
    assert s.sparsity(name) == 0 and item.text(COL_SPARSITY) == before_text
    _wait_eval(qtbot, w, 0)
    assert w.acc.current.accuracy == pytest.approx(base_acc)
    assert w.history.currentRow() == 0
    w.actions["redo"].trigger()
    assert item.text(COL_SPARSITY) == pruned_text
    assert not s.neuron_mask(name)[[3, 7]].any()
    _wait_eval(qtbot, w, 1)
    # history list: clicking the first entry goes back to the unpruned model
    w.history.itemClicked.emit(w.history.item(0))
    assert s.history.index == 0 and s.sparsity() == 0


def test_threshold_previews_then_applies(window, qtbot):
    w = window
    s = w.session
    name = w.layer
    mask_before = s.mask(name).clone()
    assert w.heatmap.preview.image is None or not w.heatmap.preview.image.any()
    w.editing.threshold.setValue(float(w.editing.threshold.maximum()) * 0.3)
    img = w.heatmap.preview.image
    assert img is not None and img.any()
    assert torch.equal(s.mask(name), mask_before)  # a preview does not edit
    assert s.history.index == 0
    w.editing.apply_thr.click()
    assert s.history.index == 1
    assert not torch.equal(s.mask(name), mask_before)
    assert w.heatmap.pruned.image.any()
    cells, _ = w.heatmap.preview_source
    assert cells.shape == w.heatmap.shape and not cells.any()  # applied: nothing more below it


def test_block_drag_prunes_rect(window):
    w = window
    s = w.session
    w.heatmap.rectDragged.emit(0, 4, 0, 8, False)
    assert int((~s.mask(w.layer)).sum()) == 32
    w.heatmap.rectDragged.emit(0, 4, 0, 8, True)
    assert s.sparsity(w.layer) == 0


def test_run_until_stops_on_sparsity_and_each_removal_is_a_step(window, qtbot):
    w = window
    s = w.session
    target = 0.01
    with qtbot.waitSignal(w.loop.stopped, timeout=30_000) as blocker:
        w.loop.start(RunArgs("magnitude", None, target, 1000, None))
    assert "sparsity" in blocker.args[0]
    assert s.sparsity() >= target
    n = s.history.index
    assert n >= 2 and all(label.startswith("step: prune neuron") for label in s.history.labels)
    s.undo()
    assert s.sparsity() < target


def test_run_until_accuracy_bound_undoes_the_crossing_step(window, qtbot):
    w = window
    s = w.session
    bound = w.acc.baseline.accuracy - 0.003  # about one sample of 360
    with qtbot.waitSignal(w.loop.stopped, timeout=60_000) as blocker:
        w.loop.start(RunArgs("magnitude", bound, None, 60, None))
    assert "fell below" in blocker.args[0] and "undone" in blocker.args[0]
    kept = s.history.index
    assert kept == w.loop.steps - 1  # every step but the crossing one is kept
    assert s.history.can_redo and s.history.labels[kept].startswith("step: prune neuron")
    _wait_eval(qtbot, w)
    assert w.acc.current.accuracy >= bound  # the model as left: above the bound
    assert s.evaluate().accuracy >= bound
    s.redo()  # the undone step really crossed it
    assert s.evaluate().accuracy < bound


class _Slow(nn.Module):
    """Makes each evaluation batch take ``delay`` seconds (GIL released, like a GPU kernel wait)."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(self.delay)
        return x


def _slow_session(delay=0.02, n=4096, heavy=False, slow=None):
    torch.manual_seed(0)
    width = 1536 if heavy else 32
    slow = _Slow(delay) if slow is None else slow
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), slow, nn.ReLU(), nn.Linear(width, 10)).eval()
    x = torch.randn(n, 64)
    y = torch.randint(0, 10, (n,))
    loaded = LoadedModel(model=model, spec="slow", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    s = Session(loaded, EvalData(x=x, y=y, spec="synthetic"), device="cpu")
    s.batch_size = 64
    s.evaluation.baseline_result = s.evaluate(incremental=False)  # the test is about the live evaluation, not the baseline
    s.cache.clear()
    return s


def test_cancel_running_evaluation_keeps_ui_usable(qtbot):
    from pruneviz.qt.main_window import MainWindow

    w = MainWindow(_slow_session(delay=0.05), open_session=demo_opener)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.status.progress.value() > 0 and w.status.cancel.isEnabled(), timeout=10_000)
    w.status.cancel.click()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=5_000)
    assert w.acc.current is None  # the cancelled run reported nothing
    assert "cancelled" in w.acc.estimate.text()
    assert w.status.progress.value() < 100
    # the UI still works: select and prune, and a new evaluation starts
    w.heatmap.rowsClicked.emit(1, Qt.KeyboardModifier.NoModifier)
    w.editing.prune_sel.click()
    assert w.session.history.index == 1
    assert w.runner.busy
    assert w.runner.shutdown(5000)


def test_newer_request_wins(qtbot):
    from pruneviz.qt.main_window import MainWindow

    w = MainWindow(_slow_session(delay=0.01, n=1024), open_session=demo_opener)
    qtbot.addWidget(w)
    results = []
    w.runner.finished.connect(lambda req, r: results.append(req.step))
    for i in range(3):
        w.session.prune_neurons(w.layer, [i])
    qtbot.waitUntil(lambda: not w.runner.busy and bool(results), timeout=20_000)
    assert results == [3]
    w.runner.shutdown(5000)


class _Gate(nn.Module):
    """Holds an evaluation batch until the GUI thread has run a timer tick, and records threads."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[int] = set()

    def __deepcopy__(self, memo):  # copies (the loaded-model copy for MACs) pass through
        return nn.Identity()

    def forward(self, x):
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.release.wait(30)
        return x


def test_gui_thread_runs_while_an_evaluation_is_mid_batch(qtbot):
    """The evaluation runs off the GUI thread: while a batch is held inside the model, the GUI
    thread still runs its timers (the GUI's longest stall is a benchmark figure,
    ``ui_max_stall_ms_during_eval``, not a timed test)."""
    from pruneviz.qt.main_window import MainWindow

    gate = _Gate()
    gate.release.set()  # the first runs (baseline, cache) pass freely
    s = _slow_session(slow=gate)
    s.build_coupling()  # the first neuron edit would trace the model on this thread: not an evaluation
    w = MainWindow(s, open_session=demo_opener)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    gate.release.clear()
    gate.entered.clear()
    gate.threads.clear()
    ticks = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(gate.entered.is_set()))
    timer.start()
    w.session.prune_neurons(w.layer, [0])  # a new evaluation
    qtbot.waitUntil(lambda: gate.entered.is_set() and sum(ticks) >= 3, timeout=30_000)  # ticks while the worker is held
    assert w.runner.busy  # the GUI thread ticked while the evaluation was held mid-batch
    gate.release.set()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    timer.stop()
    assert gate.threads and threading.get_ident() not in gate.threads
    assert w.acc.current is not None
    w.runner.shutdown(5000)


def test_refused_file_shows_error_and_keeps_session(window, tmp_path, monkeypatch):
    w = window
    s = w.session
    s.prune_neurons(w.layer, [0])
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: shown.append(text))
    monkeypatch.setattr(w.files, "ask_arch", lambda msg: None)
    bad = tmp_path / "random.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    assert w.files.open_path(str(bad)) is False
    assert w.session is s and s.history.index == 1 and not s.neuron_mask(w.layer)[0]
    assert shown and "random.pt" in shown[0]


def test_engine_error_becomes_dialog(window, monkeypatch):
    w = window
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: shown.append(text))
    w.editing.select_neurons([10_000])  # out of range: the engine refuses
    w.editing.prune_selected()
    assert shown and w.session.history.index == 0
