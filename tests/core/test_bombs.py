"""Decompression bombs are refused before their memory is spent (issue 16).

Each bomb is a small file on disk (zeros deflate about 1000:1) whose members inflate to about
800 MB. It is opened through the real open path in a fresh subprocess, which prints its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) before and after; the refusal must
come with a peak RSS growth under 300 MB. Before the fix each of these inflated the whole bomb.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BOMB_BYTES = 800 * 1024**2
ROWS = BOMB_BYTES // (64 * 4)
LIMIT_KIB = 300 * 1024


def write_zeros(archive: zipfile.ZipFile, name: str, nbytes: int, head: bytes = b"") -> None:
    """A deflated member: ``head`` then zeros up to ``nbytes``, streamed (never all in memory)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = bytes(8 * 1024**2)
    with archive.open(info, "w", force_zip64=True) as out:
        out.write(head)
        left = nbytes - len(head)
        while left > 0:
            out.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def npz_shadow_bomb(path: Path) -> Path:
    """x.npy is small and checked; a member "x" (which numpy reads for npz["x"]) is the bomb."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (("x.npy", np.zeros((4, 64), np.float32)), ("y.npy", np.zeros(4, np.int64))):
            buf = io.BytesIO()
            np.save(buf, array)
            archive.writestr(name, buf.getvalue())
        head = npy_header((ROWS, 64))
        write_zeros(archive, "x", len(head) + ROWS * 64 * 4, head)
    return path


class _Storage:
    def __init__(self, key: str, numel: int, kind):
        self.key, self.numel, self.kind = key, numel, kind


class _Tensor:
    """Pickles like a torch tensor in a torch.save archive, without the tensor in memory."""

    def __init__(self, storage: _Storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def torch_bomb(path: Path, names=("x", "y")) -> Path:
    """A torch.save zip whose float tensor names[0] [ROWS, 64] is a deflated storage of zeros."""
    template = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, template)
    big = _Storage("0", ROWS * 64, torch.FloatStorage)
    small = _Storage("1", ROWS, torch.LongStorage)
    obj = {names[0]: _Tensor(big, (ROWS, 64)), names[1]: _Tensor(small, (ROWS,))}
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(io.BytesIO(template.getvalue())) as zin, zipfile.ZipFile(path, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            inner = info.filename.split("/", 1)[1]
            if inner == "data.pkl":
                zout.writestr(info.filename, buf.getvalue())
            elif not inner.startswith("data/"):
                zout.writestr(info.filename, zin.read(info))
        write_zeros(zout, f"{root}/data/0", ROWS * 64 * 4)
        write_zeros(zout, f"{root}/data/1", ROWS * 8)
    return path


def peak_rss(call: str) -> dict:
    """Run ``call`` in a fresh interpreter; its error and peak RSS growth in KiB."""
    script = textwrap.dedent(
        f"""
        import json, resource
        import numpy, torch
        from pruneviz.core.data import open_data
        from pruneviz.core.model_io import open_model
        open_data("demo:digits")  # warm up what a normal open touches
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            {call}
            error = None
        except Exception as exc:
            error = f"{{type(exc).__name__}}: {{exc}}"
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"error": error, "growth": after - before}}))
        """
    )
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_npz_member_shadowing_the_checked_one(tmp_path):
    path = npz_shadow_bomb(tmp_path / "shadow.npz")
    assert path.stat().st_size < 4 * 1024**2
    result = peak_rss(f"open_data({str(path)!r})")
    assert result["growth"] < LIMIT_KIB, result
    assert result["error"] and "duplicate" in result["error"] and "\n" not in result["error"]


def test_deflated_data_pt_is_bounded_by_the_data_limit(tmp_path):
    path = torch_bomb(tmp_path / "data.pt")
    assert path.stat().st_size < 4 * 1024**2
    result = peak_rss(f"open_data({str(path)!r}, max_bytes=256 * 1024**2)")
    assert result["growth"] < LIMIT_KIB, result
    assert result["error"] and "inflates to" in result["error"] and "over the 256.0 MiB limit" in result["error"], result


def test_deflated_state_dict_storage_is_refused(tmp_path):
    path = torch_bomb(tmp_path / "weights.pt", names=("body.0.weight", "body.0.bias"))
    result = peak_rss(f"open_model({str(path)!r}, arch='torch.nn:Identity')")
    assert result["growth"] < LIMIT_KIB, result
    assert result["error"] and "decompression bomb" in result["error"], result


def test_bombs_load_without_the_checks():
    """The oracle: without our checks the same libraries inflate these files (a sanity check
    that the bombs are real, run in-process on a small one)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        head = npy_header((1024, 64))
        write_zeros(archive, "x", len(head) + 1024 * 64 * 4, head)
        archive.writestr("x.npy", npy_header((1, 64)) + bytes(256))
    with np.load(io.BytesIO(buf.getvalue())) as npz:
        assert npz["x"].shape == (1024, 64)  # numpy reads the shadowing member
