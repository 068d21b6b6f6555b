"""open_model: every format opens to the same function; every refusal is one line and runs nothing.

Real files in tmp_path, real torch, no mocks. The architecture module is written into tmp_path
and imported through sys.path, as a user's ``--arch`` would be.
"""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import uuid
import zipfile

import pytest
import torch

from pruneviz.core.errors import PrunevizError, TrustRequired
from pruneviz.core.model_io import LoadedModel, load_factory, open_model, pickle_imports

ARCH_SOURCE = textwrap.dedent(
    """
    import os
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x):
            return self.body(x)


    def build():
        torch.manual_seed(0)
        return Net()


    def build_wide():
        return Net(hidden=32)


    def build_deeper():
        net = Net()
        net.extra = nn.Linear(10, 10)
        return net


    def boom():
        raise ValueError("no GPU here")


    def not_a_module():
        return 42


    class Evil:
        # Unpickling this creates a directory: the proof that code ran.
        def __init__(self, path):
            self.path = path

        def __reduce__(self):
            return (os.makedirs, (self.path,))


    class WritesFiles(nn.Module):
        def __init__(self, path: str):
            super().__init__()
            self.path = path

        def forward(self, x):
            torch.save(x, self.path)
            return x
    """
)


@pytest.fixture
def arch(tmp_path, monkeypatch):
    """A fresh, uniquely named architecture module importable from tmp_path; yields its name."""
    name = f"pv_arch_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(ARCH_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def module_of(name):
    __import__(name)
    return sys.modules[name]


