"""Fuzz open_model / open_data with damaged files: a working result or a PrunevizError, nothing else.

Valid .pt / .safetensors / .pt2 / .npz / data .pt files are mutated two ways: raw bytes (flip,
insert, delete, overwrite, truncate - mostly caught by zip checksums and headers) and, for zip
formats, the bytes of one member re-zipped with a correct checksum, which reaches the JSON,
pickle and tensor readers behind the zip layer. Hypothesis runs derandomized with fixed example
counts.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneviz.core.data import EvalData, open_data
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel, open_model

pytestmark = pytest.mark.slow  # a fuzzer (a minute); the quick loop's damaged-file tests are test_nesting.py, test_data.py and test_model_io.py

ARCH_MODULE = "pv_fuzz_arch"
ARCH = f"{ARCH_MODULE}:build"
EXAMPLES = {  # sized so the whole file runs in about a minute on a laptop CPU
    "pt-bytes": 400,
    "pt-member": 400,
    "safetensors-bytes": 400,
    "pt2-bytes": 300,
    "pt2-member": 500,
    "pt2-json": 800,
    "npz-bytes": 400,
    "npz-member": 400,
    "data-pt-bytes": 300,
}


def fuzz_settings(kind: str):
    return settings(
        max_examples=EXAMPLES[kind],
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Small valid files of every kind, plus the --arch module they need."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / f"{ARCH_MODULE}.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def build():
                return nn.Sequential(nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
            """
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        torch.manual_seed(0)
        model = __import__(ARCH_MODULE).build().eval()
        files = {}
        files["pt"] = root / "w.pt"
        torch.save(model.state_dict(), files["pt"])
        import safetensors.torch

        files["safetensors"] = root / "w.safetensors"
        safetensors.torch.save_file(model.state_dict(), files["safetensors"])
        files["pt2"] = root / "m.pt2"
        program = torch.export.export(model, (torch.zeros(2, 64),), dynamic_shapes=({0: torch.export.Dim("b")},))
        torch.export.save(program, str(files["pt2"]))
        files["npz"] = root / "d.npz"
        rng = np.random.default_rng(0)
        np.savez(files["npz"], x=rng.random((6, 64), dtype=np.float32), y=np.arange(6) % 10)
        files["data-pt"] = root / "d.pt"
        torch.save({"x": torch.rand(6, 64), "y": torch.arange(6)}, files["data-pt"])
        for path in files.values():  # the unmutated files must open
            if path.suffix in (".npz",) or path.name == "d.pt":
                open_data(str(path))
            else:
                open_model(str(path), arch=ARCH)
        yield {kind: (path, path.read_bytes()) for kind, path in files.items()}
    sys.modules.pop(ARCH_MODULE, None)


# ---------------------------------------------------------------------------------------------
# Mutations

position = st.integers(min_value=0, max_value=2**31)
edit = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), position, st.just(0)),
)
edits = st.lists(edit, min_size=1, max_size=4)


def mutate(data: bytes, changes) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in changes:
        if not buf:
            break
        at = pos % len(buf)
        if kind == "flip":
            buf[at] ^= 1 << arg
        elif kind == "insert":
            buf[at:at] = arg
        elif kind == "delete":
            del buf[at : at + arg]
        elif kind == "overwrite":
            buf[at : at + len(arg)] = arg
        else:
            del buf[at:]
    return bytes(buf)


def mutate_member(data: bytes, which: int, changes) -> tuple[bytes, str]:
    """Mutate one zip member's bytes and re-zip it with a valid checksum."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        infos = zin.infolist()
        target = infos[which % len(infos)].filename
        for info in infos:
            content = zin.read(info.filename)
            if info.filename == target:
                content = mutate(content, changes)
            zout.writestr(info, content)
    return out.getvalue(), target


json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "x", "s0", "torch.ops.aten.relu.default", "Symbol('s0')", "weight_0", "cpu", "meta"]),
    st.lists(st.integers(-3, 70), max_size=3),
    st.dictionaries(st.sampled_from(["as_int", "as_expr", "as_tensor", "name", "type"]), st.integers(-2, 70), max_size=2),
)


def json_slots(doc) -> list[tuple[object, object]]:
    """Every (container, key) in a JSON document, depth first."""
    slots, stack = [], [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            slots.append((node, key))
            stack.append(node[key])
    return slots


def mutate_json_member(data: bytes, member: str, which: int, value, delete: bool) -> bytes:
    """Replace (or delete) one value inside a JSON member of a zip; re-zip with valid checksums."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            content = zin.read(info.filename)
            if info.filename.endswith(member):
                doc = json.loads(content)
                slots = json_slots(doc)
                container, key = slots[which % len(slots)]
                if delete:
                    del container[key]
                else:
                    container[key] = value
                content = json.dumps(doc).encode()
            zout.writestr(info, content)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Oracles


