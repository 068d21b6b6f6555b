"""``prune --finetune/--compensate`` and ``pruneviz train`` as a black box: files plain torch
opens, report fields, progress on stderr, clean JSON on stdout, one-line errors."""

import json
import re

import numpy as np
import pytest
import torch

from tests.core import models


@pytest.mark.slow
def test_prune_finetune_keeps_the_mask_and_reports_recovery(cli, tmp_path):
    plain, tuned, rep = tmp_path / "plain.pt", tmp_path / "tuned.pt", tmp_path / "r.json"
    code, _, _ = cli("prune", "demo:mlp", "--amount", "0.9", "--out", str(plain))
    assert code == 0
    code, out, err = cli("prune", "demo:mlp", "--amount", "0.9", "--data", "demo:digits", "--finetune", "2", "--lr", "5e-3", "--out", str(tuned), "--report", str(rep))
    assert code == 0, err
    assert "after 2 epochs of fine-tuning" in out and "fine-tune: epoch 2/2" in err  # plain progress lines off a terminal
    a, b = torch.load(plain, weights_only=True), torch.load(tuned, weights_only=True)
    for name in a:
        if name.endswith("weight"):
            assert torch.equal(a[name] == 0, b[name] == 0), name  # same pruned entries
            assert not torch.equal(a[name], b[name])  # but the kept ones trained
    r = json.loads(rep.read_text())
    assert r["accuracy_pruned"] < r["accuracy_after"] <= 1.0 and r["accuracy_before"] > 0.95
    ft = r["finetune"]
    assert (ft["epochs"], ft["lr"], ft["optimizer"], ft["samples"]) == (2, 5e-3, "adam", 2 * 1437)
    assert [p["epoch"] for p in ft["curve"]] == [1, 2]
    assert set(ft["curve"][0]) == {"epoch", "sparsity", "loss", "accuracy"}
    assert r["steps"] == ["prune 90% weights in 0, 2, 4 by magnitude", "fine-tune 2 epochs (lr 5e-3)"]


@pytest.mark.slow  # compensation through the CLI; quick: test_compensate.py::test_cli_compensate_modes
def test_prune_compensate_json_stdout_is_clean(cli, tmp_path):
    code, out, err = cli("prune", "demo:mlp", "--amount", "0.7", "--data", "demo:digits", "--compensate", "--json", "--out", str(tmp_path / "c.pt"))
    assert code == 0, err
    r = json.loads(out)
    assert r["compensated"] is True and r["accuracy_after"] >= r["accuracy_pruned"] - 1e-12
    assert r["steps"] == ["prune 70% weights in 0, 2, 4 by magnitude, compensated"]


