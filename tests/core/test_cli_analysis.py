"""pruneviz sensitivity | knockout | sweep and prune --scope sensitivity: the JSON shapes the
issue promises, values equal to the Python API, one-line errors."""

import json

import pytest
import torch

from pruneviz.core.analysis import collect
from pruneviz.core.session import Session


def test_sensitivity_json(cli, tmp_path, demo_session):
    out = tmp_path / "s.json"
    code, text, err = cli("sensitivity", "demo:mlp", "--data", "demo:digits", "--levels", "0.5,0.9", "--layers", "0,4", "--out", str(out), "--device", "cpu")
    assert code == 0, err
    res = json.loads(out.read_text())
    assert set(res) == {"baseline", "granularity", "method", "levels", "layers", "calibration"} and set(res["baseline"]) == {"accuracy", "loss"}
    assert res["calibration"] == {"spec": "demo:digits-train", "samples": 1437}  # measured on the training split
    assert res["levels"] == [0.5, 0.9] and list(res["layers"]) == ["0", "4"]
    assert all(set(p) == {"level", "sparsity", "accuracy", "loss"} for pts in res["layers"].values() for p in pts)
    assert res == collect(demo_session("mlp").sensitivity("0,4", [0.5, 0.9]))
    assert "wrote" in text and "0: accuracy" in text and "calibration data demo:digits-train" in text


@pytest.mark.slow  # a knockout of every neuron through the CLI; quick: test_analysis.py::test_knockout_equals_removing_each_neuron_alone
def test_knockout_json(cli, tmp_path):
    out = tmp_path / "k.json"
    code, text, err = cli("knockout", "demo:mlp", "--data", "demo:digits", "--layer", "2", "--out", str(out), "--device", "cpu")
    assert code == 0, err
    res = json.loads(out.read_text())
    assert set(res) == {"layer", "baseline", "neurons", "faithfulness", "calibration"} and res["layer"] == "2"
    assert res["calibration"]["spec"] == "demo:digits-train"
    assert [n["index"] for n in res["neurons"]] == list(range(64)) and all(set(n) == {"index", "accuracy", "loss"} for n in res["neurons"])
    assert all(set(f) == {"spearman", "top10_overlap"} for f in res["faithfulness"].values())
    assert "magnitude" in text and "Spearman" in text


def test_sweep_json(cli, tmp_path):
    out = tmp_path / "w.json"
    code, _, err = cli("sweep", "demo:mlp", "--data", "demo:digits", "--methods", "magnitude,random", "--scopes", "layer,global", "--levels", "0.3,0.6", "--out", str(out), "--device", "cpu")
    assert code == 0, err
    res = json.loads(out.read_text())
    assert list(res) == ["curves"] and len(res["curves"]) == 4
    for c in res["curves"]:
        assert set(c) == {"method", "scope", "granularity", "points"}
        assert [set(p) for p in c["points"]] == [{"level", "sparsity", "accuracy", "loss"}] * 2
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.prune(0.6, scope="global", method="random")
    r = s.evaluate()
    point = next(c for c in res["curves"] if (c["method"], c["scope"]) == ("random", "global"))["points"][1]
    assert (point["sparsity"], point["accuracy"], point["loss"]) == (s.sparsity(), r.accuracy, r.loss)


@pytest.mark.slow  # a sensitivity plan of the CNN; quick: test_allocation.py's allocation tests
def test_prune_scope_sensitivity(cli, tmp_path):
    code, text, err = cli("prune", "demo:cnn", "--data", "demo:digits", "--amount", "0.6", "--scope", "sensitivity", "--out", str(tmp_path / "p.pt"), "--report", str(tmp_path / "r.json"), "--device", "cpu")
    assert code == 0, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert abs(rep["sparsity"] - 0.6) <= 0.005 and rep["steps"] == ["prune to a sensitivity plan (magnitude)"]
    state = torch.load(tmp_path / "p.pt")
    assert all(int((state[f"{n}.weight"] != 0).sum()) > 0 for n in ("1", "4", "8", "12", "14"))
    assert rep["calibration"] == {"spec": "demo:digits-train", "samples": 1437}
    alloc = rep["allocation"]
    assert alloc["chosen"] == "sensitivity" and set(alloc["candidates"]) == {"sensitivity", "layer", "global"}
    assert alloc["candidates"]["sensitivity"]["accuracy"] >= max(alloc["candidates"]["layer"]["accuracy"], alloc["candidates"]["global"]["accuracy"])
    assert "applied the sensitivity plan" in text


@pytest.mark.slow  # a second sensitivity plan of the CNN on 1437 samples; quick: test_prune_scope_sensitivity
def test_prune_scope_sensitivity_reaches_90_percent_without_levels_advice(cli, tmp_path):
    """It was refused, with advice to measure higher levels through a --levels option prune lacks."""
    code, text, err = cli("prune", "demo:cnn", "--amount", "0.9", "--scope", "sensitivity", "--out", str(tmp_path / "p.pt"), "--json", "--device", "cpu")
    assert code == 0, err
    rep = json.loads(text.splitlines()[0])
    assert abs(rep["sparsity"] - 0.9) <= 0.005 and "--levels" not in err
    assert 0.9 in rep["allocation"]["levels"] and 1.0 in rep["allocation"]["levels"]
    assert rep["calibration"]["spec"] == "demo:digits-train"  # no --data: the demo's training split calibrates


@pytest.mark.parametrize("argv, message", [
    (["sensitivity", "demo:mlp", "--data", "demo:digits", "--levels", "0.5,2", "--out", "x.json"], "--levels must be fractions"),
    (["sensitivity", "demo:mlp", "--data", "demo:digits", "--levels", "a", "--out", "x.json"], "--levels must be numbers"),
    (["sensitivity", "demo:mlp", "--data", "demo:digits", "--layers", "zz*", "--out", "x.json"], "match no layer"),
    (["knockout", "demo:mlp", "--data", "demo:digits", "--layer", "9", "--out", "x.json"], "no prunable layer named '9'"),
    (["knockout", "demo:mlp", "--data", "demo:digits", "--layer", "2", "--method", "nope", "--out", "x.json"], "nope"),
    (["sweep", "demo:mlp", "--data", "demo:digits", "--methods", "magnitude,best", "--out", "x.json"], "--methods takes"),
    (["sweep", "demo:mlp", "--data", "demo:digits", "--scopes", "all", "--out", "x.json"], "--scopes takes"),
    (["sweep", "demo:mlp", "--data", "demo:digits", "--out", "x.json", "--plot", "x.jpg"], "must end in .png"),
    (["sweep", "demo:mlp", "--data", "demo:digits", "--out", "x.png", "--plot", "x.png"], "same file"),
    (["sensitivity", "demo:mlp", "--out", "x.json"], "--data"),
    (["prune", "demo:mlp", "--amount", "1", "--scope", "sensitivity", "--out", "x.pt"], "at least one per layer"),
    (["prune", "demo:mlp", "--data", "demo:digits", "--amount", "0.5", "--scope", "sensitivity", "--granularity", "neuron", "--out", "x.pt"], "--granularity weight"),
])
def test_bad_arguments_one_line_exit_2(cli, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("pruneviz: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("address, message", [("nowhere", "HOST:PORT"), ("127.0.0.1:notaport", "HOST:PORT"), ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1")])
def test_unreachable_ray_address_is_one_line_error(cli, tmp_path, address, message):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray cluster is already joined in this process")
    code, _, err = cli("sweep", "demo:mlp", "--data", "demo:digits", "--levels", "0.5", "--ray", address, "--out", str(tmp_path / "x.json"))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.json").exists()
