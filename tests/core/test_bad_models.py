"""Bad models, bad data, bad output paths: a clean result or one clean error, never a crash or lost work.

Through the command line (exit 0 or 2, one stderr line, nothing written on failure) and through the
Session API (a PrunevizError with a one-line message). The models come from a small factory module
written per test module and named with ``--arch pv_bad_models:NAME``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session

MODULE = "pv_bad_models"

FACTORIES = textwrap.dedent(
    '''
    import torch
    from torch import nn


    def small():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()


    def nan_inf():
        m = small()
        with torch.no_grad():
            m[0].weight[0, :5] = float("nan")
            m[0].weight[1, :5] = float("inf")
            m[0].weight[2, :5] = -float("inf")
            m[2].weight[3, 0] = float("nan")
        return m


    def all_nan():
        m = small()
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(float("nan"))
        return m


    class ZeroBranch(nn.Module):
        """A real path plus a branch through zero-size layers (it adds only a bias)."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = nn.Linear(64, 16)
            self.fc2 = nn.Linear(16, 10)
            self.empty_in = nn.Linear(64, 0)
            self.empty_out = nn.Linear(0, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x))) + self.empty_out(self.empty_in(x))


    def zero_branch():
        return ZeroBranch().eval()


    def zero_seq():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 0), nn.Linear(0, 10)).eval()


    def zero_only():
        return nn.Sequential(nn.Linear(64, 0), nn.Linear(0, 10)).eval()


    class DataDependent(nn.Module):
        """Python control flow on a tensor value: torch.export cannot capture it."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = nn.Linear(64, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            h = torch.relu(self.fc1(x))
            if h.sum() > 0:
                h = h * 2
            return self.fc2(h)


    def data_dependent():
        return DataDependent().eval()


    class Odd(nn.Module):
        """Parameters called *_weight, no Linear modules: nothing prunable."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.my_weight = nn.Parameter(torch.randn(10, 64))
            self.other_weight = nn.Parameter(torch.randn(10, 10))

        def forward(self, x):
            return (x @ self.my_weight.t()) @ self.other_weight


    def odd():
        return Odd().eval()


    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 64)
            self.fc2.weight = self.fc1.weight
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


    def tied():
        return Tied().eval()


    def bare_linear():
        torch.manual_seed(0)
        return nn.Linear(64, 10).eval()


    def raises():
        raise RuntimeError("factory failure on purpose")


    def not_a_module():
        return {"weight": torch.zeros(3)}


    def wider():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


    def deeper():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10), nn.ReLU(), nn.Linear(10, 10)).eval()


    # data factories
    def data_int():
        return 42


    def data_module():
        return small()


    def data_raises():
        raise ValueError("no data today")


    def data_pairs_bad_label():
        return [(torch.zeros(64), torch.tensor(99)) for _ in range(4)]


    def data_ok():
        torch.manual_seed(0)
        return [(torch.rand(64), torch.tensor(i % 10)) for i in range(8)]
    '''
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A folder with the factory module and state_dicts of its models."""
    root = tmp_path_factory.mktemp("bad_models")
    (root / f"{MODULE}.py").write_text(FACTORIES)
    sys.path.insert(0, str(root))
    try:
        mod = __import__(MODULE)
        for name in ("small", "nan_inf", "all_nan", "zero_branch", "zero_seq", "zero_only", "data_dependent", "odd", "tied", "bare_linear"):
            torch.save(getattr(mod, name)().state_dict(), root / f"{name}.pt")
        rng = np.random.default_rng(0)
        np.savez(root / "labels99.npz", x=rng.random((6, 64), dtype=np.float32), y=np.full(6, 99))
        np.savez(root / "negative.npz", x=rng.random((6, 64), dtype=np.float32), y=-np.ones(6, dtype=np.int64))
        np.savez(root / "empty.npz", x=np.zeros((0, 64), np.float32), y=np.zeros(0, np.int64))
        np.savez(root / "features12.npz", x=rng.random((6, 12), dtype=np.float32), y=np.zeros(6, np.int64))
        np.savez(root / "images.npz", x=rng.random((6, 1, 8, 8), dtype=np.float32), y=np.zeros(6, np.int64))
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(MODULE, None)


@pytest.fixture
def here(lab, tmp_path, monkeypatch):
    """Run in a fresh empty folder; the lab's files by absolute path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sd(lab, name: str) -> list[str]:
    return [str(lab / f"{name}.pt"), "--arch", f"{MODULE}:{name}"]


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (what JSON itself forbids)."""

    def refuse(name):
        raise AssertionError(f"invalid JSON constant {name} in {text[:200]!r}")

    return json.loads(text, parse_constant=refuse)


def listing(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} | {p.name + "/": b"" for p in folder.iterdir() if p.is_dir()}


# ---------------------------------------------------------------------------------------------
# NaN and Inf weights


@pytest.mark.parametrize("name", ["nan_inf", "all_nan"])
def test_nan_inf_weights_through_the_cli(lab, here, cli, name):
    model = sd(lab, name)
    code, out, _ = cli.strict("inspect", *model)
    assert code == 0 and "2 prunable layers" in out
    code, out, _ = cli.strict("inspect", *model, "--json")
    assert code == 0 and [layer["name"] for layer in strict_json(out)["layers"]] == ["0", "2"]

    code, out, _ = cli.strict("eval", *model, "--data", "demo:digits", "--json")
    assert code == 0
    result = strict_json(out)  # loss is NaN: written as null, not NaN
    assert result["samples"] == 360 and 0.0 <= result["accuracy"] <= 1.0 and result["loss"] is None
    code, out, _ = cli.strict("eval", *model, "--data", "demo:digits")
    assert code == 0 and out.startswith("accuracy ")

    for extra in ([], ["--scope", "global"], ["--granularity", "neuron"], ["--method", "wanda", "--granularity", "neuron"]):
        for f in here.iterdir():
            f.unlink()
        code, out, _ = cli.strict("prune", *model, "--amount", "0.5", "--data", "demo:digits", "--out", "m.pt", "--report", "r.json", *extra)
        if code == 0:
            state = torch.load(here / "m.pt", weights_only=True)
            assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
            report = strict_json((here / "r.json").read_text())
            assert report["sparsity"] == pytest.approx(0.5, abs=0.05) and report["loss_after"] is None
        else:
            assert listing(here) == {}

    code, _, _ = cli.strict("score", *model, "--method", "taylor", "--data", "demo:digits", "--out", "s.npz")
    assert code in (0, 2)
    code, out, _ = cli.strict("loop", *model, "--data", "demo:digits", "--max-steps", "2", "--out", "l.pt")
    assert code in (0, 2)


def test_nan_inf_weights_through_the_api(lab, here):
    s = Session.open(str(lab / "nan_inf.pt"), arch=f"{MODULE}:nan_inf", data="demo:digits", device="cpu")
    assert s.prune(0.5, method="magnitude") > 0
    r = s.evaluate()
    assert 0.0 <= r.accuracy <= 1.0 and r.samples == 360
    report = s.export(here / "m.safetensors", format="safetensors", report=here / "r.json")
    assert report["sparsity"] == pytest.approx(0.5, abs=0.01)
    strict_json((here / "r.json").read_text())
    s.undo()
    assert s.sparsity() == 0.0
    torch.testing.assert_close(s.weight("0"), s.weight("0", original=True), equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Zero-size, tied and odd layers


@pytest.mark.parametrize("name,layers", [("zero_branch", ["fc1", "fc2"]), ("zero_seq", ["0"])])
def test_zero_size_layers_are_skipped(lab, here, cli, name, layers):
    model = sd(lab, name)
    code, out, _ = cli.strict("inspect", *model, "--json")
    assert code == 0 and [layer["name"] for layer in strict_json(out)["layers"]] == layers
    code, _, _ = cli.strict("prune", *model, "--amount", "0.5", "--out", "w.pt")
    assert code == 0
    code, _, _ = cli.strict("prune", *model, "--amount", "0.5", "--granularity", "neuron", "--data", "demo:digits", "--shrink", "--format", "pt2", "--out", "n.pt2", "--report", "n.json")
    assert code == 0
    strict_json((here / "n.json").read_text())
    code, _, _ = cli.strict("loop", *model, "--data", "demo:digits", "--max-steps", "2")
    assert code == 0


def test_model_with_only_zero_size_layers_is_refused(lab, here, cli):
    code, _, err = cli.strict("inspect", *sd(lab, "zero_only"))
    assert code == 2 and "no prunable layers" in err
    with pytest.raises(PrunevizError, match="no prunable layers"):
        Session.open(str(lab / "zero_only.pt"), arch=f"{MODULE}:zero_only")


def test_parameters_named_like_weights_are_not_layers(lab, here, cli):
    # my_weight and other_weight once became two layers both called "" (and a crash in scoring)
    code, _, err = cli.strict("score", *sd(lab, "odd"), "--method", "wanda", "--data", "demo:digits", "--out", "s.npz")
    assert code == 2 and "no prunable layers" in err and listing(here) == {}


def test_tied_weights_are_one_layer(lab, here, cli):
    code, out, _ = cli.strict("inspect", *sd(lab, "tied"), "--json")
    assert code == 0 and [layer["name"] for layer in strict_json(out)["layers"]] == ["fc1", "head"]
    code, _, _ = cli.strict("prune", *sd(lab, "tied"), "--amount", "0.5", "--out", "m.pt")
    assert code == 0
    state = torch.load(here / "m.pt", weights_only=True)
    assert torch.equal(state["fc1.weight"], state["fc2.weight"]) and float((state["fc1.weight"] == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_tied_weights_with_data(lab, here):
    s = Session.open(str(lab / "tied.pt"), arch=f"{MODULE}:tied", data="demo:digits", device="cpu")
    s.prune(0.5)
    r = s.evaluate()
    assert 0.0 <= r.accuracy <= 1.0 and math.isfinite(r.loss)


def test_bare_linear_model_with_data(lab, here):
    s = Session.open(str(lab / "bare_linear.pt"), arch=f"{MODULE}:bare_linear", data="demo:digits", device="cpu")
    s.prune(0.5)
    r = s.evaluate()
    assert 0.0 <= r.accuracy <= 1.0 and math.isfinite(r.loss)


# ---------------------------------------------------------------------------------------------
# Factories and architectures


@pytest.mark.parametrize(
    "arch,needle",
    [
        ("raises", "factory failure on purpose"),
        ("not_a_module", "not a torch.nn.Module"),
        ("wider", "shape mismatch"),
        ("deeper", "missing 4.weight"),
        ("zero_branch", "missing fc1.weight"),
        ("nope", "no attribute"),
    ],
)
def test_wrong_architecture(lab, here, cli, arch, needle):
    code, _, err = cli.strict("prune", str(lab / "small.pt"), "--arch", f"{MODULE}:{arch}", "--amount", "0.5", "--out", "m.pt")
    assert code == 2 and needle in err and listing(here) == {}
    with pytest.raises(PrunevizError, match=needle) as info:
        Session.open(str(lab / "small.pt"), arch=f"{MODULE}:{arch}")
    assert "\n" not in str(info.value)


def test_state_dict_without_arch_names_the_flag(lab, here, cli):
    code, _, err = cli.strict("inspect", str(lab / "small.pt"))
    assert code == 2 and "--arch" in err


# ---------------------------------------------------------------------------------------------
# Data


@pytest.mark.parametrize(
    "data,needle",
    [
        ("labels99.npz", "labels go up to 99"),
        ("negative.npz", ">= 0"),
        ("empty.npz", "no samples"),
        ("features12.npz", "does not fit the model"),
        ("images.npz", "does not fit the model"),
        (f"{MODULE}:data_int", "returned a int"),
        (f"{MODULE}:data_module", "expected an (input, label) pair"),
        (f"{MODULE}:data_raises", "no data today"),
        (f"{MODULE}:data_pairs_bad_label", "labels go up to 99"),
        ("missing.npz", "does not exist"),
    ],
)
def test_bad_data_against_demo_mlp(lab, here, cli, data, needle):
    spec = str(lab / data) if data.endswith(".npz") and data != "missing.npz" else data
    for argv in (["eval", "demo:mlp", "--data", spec], ["prune", "demo:mlp", "--amount", "0.3", "--data", spec, "--out", "m.pt"], ["loop", "demo:mlp", "--data", spec, "--max-steps", "1"]):
        code, _, err = cli.strict(*argv)
        assert code == 2 and needle in err, (argv, err)
    assert listing(here) == {}
    with pytest.raises(PrunevizError, match=None) as info:
        Session.open("demo:mlp", data=spec)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_data_factory_that_works(lab, here, cli):
    code, out, _ = cli.strict("eval", "demo:mlp", "--data", f"{MODULE}:data_ok", "--json")
    assert code == 0 and strict_json(out)["samples"] == 8


# ---------------------------------------------------------------------------------------------
# Output paths: nothing written on failure, old files intact


def test_output_in_a_missing_folder(here, cli):
    code, _, err = cli.strict("prune", "demo:mlp", "--amount", "0.5", "--out", "missing/m.pt")
    assert code == 2 and "does not exist" in err and listing(here) == {}
    code, _, err = cli.strict("prune", "demo:mlp", "--amount", "0.5", "--out", "m.pt", "--report", "missing/r.json")
    assert code == 2 and "missing" in err and listing(here) == {}


def test_failed_pt2_export_leaves_the_old_file_intact(lab, here, cli):
    old = b"an earlier export the user still needs \x00\xff"
    (here / "m.pt2").write_bytes(old)
    (here / "r.json").write_bytes(b"{}")
    code, _, err = cli.strict("prune", *sd(lab, "data_dependent"), "--amount", "0.3", "--data", "demo:digits", "--format", "pt2", "--out", "m.pt2", "--report", "r.json")
    assert code == 2 and "torch.export" in err
    assert listing(here) == {"m.pt2": old, "r.json": b"{}"}  # no temporary files either


def test_failed_pt2_export_through_the_api_leaves_the_old_file_intact(lab, here, capsys):
    old = b"old bytes"
    (here / "m.pt2").write_bytes(old)
    s = Session.open(str(lab / "data_dependent.pt"), arch=f"{MODULE}:data_dependent", data="demo:digits", device="cpu")
    s.prune(0.3)
    with pytest.raises(PrunevizError, match="torch.export") as info:
        s.export(here / "m.pt2", format="pt2")
    assert "\n" not in str(info.value)
    assert listing(here) == {"m.pt2": old}


def test_cli_refuses_outputs_that_cannot_work_before_any_work(here, cli):
    (here / "folder").mkdir()
    cases = [
        (["--out", "folder"], "is a folder"),
        (["--out", "folder/"], "names a folder"),
        (["--out", ""], "empty"),
        (["--out", "m.safetensors", "--format", "state_dict"], "does not fit --format state_dict"),  # without --format the suffix chooses
        (["--out", "m.pt", "--format", "pt2"], "does not fit --format pt2"),
        (["--out", "m.pt", "--report", "m.pt"], "same file"),
        (["--out", "m.pt", "--granularity", "weight", "--shrink"], "--granularity neuron"),
    ]
    for extra, needle in cases:
        code, _, err = cli.strict("prune", "demo:mlp", "--amount", "0.5", *extra)
        assert code == 2 and needle in err, (extra, err)
    assert listing(here) == {"folder/": b""}


@pytest.mark.slow  # a subprocess and torch.export; in-process: test_failed_pt2_export_leaves_the_old_file_intact
def test_one_line_in_a_real_process(lab, here):
    """The held-back stderr also holds torch's own log handlers (a subprocess has no capsys)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(lab), os.getcwd(), os.path.dirname(os.path.dirname(os.path.dirname(__file__)))]))
    res = subprocess.run(
        [sys.executable, "-m", "pruneviz", "prune", *sd(lab, "data_dependent"), "--amount", "0.3", "--data", "demo:digits", "--format", "pt2", "--out", "m.pt2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=here,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pruneviz: error: torch.export"), res.stderr
    assert listing(here) == {}


# ---------------------------------------------------------------------------------------------
# Bugs the fuzzing found in the engine, fixed; these keep them fixed


def test_api_report_failure_writes_nothing(here):
    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.3)
    with pytest.raises(PrunevizError):
        s.export(here / "m.pt", report=here / "missing" / "r.json")
    assert listing(here) == {}


def test_api_report_and_model_same_path(here):
    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.3)
    with pytest.raises(PrunevizError):
        s.export(here / "m.pt", report=here / "m.pt")


def test_api_export_to_a_folder(here):
    (here / "folder").mkdir()
    s = Session.open("demo:mlp", device="cpu")
    with pytest.raises(PrunevizError):
        s.export(here / "folder")


def test_api_failed_pt2_export_is_quiet(lab, here, capsys):
    s = Session.open(str(lab / "data_dependent.pt"), arch=f"{MODULE}:data_dependent", data="demo:digits", device="cpu")
    capsys.readouterr()
    with pytest.raises(PrunevizError):
        s.export(here / "m.pt2", format="pt2")
    assert capsys.readouterr().err == ""


def test_api_huge_seed(here):
    with pytest.raises(PrunevizError, match="seed"):
        Session.open("demo:mlp", data="demo:digits", seed=2**70, device="cpu")


def test_api_unknown_device(here):
    with pytest.raises(PrunevizError):
        Session.open("demo:mlp", device="nope")


@pytest.mark.slow  # a child process under an address-space limit (the bug was an unbounded loop)
def test_api_batch_size_zero(here):
    # in a child process allowed 2 GiB more address space: the bug is an unbounded loop
    code = textwrap.dedent(
        """
        import resource, sys
        from pruneviz.core.session import Session
        from pruneviz.core.errors import PrunevizError
        s = Session.open("demo:mlp", data="demo:digits", device="cpu")
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 1024**3, resource.getrlimit(resource.RLIMIT_AS)[1]))
        s.batch_size = 0
        try:
            s.evaluate()
        except PrunevizError:
            sys.exit(0)
        sys.exit(3)
        """
    )
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    except subprocess.TimeoutExpired:
        pytest.fail("evaluate() with batch_size 0 did not finish")
    assert res.returncode == 0, res.stderr[-300:]
