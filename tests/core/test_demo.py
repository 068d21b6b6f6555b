"""The built-in demo: shipped data and weights, deterministic training, plain-file export."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from pruneviz.core import demo
from pruneviz.core.errors import PrunevizError

MODELS = sorted(demo.NAMES)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _state(path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


# ---------------------------------------------------------------------------------------------
# Names and resources


def test_names_are_the_two_models_and_the_two_splits():
    assert MODELS == ["cnn", "mlp"]
    assert list(demo.DATA_NAMES) == ["digits", "digits-train"]
    for desc in [*demo.NAMES.values(), *demo.DATA_NAMES.values()]:
        assert isinstance(desc, str) and desc and "\n" not in desc
    n_test = len(demo.load_digits("test")[1])
    assert f"({n_test} samples)" in demo.DATA_NAMES["digits"]


def test_resources_dir_holds_shipped_files():
    root = demo.resources_dir()
    assert root.is_absolute() and root.name == "resources"
    assert (root / "digits" / "digits.npz").is_file()
    for name in MODELS:
        assert (root / "models" / f"{name}.safetensors").is_file()


def test_provenance_checksums_match_shipped_files():
    root = demo.resources_dir()
    checks = [
        (root / "digits" / "PROVENANCE.md", [root / "digits" / "digits.npz"]),
        (root / "models" / "PROVENANCE.md", [root / "models" / f"{n}.safetensors" for n in MODELS]),
    ]
    for prov, files in checks:
        text = prov.read_text(encoding="utf-8")
        for f in files:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            assert f"{digest}  {f.name}" in text, f"{prov} has a stale sha256 for {f.name}"


def test_layer_names_the_engine_relies_on():
    mlp = demo.build("mlp")
    assert [k for k, m in mlp.named_children() if isinstance(m, nn.Linear)] == ["0", "2", "4"]
    cnn = demo.build("cnn")
    kinds = {k: type(m) for k, m in cnn.named_children()}
    assert [k for k, t in kinds.items() if t is nn.Conv2d] == ["1", "4", "8"]
    assert [k for k, t in kinds.items() if t is nn.BatchNorm2d] == ["2", "5", "9"]
    assert [k for k, t in kinds.items() if t is nn.Linear] == ["12", "14"]
    x = torch.zeros(3, 64)
    for model in (mlp, cnn):
        assert model.eval()(x).shape == (3, 10)


# ---------------------------------------------------------------------------------------------
# Data


def test_load_digits_shapes_dtypes_ranges():
    sizes = {}
    for split in ("train", "test", "all"):
        x, y = demo.load_digits(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.ndim == 2 and x.shape[1] == 64 and y.shape == (x.shape[0],)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert torch.equal(x * 16, torch.round(x * 16))  # pixel counts 0..16, scaled exactly
        assert set(y.tolist()) == set(range(10))
        sizes[split] = len(y)
    assert sizes["all"] == 1797
    assert sizes["train"] + sizes["test"] == sizes["all"]
    assert 0.18 <= sizes["test"] / sizes["all"] <= 0.22
    assert demo.load_digits() is not demo.load_digits()  # default split is test, fresh tensors
    assert torch.equal(demo.load_digits()[0], demo.load_digits("test")[0])


def test_splits_are_disjoint_cover_all_and_stratified():
    with np.load(demo.resources_dir() / "digits" / "digits.npz", allow_pickle=False) as f:
        raw_x, raw_y, test_idx = f["x"], f["y"], f["test_idx"]
    assert raw_x.dtype == np.uint8 and raw_x.shape == (1797, 64) and raw_x.max() <= 16
    assert raw_y.dtype == np.uint8 and raw_y.shape == (1797,)
    assert np.issubdtype(test_idx.dtype, np.integer)
    assert len(np.unique(test_idx)) == len(test_idx)
    assert test_idx.min() >= 0 and test_idx.max() < 1797

    x_all, y_all = demo.load_digits("all")
    x_tr, y_tr = demo.load_digits("train")
    x_te, y_te = demo.load_digits("test")
    is_test = np.zeros(1797, dtype=bool)
    is_test[test_idx] = True
    # test and train are exactly the rows of "all" in / not in test_idx: disjoint and covering
    assert torch.equal(x_all[torch.from_numpy(np.sort(test_idx))], x_te)
    assert torch.equal(y_all[torch.from_numpy(np.sort(test_idx))], y_te)
    assert torch.equal(x_all[torch.from_numpy(~is_test)], x_tr)
    assert torch.equal(y_all[torch.from_numpy(~is_test)], y_tr)
    assert torch.equal(x_all, torch.from_numpy(raw_x.astype(np.float32) / 16))
    # stratified: every class has 20 % +- 1 sample in the test split
    counts_all = np.bincount(raw_y, minlength=10)
    counts_test = np.bincount(raw_y[test_idx], minlength=10)
    assert np.all(np.abs(counts_test - 0.2 * counts_all) <= 1)


# ---------------------------------------------------------------------------------------------
# Shipped weights


@pytest.mark.parametrize("name", MODELS)
def test_shipped_weights_reach_held_out_accuracy(name):
    model = demo.load_model(name)
    assert not model.training
    x, y = demo.load_digits("test")
    acc = _accuracy(model, x, y)
    assert acc >= 0.96, f"{name}: held-out accuracy {acc:.4f}"


@pytest.mark.parametrize("name", MODELS)
def test_shipped_file_is_the_full_state_dict(name):
    state = _state(demo.resources_dir() / "models" / f"{name}.safetensors")
    fresh = demo.build(name).state_dict()
    assert state.keys() == fresh.keys()
    for key, value in fresh.items():
        assert state[key].shape == value.shape and state[key].dtype == value.dtype, key
    if name == "cnn":
        assert all(int(state[f"{i}.num_batches_tracked"]) > 0 for i in (2, 5, 9))


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.slow  # trains the demo model twice
def test_train_is_reproducible_and_leaves_global_state_alone(tmp_path):
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(1234)
    rng = torch.get_rng_state()

    a, b, c = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"
    acc_a = demo.train("cnn", a, seed=3, epochs=1)  # one epoch shows reproducibility as well as two, in half the time
    acc_b = demo.train("cnn", b, seed=3, epochs=1)
    demo.train("cnn", c, seed=4, epochs=1)
    assert torch.equal(torch.get_rng_state(), rng), "train() moved the global RNG"
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det

    assert acc_a == acc_b and 0.0 <= acc_a <= 1.0
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert sa.keys() == sb.keys() == demo.build("cnn").state_dict().keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "same seed gave different weights"
    assert a.read_bytes() == b.read_bytes()
    assert not torch.equal(sa["1.weight"], sc["1.weight"]), "seed had no effect"
    assert int(sa["2.num_batches_tracked"]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors", "c.safetensors"]


def test_trained_file_loads_strictly_and_accuracy_is_reported(tmp_path):
    out = tmp_path / "sub" / "mlp.safetensors"
    acc = demo.train("mlp", out, seed=0, epochs=3)
    model = demo.build("mlp")
    model.load_state_dict(_state(out), strict=True)
    x, y = demo.load_digits("test")
    assert _accuracy(model.eval(), x, y) == pytest.approx(acc, abs=1e-9)
    assert acc > 0.5  # three epochs already learn most digits


@pytest.mark.slow  # a subprocess; in-process: test_train_is_reproducible_and_leaves_global_state_alone
def test_train_from_the_command_line(tmp_path):
    out = tmp_path / "m.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "pruneviz.core.demo", "train", "mlp", "--out", str(out), "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "held-out accuracy" in proc.stdout and out.is_file()


@pytest.mark.slow  # a subprocess; the quick loop's import check is test_cli.py::test_core_and_cli_never_import_qt
def test_demo_imports_neither_sklearn_nor_qt():
    code = (
        "import sys, pruneviz.core.demo as d; d.load_model('cnn'); d.load_digits('all'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'PySide6', 'pyqtgraph')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("name", MODELS)
def test_export_writes_files_plain_torch_opens(tmp_path, name):
    out_dir = tmp_path / "export"
    paths = demo.export(name, out_dir)
    expected = [f"{name}.safetensors", f"{name}_state_dict.pt", f"{name}.pt2", "digits_test.npz", "README.txt", "arch.py"]
    assert [p.name for p in paths] == expected
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(expected)  # no temp files left
    assert all(p.parent == out_dir and p.stat().st_size > 0 for p in paths)

    reference = demo.load_model(name)
    ref_state = reference.state_dict()

    data = np.load(out_dir / "digits_test.npz", allow_pickle=False)
    assert data["x"].dtype == np.float32 and data["y"].dtype == np.int64
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    x_ref, y_ref = demo.load_digits("test")
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)

    state = torch.load(out_dir / f"{name}_state_dict.pt", weights_only=True)
    model = demo.build(name)
    model.load_state_dict(state, strict=True)
    st = safetensors.torch.load_file(str(out_dir / f"{name}.safetensors"))
    assert st.keys() == ref_state.keys() == state.keys()
    assert all(torch.equal(st[k], ref_state[k]) and torch.equal(state[k], ref_state[k]) for k in st)

    program = torch.export.load(out_dir / f"{name}.pt2").module()
    with torch.no_grad():
        expected_logits = reference(x)
        torch.testing.assert_close(model.eval()(x), expected_logits, rtol=0, atol=0)
        torch.testing.assert_close(program(x), expected_logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(program(x[:1]), expected_logits[:1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(program(x[:7]), expected_logits[:7], rtol=1e-5, atol=1e-5)
    assert _accuracy(program, x, y) == _accuracy(reference, x, y)

    readme = (out_dir / "README.txt").read_text(encoding="utf-8")
    for fname in expected[:4]:
        assert fname in readme
    assert "weights_only=True" in readme and "CC BY 4.0" in readme


def test_export_overwrites_existing_files(tmp_path):
    (tmp_path / "mlp.pt2").write_bytes(b"old")
    demo.export("mlp", tmp_path)
    assert (tmp_path / "mlp.pt2").read_bytes() != b"old"
    torch.export.load(tmp_path / "mlp.pt2")


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call",
    [
        lambda tmp: demo.build("resnet"),
        lambda tmp: demo.load_model("MLP"),
        lambda tmp: demo.train("nope", tmp / "x.safetensors", epochs=1),
        lambda tmp: demo.export("digits", tmp),
    ],
    ids=["build", "load_model", "train", "export"],
)
def test_unknown_model_name_raises(tmp_path, call):
    with pytest.raises(PrunevizError) as info:
        call(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "mlp" in msg and "cnn" in msg
    assert list(tmp_path.iterdir()) == []


def test_unknown_split_raises():
    with pytest.raises(PrunevizError, match="train, test, all"):
        demo.load_digits("validation")


def test_bad_epochs_or_seed_raise(tmp_path):
    with pytest.raises(PrunevizError):
        demo.train("mlp", tmp_path / "x.safetensors", epochs=0)
    with pytest.raises(PrunevizError):
        demo.train("mlp", tmp_path / "x.safetensors", seed=-1, epochs=1)
    assert not os.listdir(tmp_path)
