"""Deeply nested metadata in model and data files gives a one-line error, never a RecursionError.

The parsers behind the openers: the JSON of a ``.pt2`` archive (Python's json, then our checks),
the JSON header of a ``.safetensors`` file (Rust's serde_json) and the Python-literal header of
an ``.npy`` array inside an ``.npz`` (numpy's literal_eval).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from pruneviz.core.data import open_data
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import open_model

DEPTH = 100_000


def refused(call) -> str:
    with pytest.raises(PrunevizError) as exc:
        call()
    message = str(exc.value)
    assert "\n" not in message and "RecursionError" not in message and message
    return message


@pytest.fixture(scope="module")
def pt2_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pt2") / "m.pt2"
    model = nn.Sequential(nn.Linear(4, 2)).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 4),)), str(path))
    return path


@pytest.mark.parametrize("trust", [False, True])
def test_deep_json_in_pt2(pt2_path, tmp_path, trust):
    deep = ("[" * DEPTH + "]" * DEPTH).encode()
    bad = tmp_path / "deep.pt2"
    with zipfile.ZipFile(pt2_path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, deep if info.filename.endswith("models/model.json") else data)
    refused(lambda: open_model(str(bad), trust=trust))


def test_deep_safetensors_header(tmp_path):
    header = ('{"__metadata__": {"a": ' + "[" * DEPTH + "]" * DEPTH + "}}").encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    refused(lambda: open_model(str(path), arch="torch.nn:Identity"))


def test_deep_npy_header(tmp_path):
    body = "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 4000 + ")" * 4000 + "}"
    header = body + " " * (63 - (len(body) + 10) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy)
        buf = io.BytesIO()
        np.save(buf, np.zeros(2, np.int64))
        archive.writestr("y.npy", buf.getvalue())
    refused(lambda: open_data(str(path)))


def test_the_json_really_is_too_deep_for_python():
    """A control that the deep JSON really is deep: Python's json gives up on it."""
    with pytest.raises(RecursionError):
        json.loads("[" * DEPTH + "]" * DEPTH)
