"""Names from model files and paths from users cannot drive the terminal: the real CLI, in a
subprocess, prints control characters as escapes (``\\x1b``), never the raw bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import pruneviz
from pruneviz.core.text import is_printable, printable

ROOT = Path(pruneviz.__file__).resolve().parent.parent

TITLE = "\x1b]0;pwned\x07"  # OSC 0: retitle the window
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write the clipboard
CLEAR = "\x1b[2J\x1bc"  # clear the screen, reset the terminal
C1_AND_BIDI = "fc\x9b2J\u202etxt_exe"  # one-byte CSI, right-to-left override
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_printable_escapes_controls_and_keeps_text():
    assert printable(TITLE) == "\\x1b]0;pwned\\x07"
    assert printable(C1_AND_BIDI) == "fc\\x9b2J\\u202etxt_exe"
    assert printable("a\tb\nc\rd\x7fe\x00f\u2028g\u2066h\udcffi") == "a\\x09b\\x0ac\\x0dd\\x7fe\\x00f\\u2028g\\u2066h\\udcffi"
    assert printable("a\n\x1b", keep_newlines=True) == "a\n\\x1b"
    plain = "features.0 × 3→4 Ünïcödé 层 C:\\path"  # letters, symbols, backslashes: kept
    assert printable(plain) == plain and is_printable(plain) and not is_printable(TITLE)
    assert printable(3) == "3"


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(cwd)]), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "pruneviz", *args], cwd=cwd, capture_output=True, timeout=300, env=env)
    return res.returncode, res.stdout.decode("utf-8"), res.stderr.decode("utf-8")


def _assert_clean(*texts):
    for text in texts:
        for raw in RAW:
            assert raw not in text, (raw, text)


def _named_model(names) -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module(names[0], nn.Linear(64, 16))
    m.add_module("relu", nn.ReLU())
    m.add_module(names[1], nn.Linear(16, 10))
    return m


ARCH = f"""
from torch import nn

def build():
    m = nn.Sequential()
    m.add_module({CLIPBOARD!r}, nn.Linear(64, 16))
    m.add_module("relu", nn.ReLU())
    m.add_module({C1_AND_BIDI!r}, nn.Linear(16, 10))
    return m
"""


@pytest.fixture
def torchscript_file(tmp_path):
    """A TorchScript archive keeps ASCII escape sequences in module names."""
    path = tmp_path / "named.pt"
    with warnings.catch_warnings():  # torch.jit's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_named_model([TITLE, CLEAR])), str(path))
    return path


@pytest.fixture
def arch_files(tmp_path):
    """A state_dict with an --arch factory: any Unicode name, C1 controls and bidi overrides too."""
    (tmp_path / "arch_esc.py").write_text(ARCH)
    sys.path.insert(0, str(tmp_path))
    try:
        import safetensors.torch

        from arch_esc import build

        safetensors.torch.save_file(build().state_dict(), str(tmp_path / "w.safetensors"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("arch_esc", None)
    return tmp_path


@pytest.mark.slow
def test_inspect_of_a_torchscript_file_escapes_its_layer_names(torchscript_file, tmp_path):
    code, out, err = _cli("inspect", str(torchscript_file), cwd=tmp_path)
    assert code == 0, err
    _assert_clean(out, err)
    assert "  \\x1b]0;pwned\\x07  Linear" in out and "  \\x1b[2J\\x1bc      Linear" in out  # aligned as shown
    code, out, err = _cli("inspect", str(torchscript_file), "--json", cwd=tmp_path)
    assert code == 0, err
    _assert_clean(out, err)
    assert [layer["name"] for layer in json.loads(out)["layers"]] == [TITLE, CLEAR]  # JSON keeps the names exactly


@pytest.mark.slow
def test_sensitivity_escapes_names_of_an_arch_model(arch_files):
    code, out, err = _cli("sensitivity", "w.safetensors", "--arch", "arch_esc:build", "--data", "demo:digits", "--levels", "0.5", "--out", "s.json", cwd=arch_files)
    assert code == 0, err
    _assert_clean(out, err)
    assert "\\x1b]52;c;cHduZWQ=\\x07: accuracy" in out and "fc\\x9b2J\\u202etxt_exe: accuracy" in out
    assert set(json.loads((arch_files / "s.json").read_text())["layers"]) == {CLIPBOARD, C1_AND_BIDI}


@pytest.mark.slow
def test_error_lines_escape_paths_and_names(tmp_path):
    code, out, err = _cli("inspect", f"{TITLE}.pt", cwd=tmp_path)
    assert code == 2 and out == ""
    _assert_clean(err)
    assert err.startswith("pruneviz: error: ") and "\\x1b]0;pwned\\x07.pt" in err and err.count("\n") == 1
    code, out, err = _cli("lesson", "run", f"{CLEAR}{C1_AND_BIDI}", "--out", "o", cwd=tmp_path)
    assert code == 2 and out == ""
    _assert_clean(err)
    assert "\\x1b[2J\\x1bc" in err and err.count("\n") == 1