def test_train_writes_model_and_curve(cli, tmp_path):
    out_path, rep = tmp_path / "t.pt", tmp_path / "t.json"
    code, out, err = cli("train", "demo:mlp", "--data", "demo:digits", "--schedule", "regrow", "--target-sparsity", "0.8", "--epochs", "2", "--seed", "1", "--out", str(out_path), "--report", str(rep), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r == json.loads(rep.read_text())
    assert abs(r["sparsity"] - 0.8) <= 0.005
    assert [p["epoch"] for p in r["curve"]] == [1, 2] and all(abs(p["sparsity"] - 0.8) <= 0.005 for p in r["curve"])
    state = torch.load(out_path, weights_only=True)
    zeros = sum(int((state[k] == 0).sum()) for k in state if k.endswith("weight"))
    assert abs(zeros / sum(state[k].numel() for k in state if k.endswith("weight")) - 0.8) <= 0.006
    assert "train (regrow): epoch 2/2" in err


def _no_output(tmp_path):
    return not any(tmp_path.iterdir())


@pytest.mark.parametrize("extra,match", [
    (["--finetune", "1", "--lr", "0"], "--lr must be a finite number above 0, got 0"),
    (["--finetune", "1", "--lr=-1e-3"], "--lr must be a finite number above 0"),
    (["--finetune", "1", "--lr", "nan"], "--lr must be a finite number above 0, got nan"),
    (["--finetune", "1", "--lr", "inf"], "--lr must be a finite number above 0"),
    (["--finetune", "0"], "--finetune must be between 1 and"),
    (["--lr", "1e-3"], "add --finetune EPOCHS"),
    (["--finetune", "1", "--compensate", "--granularity", "neuron"], "use it with weight or N:M pruning"),
    (["--finetune", "1", "--lr", "1e30", "--optimizer", "sgd"], "training loss became nan .* back as it was"),
    (["--finetune", "1", "--lr", "1e10"], r"training diverged: the loss rose to .* back as it was before training: .*--allow-divergence"),
    (["--allow-divergence"], "--allow-divergence is for the fine-tuning: add --finetune EPOCHS"),
])
def test_bad_training_input_is_one_line_and_writes_nothing(cli, tmp_path, extra, match):
    code, out, err = cli("prune", "demo:mlp", "--amount", "0.5", "--out", str(tmp_path / "m.pt"), *extra)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("pruneviz: error: ") and re.search(match, last), err
    assert "Traceback" not in err and _no_output(tmp_path)


def test_training_data_that_does_not_fit_and_missing_training_data(cli, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((8, 5), np.float32), y=np.zeros(8, np.int64))
    code, _, err = cli("prune", "demo:mlp", "--amount", "0.5", "--finetune", "1", "--train-data", str(bad), "--out", str(tmp_path / "m.pt"))
    assert code == 2 and "does not fit the model" in err and not (tmp_path / "m.pt").exists()
    weights = tmp_path / "w.pt"
    torch.save(models.mlp().state_dict(), weights)
    code, _, err = cli("prune", str(weights), "--arch", "tests.core.models:mlp", "--amount", "0.5", "--finetune", "1", "--out", str(tmp_path / "m.pt"))
    assert code == 2 and "training needs data: pass --train-data DATA" in err
    code, _, err = cli("train", "demo:mlp", "--data", "demo:digits", "--schedule", "during", "--target-sparsity", "0.5", "--epochs", "0", "--out", str(tmp_path / "m.pt"))
    assert code == 2 and "--epochs must be between 1 and" in err


def test_train_progress_bar_on_a_terminal(monkeypatch):
    import io

    from pruneviz.cli_train import Progress
    from pruneviz.core.training import TrainProgress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        bar = Progress(stream, "fine-tune", 2, 3)
        for step in range(1, 7):
            bar.update(TrainProgress(step, (step - 1) // 3 + 1, 0.5, 0.9 if step % 3 == 0 else None, 0.5))
        bar.close()
    assert "\r" in tty.getvalue() and "[" in tty.getvalue() and tty.getvalue().endswith("\n")
    assert plain.getvalue().splitlines() == [
        "fine-tune: 2 epochs, 6 steps",
        "fine-tune: epoch 1/2 loss 0.5000 sparsity 50.0% accuracy 0.9000",
        "fine-tune: epoch 2/2 loss 0.5000 sparsity 50.0% accuracy 0.9000",
    ]


@pytest.mark.slow  # a training run per schedule; quick: test_front_choices.py
def test_train_offers_every_schedule_of_the_core(cli, tmp_path):
    """The CLI reads its schedules from core/schedules.py: ``granet`` was missing from a copy."""
    import argparse

    from pruneviz.cli import build_parser
    from pruneviz.core import schedules

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    schedule = next(a for a in sub.choices["train"]._actions if a.dest == "schedule")
    assert list(schedule.choices) == list(schedules.SCHEDULES)
    out_path = tmp_path / "g.pt"
    code, out, err = cli("train", "demo:mlp", "--data", "demo:digits", "--schedule", "granet", "--target-sparsity", "0.5", "--epochs", "1", "--out", str(out_path), "--json")
    assert code == 0, err
    assert json.loads(out)["schedule"] == "granet" and out_path.is_file()


@pytest.mark.slow
def test_allow_divergence_keeps_the_run_away_fine_tune(cli, tmp_path):
    rep = tmp_path / "r.json"
    code, out, err = cli("prune", "demo:mlp", "--amount", "0.5", "--data", "demo:digits", "--finetune", "1", "--lr", "1e10", "--allow-divergence", "--out", str(tmp_path / "m.pt"), "--report", str(rep))
    assert code == 0, err
    r = json.loads(rep.read_text())
    assert r["steps"][-1] == "fine-tune 1 epoch (lr 1e10)" and r["finetune"]["curve"][0]["loss"] > 1e6
    code, out, err = cli("train", "demo:mlp", "--data", "demo:digits", "--schedule", "during", "--target-sparsity", "0.5", "--epochs", "1", "--lr", "1e10", "--out", str(tmp_path / "t.pt"))
    assert code == 2 and "training diverged" in err.strip().splitlines()[-1] and not (tmp_path / "t.pt").exists()