def reference(name) -> torch.nn.Module:
    torch.manual_seed(123)
    model = module_of(name).Net().eval()
    return model


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, batch: int = 5) -> bool:
    x = torch.randn(batch, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.strip() == text and text
    return text


def rewrite_zip(src, dst, change):
    """Copy a zip, passing each (name, bytes) through change(name, data) -> bytes | None (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


# ---------------------------------------------------------------------------------------------
# Formats that open


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
@pytest.mark.parametrize("wrapper", [None, "state_dict", "model_state_dict"])
def test_state_dict_with_arch(tmp_path, arch, suffix, wrapper):
    ref = reference(arch)
    sd = ref.state_dict()
    path = tmp_path / f"weights{suffix}"
    torch.save(sd if wrapper is None else {wrapper: sd, "epoch": 3}, path)
    loaded = open_model(str(path), arch=f"{arch}:build")
    assert isinstance(loaded, LoadedModel)
    assert loaded.source == "state_dict" and loaded.arch == f"{arch}:build"
    assert loaded.structured_ok and loaded.spec == str(path)
    # the file has no example input; the first Linear layer gives it (said in a notice)
    assert tuple(loaded.example_input.shape) == (1, 64) and "first Linear" in loaded.notices[0]
    assert not loaded.model.training
    assert same_outputs(ref, loaded.model)


def test_safetensors_with_arch(tmp_path, arch):
    import safetensors.torch

    ref = reference(arch)
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file(ref.state_dict(), path)
    loaded = open_model(str(path), arch=f"{arch}:build")
    assert loaded.source == "safetensors" and loaded.structured_ok
    assert same_outputs(ref, loaded.model)


def test_demo_models():
    for name in ("mlp", "cnn"):
        loaded = open_model(f"demo:{name}")
        assert loaded.source == "demo" and loaded.structured_ok
        assert loaded.example_input is not None and tuple(loaded.example_input.shape) == (1, 64)
        assert not loaded.model.training
        with torch.no_grad():
            assert loaded.model(loaded.example_input).shape == (1, 10)


def test_unknown_demo_lists_names():
    with pytest.raises(PrunevizError) as exc:
        open_model("demo:resnet")
    assert "demo:mlp" in one_line(exc) and "demo:cnn" in str(exc.value)


def export_pt2(model: torch.nn.Module, path, dynamic=True):
    x = torch.randn(4, 64)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


@pytest.fixture
def pt2_file(tmp_path, arch):
    ref = reference(arch)
    return ref, export_pt2(ref, tmp_path / "model.pt2")


def test_pt2(pt2_file):
    ref, path = pt2_file
    loaded = open_model(str(path))
    assert loaded.source == "pt2" and not loaded.structured_ok and loaded.arch is None
    assert loaded.example_input is not None and tuple(loaded.example_input.shape) == (1, 64)
    assert same_outputs(ref, loaded.model, batch=5)
    # train()/eval() are harmless no-ops (PyTorch's own versions raise on exported modules)
    assert loaded.model.eval() is loaded.model and loaded.model.train() is loaded.model


class _NoGrad(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        with torch.no_grad():
            y = x * 2
        return self.fc(y)


class _Cond(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda v: self.fc(v), lambda v: self.fc(-v), (x,))


class _ConstAndPool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.MaxPool2d(2, return_indices=True)
        self.fc = torch.nn.Linear(16, 10)
        self.offset = torch.arange(10.0)  # a plain tensor attribute: a lifted constant

    def forward(self, x):
        y, idx = self.pool(x.view(-1, 1, 8, 8))
        return self.fc(y.flatten(1)) + self.offset + idx.float().mean()


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 10)),
        _NoGrad,  # set_grad_enabled wrapper: a higher-order op with positional arguments
        _Cond,  # subgraphs
        _ConstAndPool,  # tensor constants, getitem
    ],
    ids=["batchnorm", "no_grad", "cond", "constants"],
)
def test_pt2_varied_exports_open(tmp_path, make):
    torch.manual_seed(0)
    ref = make().eval()
    loaded = open_model(str(export_pt2(ref, tmp_path / "varied.pt2")))
    assert same_outputs(ref, loaded.model)


def test_pt2_with_static_batch_gives_its_sample_batch(tmp_path, arch):
    ref = reference(arch)
    path = export_pt2(ref, tmp_path / "static.pt2", dynamic=False)
    loaded = open_model(str(path))
    # the program runs only on its sample's batch of 4: any batch is run in chunks of 4, padded
    assert loaded.model.fixed_batch == 4 and tuple(loaded.example_input.shape) == (1, 64)
    x = torch.randn(7, 64)
    with torch.no_grad():
        for batch in (x[:1], x[:4], x):
            assert torch.allclose(loaded.model(batch), ref(batch), atol=1e-6)


def test_pt2_trusted_opens_too(pt2_file):
    ref, path = pt2_file
    loaded = open_model(str(path), trust=True)
    assert same_outputs(ref, loaded.model)


@pytest.mark.parametrize("suffix", [".pt", ".ts"])
def test_torchscript(tmp_path, arch, suffix):
    ref = reference(arch)
    path = tmp_path / f"scripted{suffix}"
    torch.jit.save(torch.jit.script(ref), str(path))
    loaded = open_model(str(path))
    assert loaded.source == "torchscript" and not loaded.structured_ok
    assert same_outputs(ref, loaded.model)


def test_trusted_pickle(tmp_path, arch):
    ref = reference(arch)
    path = tmp_path / "whole.pt"
    torch.save(ref, path)
    loaded = open_model(str(path), trust=True)
    assert loaded.source == "pickle" and loaded.structured_ok
    assert same_outputs(ref, loaded.model)


# ---------------------------------------------------------------------------------------------
# Refusals: code from the file must not run


def test_untrusted_pickle_names_the_class(tmp_path, arch):
    path = tmp_path / "whole.pt"
    torch.save(reference(arch), path)
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path))
    message = one_line(exc)
    assert f"{arch}.Net" in exc.value.imports
    assert exc.value.hint_key == "trust" and "trust=True" in message and "whole.pt" in message and f"{arch}.Net" in message
    assert pickle_imports(path) == exc.value.imports


def test_untrusted_pickle_runs_nothing(tmp_path, arch):
    marker = tmp_path / "code_ran"
    evil = module_of(arch).Evil(str(marker))
    path = tmp_path / "checkpoint.pt"
    torch.save({"w": torch.zeros(3), "payload": evil}, path)
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path), arch=f"{arch}:build")
    one_line(exc)
    assert "os.makedirs" in exc.value.imports
    assert not marker.exists()
    # Control: the payload is live - trusting the file does run it.
    with pytest.raises(PrunevizError):
        open_model(str(path), arch=f"{arch}:build", trust=True)
    assert marker.exists()


def test_plain_pickle_protocol_5_is_refused(tmp_path, arch):
    import pickle

    marker = tmp_path / "code_ran"
    path = tmp_path / "plain.pkl.pt"
    path.write_bytes(pickle.dumps(module_of(arch).Evil(str(marker)), protocol=5))
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path))
    one_line(exc)
    assert exc.value.imports == ["os.makedirs"]
    assert not marker.exists()


def test_torchscript_that_writes_files_needs_trust(tmp_path, arch):
    target = tmp_path / "written.pt"
    path = tmp_path / "writer.pt"
    torch.jit.save(torch.jit.script(module_of(arch).WritesFiles(str(target))), str(path))
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path))
    assert "save" in one_line(exc) and exc.value.hint_key == "trust"
    loaded = open_model(str(path), trust=True)
    loaded.model(torch.zeros(2))
    assert target.exists()


def pt2_rewrite(src, dst, member_suffix, change):
    def edit(name, data):
        return change(data) if name.endswith(member_suffix) else data

    rewrite_zip(src, dst, edit)
    return dst


def json_edit(fn):
    def change(data):
        doc = json.loads(data)
        fn(doc)
        return json.dumps(doc).encode()

    return change


def test_pt2_use_pickle_weights_need_trust(pt2_file, tmp_path, arch):
    _, path = pt2_file
    marker = tmp_path / "code_ran"
    evil = io.BytesIO()
    torch.save(module_of(arch).Evil(str(marker)), evil)

    def use_pickle(doc):
        first = next(iter(doc["config"].values()))
        first["use_pickle"] = True
        first["path_name"] = "evil_weight"

    bad = pt2_rewrite(path, tmp_path / "pickled.pt2", "model_weights_config.json", json_edit(use_pickle))
    with zipfile.ZipFile(bad, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/weights/evil_weight", evil.getvalue())
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    assert "use_pickle" in one_line(exc) and exc.value.hint_key == "trust"
    assert not marker.exists()


def test_pt2_pickled_sample_inputs_need_trust(pt2_file, tmp_path, arch):
    # torch.export.load reads sample inputs with weights_only=True and falls back to False.
    _, path = pt2_file
    marker = tmp_path / "code_ran"
    buffer = io.BytesIO()
    torch.save(((module_of(arch).Evil(str(marker)),), {}), buffer)
    bad = pt2_rewrite(path, tmp_path / "inputs.pt2", "sample_inputs/model.pt", lambda _: buffer.getvalue())
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    one_line(exc)
    assert "os.makedirs" in exc.value.imports
    assert not marker.exists()


def test_pt2_sympy_expression_injection_is_refused(tmp_path, arch):
    # Symbolic-shape strings go through sympy.sympify (eval) inside torch.export.load.
    marker = tmp_path / "code_ran"
    path = export_pt2(reference(arch), tmp_path / "dyn.pt2")
    payload = f"__import__('os').makedirs({str(marker)!r})"

    def inject(doc):
        sizes = doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"]
        sizes[0]["as_expr"]["expr_str"] = payload

    bad = pt2_rewrite(path, tmp_path / "sym.pt2", "models/model.json", json_edit(inject))
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    assert "symbolic-shape" in one_line(exc)
    assert not marker.exists()


def test_pt2_name_injection_into_generated_code_is_refused(pt2_file, tmp_path):
    # Parameter names are spliced into the Python source FX generates for forward().
    _, path = pt2_file
    marker = tmp_path / "code_ran"
    payload = f'w",None)or getattr(__import__("os"),"makedirs")({json.dumps(str(marker))})or getattr(self,"body'
    assert "." not in payload.replace(str(marker), "")

    def change(data):
        return data.replace(b'"body.0.weight"', json.dumps("body.0." + payload).encode())

    bad = tmp_path / "names.pt2"
    rewrite_zip(path, bad, lambda name, data: change(data) if name.endswith(".json") else data)
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    assert "not a plain name" in one_line(exc)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target, fragment",
    [("torch.os.system", "not a PyTorch operator"), ("torch.ops.aten.from_file.default", "files")],
)
def test_pt2_dangerous_call_targets_are_refused(pt2_file, tmp_path, target, fragment):
    _, path = pt2_file

    def retarget(doc):
        doc["graph_module"]["graph"]["nodes"][0]["target"] = target

    bad = pt2_rewrite(path, tmp_path / "target.pt2", "models/model.json", json_edit(retarget))
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    assert fragment in one_line(exc)


def test_pt2_with_aoti_code_needs_trust(pt2_file, tmp_path):
    _, path = pt2_file
    bad = tmp_path / "aoti.pt2"
    rewrite_zip(path, bad, lambda name, data: data)
    with zipfile.ZipFile(bad, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    assert "AOTInductor" in one_line(exc)


@pytest.mark.parametrize("prefix", ["opaque_obj", "custom_obj"])
def test_pt2_object_constants_need_trust(pt2_file, tmp_path, prefix):
    _, path = pt2_file

    def add_constant(doc):
        doc["config"]["thing"] = {"path_name": f"{prefix}_0", "is_param": False, "use_pickle": False, "tensor_meta": None}

    bad = pt2_rewrite(path, tmp_path / "const.pt2", "model_constants_config.json", json_edit(add_constant))
    with pytest.raises(TrustRequired) as exc:
        open_model(str(bad))
    one_line(exc)


# ---------------------------------------------------------------------------------------------
# Bad files


def test_missing_file(tmp_path):
    with pytest.raises(PrunevizError) as exc:
        open_model(str(tmp_path / "nope.pt"))
    assert "does not exist" in one_line(exc)


def test_bare_demo_name_hints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PrunevizError) as exc:
        open_model("mlp")
    assert "demo:mlp" in one_line(exc)


def test_directory(tmp_path):
    folder = tmp_path / "model.pt"
    folder.mkdir()
    with pytest.raises(PrunevizError) as exc:
        open_model(str(folder))
    assert "directory" in one_line(exc)


@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".safetensors", ".bin"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path))
    assert "empty" in one_line(exc)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pt2", ".safetensors"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(os.urandom(3000))
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch="x.y:z")
    assert not isinstance(exc.value, TrustRequired)
    one_line(exc)


def test_random_bytes_pt_message(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path))
    assert "is not a PyTorch file" in one_line(exc)


def test_unknown_extension(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x01")
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path))
    assert ".safetensors" in one_line(exc) and "demo:NAME" in str(exc.value)


def test_truncated_zip(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch=f"{arch}:build")
    one_line(exc)


def test_truncated_pt2(pt2_file, tmp_path):
    _, path = pt2_file
    short = tmp_path / "short.pt2"
    short.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(PrunevizError) as exc:
        open_model(str(short))
    assert not isinstance(exc.value, TrustRequired)
    one_line(exc)


def test_zip_with_member_removed(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    bad = tmp_path / "holes.pt"
    rewrite_zip(path, bad, lambda name, data: None if name.endswith("/data/0") else data)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(bad), arch=f"{arch}:build")
    one_line(exc)


@pytest.mark.parametrize(
    "member", ["model_weights_config.json", "model_constants_config.json", "models/model.json", "sample_inputs/model.pt", "data/weights/weight_0"]
)
def test_pt2_with_member_removed(pt2_file, tmp_path, member):
    _, path = pt2_file
    bad = tmp_path / "holes.pt2"
    rewrite_zip(path, bad, lambda name, data: None if name.endswith(member) else data)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(bad))
    assert not isinstance(exc.value, TrustRequired)
    one_line(exc)


def test_pt2_with_broken_json(pt2_file, tmp_path):
    _, path = pt2_file
    bad = pt2_rewrite(path, tmp_path / "json.pt2", "model_weights_config.json", lambda data: data[:-5])
    with pytest.raises(PrunevizError) as exc:
        open_model(str(bad))
    assert "JSON" in one_line(exc)


# ---------------------------------------------------------------------------------------------
# --arch problems


def test_state_dict_without_arch(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path))
    assert exc.value.message == f"{path} is a state_dict" and exc.value.hint_key == "arch"  # the CLI adds: pass --arch …


def test_wrong_arch_missing_keys(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch=f"{arch}:build_deeper")
    message = one_line(exc)
    assert "missing extra.weight" in message and exc.value.hint_key == "arch" and "--" not in message


def test_wrong_arch_unexpected_and_shapes(tmp_path, arch):
    path = tmp_path / "w.safetensors"
    import safetensors.torch

    sd = reference(arch).state_dict()
    sd["stray.weight"] = torch.zeros(2)
    safetensors.torch.save_file(sd, path)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch=f"{arch}:build_wide")
    message = one_line(exc)
    assert "unexpected stray.weight" in message
    assert "shape mismatch body.0.weight [16, 64] in the file vs [32, 64] in the model" in message


def test_factory_that_raises(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch=f"{arch}:boom")
    assert one_line(exc) == f"the factory {arch}:boom raised: ValueError: no GPU here"


def test_factory_not_returning_a_module(tmp_path, arch):
    path = tmp_path / "w.pt"
    torch.save(reference(arch).state_dict(), path)
    with pytest.raises(PrunevizError) as exc:
        open_model(str(path), arch=f"{arch}:not_a_module")
    assert "not a torch.nn.Module" in one_line(exc)


@pytest.mark.parametrize("spec", ["nocolon", "a.b:", ":fn", "a b:c", "a:b:c", "1mod:fn", "", "mod:fn()"])
def test_malformed_arch_spec(spec):
    with pytest.raises(PrunevizError) as exc:
        load_factory(spec)
    assert "package.module:function" in one_line(exc)


def test_arch_module_or_attribute_missing(arch):
    with pytest.raises(PrunevizError) as exc:
        load_factory("pv_no_such_module_xyz:build")
    assert "PYTHONPATH" in one_line(exc)
    with pytest.raises(PrunevizError) as exc:
        load_factory(f"{arch}:no_such_function")
    assert "no attribute no_such_function" in one_line(exc)


def test_arch_module_that_fails_to_import(tmp_path, monkeypatch):
    name = f"pv_broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import pv_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PrunevizError) as exc:
        load_factory(f"{name}:build")
    assert "pv_dependency_that_is_missing" in one_line(exc)
    (tmp_path / f"{name}2.py").write_text("def build(:\n")
    with pytest.raises(PrunevizError) as exc:
        load_factory(f"{name}2:build")
    assert "SyntaxError" in one_line(exc)


def test_load_factory_imports_from_the_current_directory(tmp_path, monkeypatch):
    name = f"pv_cwd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("def make():\n    return 'made'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert load_factory(f"{name}:make")() == "made"
    finally:
        sys.modules.pop(name, None)
