"""ONNX export keeps torch's log lines and warnings off the user's terminal (the README says the
libraries' warnings are hidden): a fresh process, since the exporter logs its registry once."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_onnx_export_writes_nothing_to_stderr(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    res = subprocess.run([sys.executable, "-m", "pruneviz", "prune", "demo:mlp", "--data", "demo:digits", "--amount", "0.5", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0 and f"wrote {out}" in res.stdout
    assert res.stderr == "", res.stderr  # was: "W1203 … torchvision is not installed. Skipping torchvision::nms", four lines
