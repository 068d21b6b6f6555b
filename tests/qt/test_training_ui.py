"""Fine-tune and Train… driven through the real window: actions, dialog, worker, curve, arrow, undo."""

from __future__ import annotations

import pytest
import torch

from pruneviz.qt.training_ui import TrainDialog


def _shots(tmp_path):
    """Where screenshots go: $PRUNEVIZ_SHOTS to look at them, else the test's folder."""
    import os
    from pathlib import Path

    return Path(os.environ.get("PRUNEVIZ_SHOTS") or tmp_path)


def _bits(s):
    return {n: p.detach().clone().view(torch.int32) for n, p in s.model.named_parameters()}


def _wait_idle(qtbot, window):
    ui = window.training
    qtbot.waitUntil(lambda: not ui.jobs.busy and ui._paused is None, timeout=120_000)


def _run(qtbot, window, dialog: TrainDialog):
    dialog.run_button.click()
    assert window.training.jobs.busy and not dialog.close_button.isEnabled()
    _wait_idle(qtbot, window)


def _prune_and_settle(qtbot, window, amount=0.9):
    window.session.prune(amount)
    qtbot.waitUntil(lambda: window.acc.current_step == window.session.history.index and not window.runner.busy, timeout=30_000)


def test_actions_and_tab_are_in_the_window(window):
    menu = window.actions.menu("prune").actions()
    assert window.actions["finetune"] in menu and window.actions["train"] in menu
    assert window.actions["finetune"] is window.training.act_finetune
    assert window.training.act_finetune in window.actions.toolbar.actions()
    tabs = [window.lower_tabs.tabText(i) for i in range(window.lower_tabs.count())]
    assert tabs[:1] == ["Histogram"] and "Training" in tabs


@pytest.mark.slow
def test_finetune_dialog_recovers_draws_arrow_and_curve_and_undoes(qtbot, window, tmp_path):
    _prune_and_settle(qtbot, window)
    pruned_acc = window.acc.current.accuracy
    before = _bits(window.session)
    window.training.act_finetune.trigger()
    dialog = window.training.dialog
    qtbot.waitExposed(dialog)
    dialog.epochs.setValue(2)
    _run(qtbot, window, dialog)
    s = window.session
    assert s.history.labels[-1] == "fine-tune 2 epochs (lr 5e-3)"
    assert window.history.item(window.history.count() - 1).text().endswith("fine-tune 2 epochs (lr 5e-3)")
    # the run is drawn: a finished curve in the shared store, an arrow from the pruned point up
    assert [r.label for r in window.training.store.runs] == ["fine-tune 2 epochs (lr 5e-3)"]
    (sp, a0, a1, *_), = window.acc.recovery_arrows
    assert sp == pytest.approx(s.sparsity()) and a0 == pytest.approx(pruned_acc) and a1 > a0 + 0.3
    assert "held-out accuracy" in dialog.message.text()
    qtbot.waitUntil(lambda: window.acc.current_step == s.history.index and not window.runner.busy, timeout=30_000)
    assert window.acc.current.accuracy == pytest.approx(a1)
    window.lower_tabs.setCurrentWidget(window.training.curve)
    dialog.grab().save(str(_shots(tmp_path) / "finetune_dialog.png"))
    window.grab().save(str(_shots(tmp_path) / "window_after_finetune.png"))
    dialog.close()
    window.actions["undo"].trigger()
    after = _bits(s)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_cancel_keeps_one_undo_step(qtbot, window):
    _prune_and_settle(qtbot, window, 0.5)
    before = _bits(window.session)
    dialog = window.training.open_dialog("finetune")
    dialog.epochs.setValue(500)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: window.training.store.live is not None and len(window.training.store.live.sp_x) > 3, timeout=60_000)
    dialog.cancel_button.click()
    _wait_idle(qtbot, window)
    s = window.session
    assert "stopped after" in s.history.labels[-1] and len(s.history.labels) == 2
    assert window.training.store.runs[-1].label.endswith("(cancelled)")
    assert dialog.close_button.isEnabled() and not dialog.cancel_button.isEnabled()
    s.undo()
    assert all(torch.equal(_bits(s)[k], before[k]) for k in before)
    dialog.close()


@pytest.mark.slow
def test_train_dialog_keeps_the_previous_curve_until_cleared(qtbot, window, tmp_path):
    dialog = window.training.open_dialog("train")
    dialog.epochs.setValue(2)
    dialog.target.setValue(0.8)
    dialog.schedule.setCurrentIndex(dialog.schedule.findData("during"))
    _run(qtbot, window, dialog)
    window.session.undo()
    dialog.schedule.setCurrentIndex(dialog.schedule.findData("before"))
    _run(qtbot, window, dialog)
    labels = [r.label for r in window.training.store.runs]
    assert len(labels) == 2 and labels[0].startswith("train during to 80%") and labels[1].startswith("train before to 80%")
    assert dialog.curve.labels == labels and window.training.curve.labels == labels  # both plots, labelled
    for run in window.training.store.runs:
        assert run.sp_y[-1] == pytest.approx(0.8, abs=0.005) and len(run.acc_y) == 3  # start + 2 epochs
    dialog.grab().save(str(_shots(tmp_path) / "train_dialog.png"))
    dialog.curve.clear_button.click()
    assert window.training.store.runs == [] and dialog.curve.labels == []
    dialog.close()


@pytest.mark.parametrize("lr,epochs,match", [
    ("0", 1, "learning rate must be a finite number above 0"),
    ("nan", 1, "learning rate must be a finite number above 0"),
    ("fast", 1, "learning rate must be a number"),
    ("1e30", 1, "training loss became nan"),
])
def test_bad_settings_say_so_in_the_dialog_and_change_nothing(qtbot, window, lr, epochs, match):
    before = _bits(window.session)
    dialog = window.training.open_dialog("finetune")
    dialog.optimizer.setCurrentText("sgd")
    dialog.lr.setText(lr)
    dialog.epochs.setValue(epochs)
    dialog.run_button.click()
    _wait_idle(qtbot, window)
    assert match in dialog.message.text()
    assert window.session.history.labels == []
    assert all(torch.equal(_bits(window.session)[k], before[k]) for k in before)
    assert dialog.run_button.isEnabled()
    dialog.close()


def test_training_data_that_does_not_fit_is_a_message(qtbot, window, tmp_path):
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int64))
    dialog = window.training.open_dialog("finetune")
    dialog.data.setText(str(bad))
    dialog.run_button.click()
    _wait_idle(qtbot, window)
    assert "does not fit the model" in dialog.message.text() and window.session.history.labels == []
    dialog.close()
