"""The command line as a black box: outputs, files that plain torch opens, one-line errors."""

import json
import subprocess
import sys

import pytest
import torch

from pruneviz.core import demo


def test_inspect_json(cli):
    code, out, _ = cli("inspect", "demo:cnn", "--json")
    assert code == 0
    info = json.loads(out)
    assert [layer["name"] for layer in info["layers"]] == ["1", "4", "8", "12", "14"]
    assert info["params"] == sum(p.numel() for p in demo.load_model("cnn").parameters())
    assert info["sparsity"] == 0.0
    assert set(info["layers"][0]) == {"name", "kind", "shape", "params", "sparsity"}


def test_eval_json_matches_plain_torch(cli):
    code, out, _ = cli("eval", "demo:mlp", "--data", "demo:digits", "--json", "--device", "cpu")
    assert code == 0
    r = json.loads(out)
    model = demo.load_model("mlp")
    x, y = demo.load_digits("test")
    with torch.no_grad():
        logits = model(x)
    assert r["samples"] == len(y) == 360
    assert r["accuracy"] == int((logits.argmax(1) == y).sum()) / len(y) >= 0.96
    assert abs(r["loss"] - torch.nn.functional.cross_entropy(logits, y).item()) < 1e-5
    assert r["device"] == "cpu" and len(r["per_class"]) == 10


def test_prune_state_dict_loads_strictly_with_plain_torch(tmp_path, cli):
    out = tmp_path / "m.pt"
    rep = tmp_path / "r.json"
    code, text, _ = cli("prune", "demo:mlp", "--amount", "0.6", "--scope", "global", "--data", "demo:digits", "--out", str(out), "--report", str(rep))
    assert code == 0 and "accuracy" in text
    sd = torch.load(out, weights_only=True)
    model = demo.build("mlp")
    model.load_state_dict(sd, strict=True)
    ref = demo.load_model("mlp").state_dict()
    assert sd.keys() == ref.keys() and all(sd[k].shape == ref[k].shape for k in sd)
    weights = torch.cat([sd[k].flatten() for k in ("0.weight", "2.weight", "4.weight")])
    assert abs((weights == 0).float().mean().item() - 0.6) < 1e-3
    report = json.loads(rep.read_text())
    assert report["method"] == "magnitude" and report["scope"] == "global" and report["granularity"] == "weight" and report["amount"] == 0.6
    assert report["params_before"] > report["params_after"] and "accuracy_before" in report and "accuracy_after" in report
    assert {layer["name"] for layer in report["layers"]} == {"0", "2", "4"}


def test_prune_safetensors_opens_with_plain_torch(tmp_path, cli):
    from safetensors.torch import load_file

    st = tmp_path / "m.safetensors"
    assert cli("prune", "demo:cnn", "--amount", "0.3", "--format", "safetensors", "--out", str(st))[0] == 0
    demo.build("cnn").load_state_dict(load_file(str(st)), strict=True)


@pytest.mark.slow  # torch.export of the shrunk CNN and a fresh interpreter; quick: test_zoo_features' shrunk pt2
def test_prune_shrunk_pt2_opens_with_plain_torch(tmp_path, cli):
    pt2 = tmp_path / "m.pt2"
    code, _, _ = cli("prune", "demo:cnn", "--amount", "0.25", "--granularity", "neuron", "--data", "demo:digits", "--format", "pt2", "--shrink", "--out", str(pt2))
    assert code == 0
    # plain torch, in a fresh interpreter that never imports pruneviz
    script = (
        "import sys, numpy, torch; sys.modules['pruneviz'] = None\n"
        f"m = torch.export.load({str(pt2)!r}).module()\n"
        f"d = numpy.load({str(tmp_path / 'd.npz')!r})\n"
        "print(sum(p.numel() for p in m.parameters()), m(torch.from_numpy(d['x'])).shape[0], m(torch.from_numpy(d['x'][:1])).shape[0])\n"
    )
    x, y = demo.load_digits("test")
    import numpy as np

    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    params, n_all, n_one = map(int, res.stdout.split())
    assert params < sum(p.numel() for p in demo.load_model("cnn").parameters())
    assert (n_all, n_one) == (360, 1)  # dynamic batch dimension