def check_model(kind: str, path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        loaded = open_model(str(path), arch=ARCH)
    except PrunevizError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.model, torch.nn.Module)
    x = loaded.example_input if loaded.example_input is not None else torch.zeros(2, 64)
    with torch.inference_mode():
        out = loaded.model(x)
    assert isinstance(out, torch.Tensor) and out.shape[0] == x.shape[0]


def check_data(kind: str, path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        loaded = open_data(str(path), max_bytes=1 << 20)
    except PrunevizError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(loaded, EvalData)
    assert loaded.y.dtype == torch.int64 and loaded.y.dim() == 1 and len(loaded) > 0
    assert loaded.x.shape[0] == len(loaded) and loaded.x.dim() >= 2
    assert int(loaded.y.min()) >= 0
    if loaded.x.is_floating_point():
        assert bool(torch.isfinite(loaded.x).all())


# ---------------------------------------------------------------------------------------------
# The fuzz tests


@fuzz_settings("pt-bytes")
@given(changes=edits)
def test_fuzz_pt_bytes(corpus, changes):
    path, data = corpus["pt"]
    check_model("pt-bytes", path.with_name("fuzz.pt"), mutate(data, changes))


@fuzz_settings("pt-member")
@given(which=st.integers(0, 63), changes=edits)
def test_fuzz_pt_members(corpus, which, changes):
    path, data = corpus["pt"]
    mutated, _ = mutate_member(data, which, changes)
    check_model("pt-member", path.with_name("fuzz_member.pt"), mutated)


@fuzz_settings("safetensors-bytes")
@given(changes=edits)
def test_fuzz_safetensors_bytes(corpus, changes):
    path, data = corpus["safetensors"]
    check_model("safetensors-bytes", path.with_name("fuzz.safetensors"), mutate(data, changes))


@fuzz_settings("pt2-bytes")
@given(changes=edits)
def test_fuzz_pt2_bytes(corpus, changes):
    path, data = corpus["pt2"]
    check_model("pt2-bytes", path.with_name("fuzz.pt2"), mutate(data, changes))


@fuzz_settings("pt2-member")
@given(which=st.integers(0, 63), changes=edits)
def test_fuzz_pt2_members(corpus, which, changes):
    path, data = corpus["pt2"]
    mutated, _ = mutate_member(data, which, changes)
    check_model("pt2-member", path.with_name("fuzz_member.pt2"), mutated)


@fuzz_settings("pt2-json")
@given(
    # model.json has hundreds of values, the weights config dozens, the constants config one
    member=st.sampled_from(["models/model.json"] * 6 + ["model_weights_config.json"] * 3 + ["model_constants_config.json"]),
    which=st.integers(0, 10**6),
    value=json_value,
    delete=st.booleans(),
)
def test_fuzz_pt2_json(corpus, member, which, value, delete):
    path, data = corpus["pt2"]
    mutated = mutate_json_member(data, member, which, value, delete)
    check_model("pt2-json", path.with_name("fuzz_json.pt2"), mutated)


@fuzz_settings("npz-bytes")
@given(changes=edits)
def test_fuzz_npz_bytes(corpus, changes):
    path, data = corpus["npz"]
    check_data("npz-bytes", path.with_name("fuzz.npz"), mutate(data, changes))


@fuzz_settings("npz-member")
@given(which=st.integers(0, 7), changes=edits)
def test_fuzz_npz_members(corpus, which, changes):
    path, data = corpus["npz"]
    mutated, _ = mutate_member(data, which, changes)
    check_data("npz-member", path.with_name("fuzz_member.npz"), mutated)


@fuzz_settings("data-pt-bytes")
@given(changes=edits)
def test_fuzz_data_pt_bytes(corpus, changes):
    path, data = corpus["data-pt"]
    check_data("data-pt-bytes", path.with_name("fuzz_data.pt"), mutate(data, changes))

