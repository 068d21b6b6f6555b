"""One writer at a time, through the real window: while a fine-tune runs in the worker the
editing controls are off (the reason in the status bar), the engine refuses a direct call, and
after the run everything is back and edits work; the saved session replays to the live state."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtWidgets import QApplication

from pruneviz.core import persist
from pruneviz.core.errors import SessionBusy


def _bits(s):
    out = {f"p:{n}": p.detach().clone() for n, p in s.model.named_parameters()}
    out |= {f"o:{n}": t.clone() for n, t in s.masks.orig.items()}
    return {k: v.view(torch.int32) for k, v in out.items()}


def _masks(s):
    return {layer.name: s.mask(layer.name) for layer in s.layers}


def _zeros_stay_zero(s):
    for layer in s.layers:
        assert bool((s.weight(layer.name)[~s.mask(layer.name)] == 0).all()), layer.name


def _replays_to_live(s, tmp_path):
    path = tmp_path / "replay.pvz"
    persist.save_session(s, path)
    back = persist.load_session(path, device="cpu")
    assert back.history.labels == s.history.labels and back.history.index == s.history.index
    for k, m in _masks(s).items():
        assert torch.equal(_masks(back)[k], m), k
    a, b = _bits(s), _bits(back)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _gated(window):
    a, e = window.actions, window.editing
    return [a["undo"], a["open"], a["open_data"], a["open_session"], a["prune_dialog"], a["step"], a["run"], a["block"],
            a["finetune"], e.prune_sel, e.restore_sel, e.threshold, e.apply_thr, e.block, window.history,
            window.decide.alloc_apply, window.decide.plans.switch]


def _start_long_finetune(qtbot, window):
    dialog = window.training.open_dialog("finetune")
    dialog.epochs.setValue(500)
    dialog.run_button.click()
    store = window.training.store
    qtbot.waitUntil(lambda: window.edit_pause.paused and store.live is not None and len(store.live.sp_x) > 3, timeout=60_000)
    return dialog


def _finish(qtbot, window, dialog):
    dialog.cancel_button.click()
    ui = window.training
    qtbot.waitUntil(lambda: not ui.jobs.busy and ui._paused is None and not window.edit_pause.paused, timeout=120_000)
    dialog.close()


def _settle(qtbot, window):
    qtbot.waitUntil(lambda: window.acc.current_step == window.session.history.index and not window.runner.busy, timeout=30_000)


@pytest.mark.slow
def test_mid_run_neuron_prune_is_disabled_refused_and_zeros_stay_zero(qtbot, window, tmp_path):
    s = window.session
    s.prune(0.5)
    _settle(qtbot, window)
    masks = _masks(s)
    dialog = _start_long_finetune(qtbot, window)
    assert all(not w.isEnabled() for w in _gated(window))
    assert window.statusBar().currentMessage() == "Fine-tuning: edits are paused until it finishes or is cancelled"
    window.editing.select_neurons([1, 2, 3])
    window.editing.prune_selected()  # reaches the engine anyway (the Delete key's path): refused, said in the status bar
    assert "fine-tune is running" in window.statusBar().currentMessage()
    with pytest.raises(SessionBusy, match="fine-tune is running; wait for it or cancel it first"):
        s.prune_neurons("0", [1, 2, 3])
    _finish(qtbot, window, dialog)
    assert all(w.isEnabled() for w in _gated(window) if w is not window.decide.alloc_apply)
    assert not window.decide.alloc_apply.isEnabled()  # no plan to apply: its owner's state comes back, not "on"
    assert window.statusBar().currentMessage() == ""
    assert all(torch.equal(_masks(s)[k], masks[k]) for k in masks)  # the mid-run edit never happened
    _zeros_stay_zero(s)
    window.editing.select_neurons([1, 2, 3])
    window.editing.prune_selected()  # now it works
    assert s.history.labels[-1] == "prune neurons 1, 2, 3 of 0" and not bool(s.neuron_mask("0")[[1, 2, 3]].any())
    _zeros_stay_zero(s)
    _replays_to_live(s, tmp_path)


@pytest.mark.slow
def test_mid_run_undo_is_refused_and_restored_weights_come_back_bit_for_bit(qtbot, window, tmp_path):
    s = window.session
    original = {layer.name: s.weight(layer.name) for layer in s.layers}
    s.prune_neurons("0", list(range(10)))
    _settle(qtbot, window)
    dialog = _start_long_finetune(qtbot, window)
    labels = list(s.history.labels)
    window.actions["undo"].trigger()  # disabled: nothing happens
    window.history.itemClicked.emit(window.history.item(0))  # a click that got through: refused
    with pytest.raises(SessionBusy):
        s.undo()
    assert s.history.labels == labels and s.history.index == 1
    _finish(qtbot, window, dialog)
    assert s.history.labels[-1].startswith("fine-tune 500 epochs") and s.history.index == 2
    _zeros_stay_zero(s)
    _replays_to_live(s, tmp_path)
    window.actions["undo"].trigger()  # the fine-tune
    window.actions["undo"].trigger()  # the prune: every weight back as loaded
    assert s.history.index == 0
    for name, w in original.items():
        assert torch.equal(s.weight(name).view(torch.int32), w.view(torch.int32)), name
    _replays_to_live(s, tmp_path)


def test_pause_follows_the_sessions_job_and_owners_state(qtbot, window):
    s = window.session
    pause = window.edit_pause
    assert not pause.paused and window.actions["undo"].isEnabled() is False  # nothing to undo yet
    with s.running("lesson step", "Running a lesson step"):
        pass
    QApplication.processEvents()  # the queued notices arrive: the job is over, so nothing pauses
    assert not pause.paused and window.editing.apply_thr.isEnabled()
    job = s.running("lesson step", "Running a lesson step")
    job.__enter__()
    try:
        qtbot.waitUntil(lambda: pause.paused, timeout=10_000)
        assert window.statusBar().currentMessage().startswith("Running a lesson step: edits are paused")
        window.editing.apply_thr.setEnabled(True)  # an owner enabling it meanwhile: still off
        assert not window.editing.apply_thr.isEnabled()
        s.prune(0.3)  # the job's own edit (this thread is inside it)
        assert window.actions["undo"].isEnabled() is False  # under the paused group, even though can_undo
    finally:
        job.__exit__(None, None, None)
    qtbot.waitUntil(lambda: not pause.paused, timeout=10_000)
    assert window.actions["undo"].isEnabled() and window.editing.apply_thr.isEnabled()
