"""TorchScript archives are judged by the operators their compiled code calls, not by its spelling.

Real archives built with torch.jit.script / torch.jit.save, then edited with zipfile the way an
attacker would (issue 16). Each attack's proof that code ran is a marker file written by
``torch.save`` from inside the model; opening without trust must leave no marker.
"""

from __future__ import annotations

import copy
import io
import warnings
import zipfile
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pruneviz.core.errors import PrunevizError, TrustRequired
from pruneviz.core.model_io import open_model

from .zoo import ZOO, inputs

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")


class WritesFiles(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        torch.save(x, self.path)
        return x


class WritesFilesNet(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        torch.save(x, self.path)
        return self.fc(x)


class Benign(nn.Module):
    def forward(self, x):
        return x


class SetsState(nn.Module):
    """Writes its marker from __setstate__, which torch.jit.load runs while loading."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.path = state[0]
        self.training = state[1]
        torch.save(torch.zeros(1), self.path)


class Opens:
    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        torch.save(torch.zeros(1), self.path)

    def __exit__(self, a: Any, b: Any, c: Any):
        pass


class WithBlock(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        with Opens(self.path):
            y = x * 2
        return y


class Prints(nn.Module):
    def forward(self, x):
        print(x)
        return x


def script_save(module: nn.Module, path) -> None:
    torch.jit.save(torch.jit.script(module), str(path))


def rewrite(src, dst, change, copies: str | None = None):
    """Copy an archive, passing the code that calls torch.save through change(text); the debug
    records (source positions) are dropped. ``copies`` (e.g. ``"beb"``) stores the code entry
    several times, first of all entries: ``e`` the changed code, ``b`` the code without its save."""
    with zipfile.ZipFile(src) as zin:
        infos = [i for i in zin.infolist() if not i.filename.endswith(".debug_pkl")]
        data = {i.filename: zin.read(i.filename) for i in infos}
    code = next(i for i in infos if "/code/" in i.filename and b"torch.save(" in data[i.filename])
    evil = change(data[code.filename].decode()).encode()
    with zipfile.ZipFile(dst, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the point of the exercise
        if copies:
            harmless = data[code.filename].decode().replace("    torch.save(x, path)\n", "").encode()
            for which in copies:
                zout.writestr(copy.copy(code), evil if which == "e" else harmless)
        for info in infos:
            if info is code and copies:
                continue
            zout.writestr(copy.copy(info), evil if info is code else data[info.filename])
    return dst


def benign_writer(tmp_path, marker):
    """A WritesFiles archive whose save call is removed: the code a text check would read."""
    src = tmp_path / "writer.pt"
    script_save(WritesFiles(str(marker)), src)
    return src


ATTACKS = {
    # a comment between torch.save and its "(" inside brackets
    "comment": lambda text: text.replace("torch.save(x, path)", "_0 = [torch.save # (\n      (x, path)]"),
    # a backslash line continuation
    "backslash": lambda text: text.replace("torch.save(x, path)", "torch.save \\\n      (x, path)"),
}


@pytest.mark.parametrize("trick", sorted(ATTACKS))
def test_respelled_save_needs_trust(tmp_path, trick):
    marker = tmp_path / "code_ran"
    path = rewrite(benign_writer(tmp_path, marker), tmp_path / f"{trick}.pt", ATTACKS[trick])
    with pytest.raises(TrustRequired) as exc:
        model = open_model(str(path)).model
        model(torch.zeros(2))
    message = str(exc.value)
    assert "\n" not in message and "aten::save" in message and "forward" in message and "trust=True" in message
    assert not marker.exists()
    # Control: the spelling really compiles to a save - trusting the file runs it.
    open_model(str(path), trust=True).model(torch.zeros(2))
    assert marker.exists()


def test_code_stored_three_times_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    # benign, evil, benign: Python's zipfile reads the last copy, PyTorch's reader the middle one
    path = rewrite(benign_writer(tmp_path, marker), tmp_path / "triple.pt", lambda text: text, copies="beb")
    with zipfile.ZipFile(path) as z:
        assert "torch.save" not in z.read(z.namelist()[0]).decode()  # what a check through zipfile reads
    torch.jit.load(str(path))(torch.zeros(2))  # the attack is live: PyTorch compiles the evil copy
    assert marker.exists()
    marker.unlink()
    for trust in (False, True):
        with pytest.raises(PrunevizError) as exc:
            open_model(str(path), trust=trust).model(torch.zeros(2))
        assert "duplicate" in str(exc.value) and "\n" not in str(exc.value)
        assert not marker.exists()


def test_setstate_runs_while_loading_so_it_needs_trust(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "setstate.pt"
    script_save(SetsState(str(marker)), path)
    assert not marker.exists()  # scripting and saving do not run it
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path))
    assert "__setstate__" in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()
    open_model(str(path), trust=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda marker: WithBlock(str(marker)), "aten::save"),
        (lambda marker: Prints(), "prim::Print"),
    ],
    ids=["with-block", "print"],
)
def test_other_routes_need_trust(tmp_path, build, fragment):
    marker = tmp_path / "code_ran"
    path = tmp_path / "m.pt"
    script_save(build(marker), path)
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path)).model(torch.zeros(2))
    assert fragment in str(exc.value)
    assert not marker.exists()
    open_model(str(path), trust=True)


class Tagged(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        return x


def _hook(module: Tagged, inputs: tuple[torch.Tensor], output: torch.Tensor):
    torch.save(output, module.path)


def test_forward_hook_is_walked(tmp_path):
    marker = tmp_path / "code_ran"
    outer = nn.Sequential(Tagged(str(marker)))
    outer[0].register_forward_hook(_hook)
    path = tmp_path / "hooked.pt"
    script_save(outer, path)
    with pytest.raises(TrustRequired) as exc:
        open_model(str(path)).model(torch.zeros(2))
    assert "aten::save" in str(exc.value) and "hook" in str(exc.value)
    assert not marker.exists()
    open_model(str(path), trust=True).model(torch.zeros(2))  # control: the hook is live
    assert marker.exists()


@pytest.mark.parametrize("family", [f for f in ZOO if f.name not in ("vit_separate", "vit_fused", "mha", "output_object")], ids=lambda f: f.name)
def test_benign_zoo_models_open_without_trust(tmp_path, family):
    model = family.factory().eval()
    x = inputs(family, 3, 0)
    for how, scripted in (("script", torch.jit.script(model)), ("trace", torch.jit.trace(model, x, strict=False))):
        path = tmp_path / f"{how}.pt"
        torch.jit.save(scripted, str(path))
        loaded = open_model(str(path))
        assert loaded.source == "torchscript"
        with torch.no_grad():
            assert torch.equal(loaded.model(x), scripted(x))


@pytest.mark.parametrize(
    "module",
    [nn.LSTM(4, 8, 2), nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 2), nn.MultiheadAttention(8, 2)],
    ids=["lstm", "transformer", "mha"],
)
def test_benign_library_modules_open_without_trust(tmp_path, module):
    path = tmp_path / "lib.pt"
    script_save(module.eval(), path)
    assert open_model(str(path)).source == "torchscript"


def test_session_file_naming_an_attack_asks_for_trust(tmp_path):
    """A saved session reopens its model through open_model: a swapped-in attack is refused."""
    from pruneviz.core.persist import load_session, save_session
    from pruneviz.core.session import Session

    marker = tmp_path / "code_ran"
    model_path = tmp_path / "model.pt"
    data_path = tmp_path / "d.npz"
    np.savez(data_path, x=np.ones((4, 2), np.float32), y=np.zeros(4, np.int64))
    script_save(nn.Sequential(nn.Linear(2, 2)), model_path)
    session = Session.open(str(model_path), data=str(data_path))
    save_session(session, tmp_path / "s.pvs")
    script_save(WritesFilesNet(str(marker)), tmp_path / "net.pt")
    attack = rewrite(tmp_path / "net.pt", tmp_path / "attack.pt", ATTACKS["comment"])
    model_path.write_bytes(attack.read_bytes())
    with pytest.raises(TrustRequired):
        load_session(tmp_path / "s.pvs")
    assert not marker.exists()


class NoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        with torch.no_grad():
            y = self.fc(x)
        return y


def test_no_grad_block_opens_without_trust(tmp_path):
    """A with block is allowed when its __enter__/__exit__ pass the allowlist (walked too)."""
    path = tmp_path / "nograd.pt"
    script_save(NoGrad().eval(), path)
    assert open_model(str(path)).model(torch.zeros(1, 4)).shape == (1, 2)


@pytest.mark.parametrize(
    "op, allowed",
    [
        (torch.ops.aten.add.Tensor, True),
        (torch.ops.aten.einsum.default, True),
        (torch.ops.aten.div.Tensor_mode, True),
        (torch.ops.aten.from_file.default, False),
        (torch.ops.aten.set_.source_Storage, False),
        (torch.ops.aten.sparse_coo_tensor.indices, False),
        (torch.ops.aten._unsafe_index.Tensor, False),
        (torch.ops.quantized.linear_dynamic.default, False),
    ],
    ids=lambda v: v if isinstance(v, bool) else v.name(),
)
def test_operator_allowlist(op, allowed):
    from pruneviz.core.model_io.ts_ops import operator_refusal

    assert (operator_refusal(op.name().split(".")[0], op._schema) is None) == allowed