def test_score_writes_npz(tmp_path, cli):
    import numpy as np

    out = tmp_path / "s.npz"
    assert cli("score", "demo:mlp", "--method", "magnitude", "--out", str(out))[0] == 0
    with np.load(out) as z:
        assert set(z.files) == {"0", "2", "4"}
        assert np.array_equal(z["0"], demo.load_model("mlp")[0].weight.detach().abs().numpy())


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["prune", "demo:mlp", "--amount", "1.5", "--out", "X"], "--amount"),
        (["prune", "demo:mlp", "--amount", "abc", "--out", "X"], "--amount"),
        (["inspect", "missing.pt"], "does not exist"),
        (["inspect", "demo:nope"], "mlp"),
        # (a demo model without --data calibrates on demo:digits-train: a bad --calib-data is the error)
        (["score", "demo:mlp", "--method", "taylor", "--calib-data", "nope.npz", "--out", "X.npz"], "nope.npz"),
        (["score", "demo:mlp", "--method", "wat", "--out", "X.npz"], "method"),
        (["prune", "demo:mlp", "--amount", "0.5", "--layers", "zz*", "--out", "X"], "zz"),
        (["eval", "demo:mlp"], "--data"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, monkeypatch, cli, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pruneviz: error: ") and needle in lines[0]
    assert "Traceback" not in err and not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow  # a subprocess; in-process: test_errors_are_one_line_exit_2
def test_bad_files_exit_2_without_traceback_in_a_subprocess(tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    res = subprocess.run([sys.executable, "-m", "pruneviz", "inspect", str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pruneviz: error: ") and "Traceback" not in res.stderr


def test_untrusted_pickle_names_the_flag(tmp_path, cli):
    path = tmp_path / "whole.pt"
    torch.save(demo.load_model("mlp"), path)
    code, _, err = cli("inspect", str(path))
    assert code == 2 and "--trust" in err
    code, out, _ = cli("inspect", str(path), "--trust")
    assert code == 0 and "3 prunable layers" in out


def test_demo_list_and_export(tmp_path, cli):
    code, out, _ = cli("demo", "list")
    assert code == 0 and "demo:mlp" in out and "demo:cnn" in out and "demo:digits" in out
    code, out, _ = cli("demo", "export", "mlp", str(tmp_path / "d"))
    assert code == 0
    code, out, _ = cli("eval", str(tmp_path / "d" / "mlp.pt2"), "--data", str(tmp_path / "d" / "digits_test.npz"), "--json")
    assert code == 0 and json.loads(out)["accuracy"] >= 0.96


@pytest.mark.slow  # a prune loop of many steps; quick: test_readme.py's `pruneviz loop` example
def test_loop_stops_at_the_accuracy_bound(cli):
    code, out, _ = cli("loop", "demo:mlp", "--data", "demo:digits", "--min-accuracy", "0.97", "--max-steps", "400")
    assert code == 0
    final = float(out.strip().splitlines()[-1].rsplit("accuracy ", 1)[1])
    assert final >= 0.97


@pytest.mark.slow  # a fresh interpreter: seconds of imports (the full run keeps the check)
def test_core_and_cli_never_import_qt():
    code = (
        "import sys\n"
        "import pruneviz, pruneviz.cli\n"
        "from pruneviz import Session\n"
        "s = Session.open('demo:mlp', data='demo:digits')\n"
        "s.prune(0.5); s.evaluate()\n"
        "pruneviz.cli.main(['inspect', 'demo:cnn', '--json'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt', 'shiboken6') or m.startswith('pruneviz.qt')]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow  # torch.onnx export and onnx's Python reference evaluator take seconds even for the MLP; quick: the safetensors and state_dict exports
@pytest.mark.parametrize("spec", ["demo:mlp", "demo:cnn"])
def test_onnx_export_runs_in_onnx_reference_evaluator(tmp_path, cli, spec):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from pruneviz.core.session import Session

    out = tmp_path / "m.onnx"
    code, text, err = cli("prune", spec, "--amount", "0.25", "--granularity", "neuron", "--data", "demo:digits", "--format", "onnx", "--shrink", "--out", str(out))
    assert code == 0 and "[torch.onnx]" not in text
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    s = Session.open(spec, data="demo:digits", device="cpu")
    s.prune(0.25, granularity="neuron")
    x, _ = demo.load_digits("test")
    with torch.no_grad():
        expect = s.model(x[:50]).numpy()
    got = ReferenceEvaluator(model).run(None, {"input": x[:50].numpy()})[0]
    assert got.shape == expect.shape
    assert abs(got - expect).max() < 1e-4
