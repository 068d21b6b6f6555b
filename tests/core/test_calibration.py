"""Data-driven scores: a seeded, content-chosen calibration sample; means over samples."""

import pytest
import torch
import torch.nn.functional as F

from pruneviz.core import importance as imp
from pruneviz.cli_common import CLI_HINTS
from pruneviz.core.data import EvalData
from pruneviz.core.inventory import find_layers
from tests.core import models


def setup(n=10, seed=0):
    model = models.mlp()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    return model, find_layers(model), dict(model.named_parameters()), EvalData(x=x, y=y, spec="t")


def hand_gradients(model, layers, x, y):
    """Per-sample weight gradients, one plain autograd call per sample."""
    weights = [dict(model.named_parameters())[layer.weight] for layer in layers]
    out = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        out.append(torch.autograd.grad(loss, weights))
    return out


def test_taylor_and_obd_equal_a_hand_computation_over_batches_with_a_partial_one():
    model, layers, params, data = setup(10)
    opts = imp.ScoreOptions(seed=0, calib_samples=10, batch_size=4)  # batches of 4, 4 and 2
    per = hand_gradients(model, layers, data.x, data.y)
    taylor = imp.weight_scores("taylor-mean", model, layers, params, data, opts)  # one mean gradient
    obd = imp.weight_scores("obd", model, layers, params, data, opts)
    for k, layer in enumerate(layers):
        w = params[layer.weight].detach()
        mean = torch.stack([g[k] for g in per]).mean(0)
        fisher = torch.stack([g[k] * g[k] for g in per]).mean(0)  # mean of squares, per sample
        torch.testing.assert_close(taylor[layer.name], (w * mean).abs(), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(obd[layer.name], 0.5 * w * w * fisher, rtol=1e-4, atol=1e-9)
    # the square of batch means is a different quantity: the old formula fails this test
    batch_means = [torch.stack([g[0] for g in per[a:b]]).mean(0) for a, b in ((0, 4), (4, 8), (8, 10))]
    old = 0.5 * params[layers[0].weight].detach() ** 2 * torch.stack([m * m for m in batch_means]).mean(0)
    assert not torch.allclose(obd[layers[0].name], old, rtol=1e-3)


@pytest.mark.slow  # several calibrated score runs; quick: test_scores_calibrate_on_the_training_split_and_equal_an_oracle_on_its_tensors
def test_the_calibration_sample_is_seeded_and_does_not_depend_on_file_order():
    model, layers, params, data = setup(60, seed=1)
    order = torch.argsort(data.y, stable=True)  # class-sorted copy
    sorted_data = EvalData(x=data.x[order], y=data.y[order], spec="sorted")
    opts = imp.ScoreOptions(seed=3, calib_samples=16, batch_size=5)
    xs, ys = imp.calibration_set(data.x, data.y, 16, 3)
    xs2, ys2 = imp.calibration_set(sorted_data.x, sorted_data.y, 16, 3)
    assert torch.equal(xs, xs2) and torch.equal(ys, ys2)
    assert len(set(ys.tolist())) > 2  # not the first 16 of a sorted file (one or two classes)
    other, _ = imp.calibration_set(data.x, data.y, 16, 4)
    assert not torch.equal(xs, other)  # another seed, another sample
    for method in ("taylor", "taylor-mean", "obd", "wanda"):
        a = imp.weight_scores(method, model, layers, params, data, opts)
        b = imp.weight_scores(method, model, layers, params, sorted_data, opts)
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-6, atol=0), (method, n)
    for method in ("activation", "apoz"):
        a = imp.neuron_scores(method, model, layers, params, data, opts)
        b = imp.neuron_scores(method, model, layers, params, sorted_data, opts)
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-6, atol=0), (method, n)


def test_obd_falls_back_to_a_per_sample_loop_when_vmap_cannot_run(monkeypatch):
    model, layers, params, data = setup(7)
    opts = imp.ScoreOptions(seed=0, calib_samples=7, batch_size=3)
    fast = imp.weight_scores("obd", model, layers, params, data, opts)
    import torch.func

    def broken(*args, **kwargs):
        raise RuntimeError("vmap unsupported here")

    monkeypatch.setattr(torch.func, "vmap", broken)
    slow = imp.weight_scores("obd", model, layers, params, data, opts)
    for n in fast:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-5, atol=1e-10)


# ------------------------------------------------------------ the calibration split (issue 18)
def test_scores_calibrate_on_the_training_split_and_equal_an_oracle_on_its_tensors():
    from pruneviz.core.data import open_data
    from pruneviz.core.session import Session

    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    assert s.calibration.spec == "demo:digits-train" and s.calibration_info() == {"spec": "demo:digits-train", "samples": 1437}
    train = open_data("demo:digits-train")
    x, _ = imp.calibration_set(train.x, train.y, imp.ScoreOptions().calib_samples, s.seed)  # the samples scores read
    w = s.weight("0")
    torch.testing.assert_close(s.scores("0", "wanda"), w.abs() * x.norm(dim=0).view(1, -1))  # |W|·‖X‖₂ by hand
    on_eval = Session.open("demo:mlp", data="demo:digits", device="cpu", calib_data="demo:digits")
    assert not torch.allclose(on_eval.scores("0", "wanda"), s.scores("0", "wanda"))
    for method in ("taylor", "obd"):
        assert not torch.allclose(on_eval.scores("0", method), s.scores("0", method)), method
    # a setter: the session's scores follow it
    s.set_calib_data("demo:digits")
    torch.testing.assert_close(s.scores("0", "wanda"), on_eval.scores("0", "wanda"))
    assert s.calibration_info()["same_as_eval"] and sum("inflates the figures" in n for n in s.notices) == 1


def test_calibrating_on_the_evaluation_data_says_once_that_it_inflates_the_figures():
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    model, _, _, data = setup(40)
    loaded = LoadedModel(model=model, spec="mine.pt", source="state_dict", arch=None, example_input=data.x[:1], structured_ok=True)
    s = Session(loaded, data, device="cpu")  # no training data known: the evaluation data calibrates
    assert s.calibration is data
    assert s.notices == []  # nothing calibrated yet
    s.scores("0", "taylor")
    s.scores("2", "apoz", "neuron")
    notes = [n for n in s.notices if "inflates the figures" in n]
    assert len(notes) == 1 and notes[0].hint_key == "separate_calib" and "--" not in notes[0]
    assert "--calib-data" in notes[0].worded(CLI_HINTS)  # the command line names its flag
    assert s.calibration_info() == {"spec": "t", "samples": 40, "same_as_eval": True, "note": notes[0]}
    other = EvalData(x=data.x[:20] + 1, y=data.y[:20], spec="calib.npz")
    s2 = Session(loaded, data, device="cpu", calib_data=other)
    s2.scores("0", "taylor")
    assert s2.calibration_info() == {"spec": "calib.npz", "samples": 20} and not s2.notices


def test_every_report_records_its_calibration_and_the_cli_warns_once(tmp_path, capsys):
    import json

    from pruneviz.cli import main

    out, rep = tmp_path / "p.pt", tmp_path / "r.json"
    assert main(["prune", "demo:mlp", "--data", "demo:digits", "--amount", "0.5", "--method", "wanda", "--out", str(out), "--report", str(rep), "--device", "cpu"]) == 0
    _, err = capsys.readouterr()
    assert json.loads(rep.read_text())["calibration"] == {"spec": "demo:digits-train", "samples": 1437} and "inflates" not in err
    assert main(["prune", "demo:mlp", "--data", "demo:digits", "--amount", "0.5", "--out", str(out), "--json", "--device", "cpu"]) == 0
    text, _ = capsys.readouterr()
    assert json.loads(text.splitlines()[0])["calibration"]["spec"] == "demo:digits-train"
    assert main(["score", "demo:mlp", "--method", "taylor", "--data", "demo:digits", "--calib-data", "demo:digits", "--out", str(tmp_path / "s.npz"), "--json", "--device", "cpu"]) == 0
    text, err = capsys.readouterr()
    rec = json.loads(text)
    assert rec["calibration"]["spec"] == "demo:digits" and rec["calibration"]["same_as_eval"]
    assert err.count("inflates the figures") == 1 and err.startswith("pruneviz: note: calibrating on the evaluation data demo:digits")
    # --train-data calibrates when given (here with the fine-tuning it is for)
    assert main(["prune", "demo:mlp", "--data", "demo:digits", "--amount", "0.5", "--finetune", "1", "--train-data", "demo:digits", "--out", str(out), "--json", "--device", "cpu"]) == 0
    text, _ = capsys.readouterr()
    assert json.loads(text.splitlines()[0])["calibration"]["spec"] == "demo:digits"
