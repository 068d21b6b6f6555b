"""Command-line rough edges: the format from --out's suffix, help for every option, umask,
demo export's demo: names, arch.py and --force, library warnings behind --debug, the README's
synopsis against --help."""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch

from pruneviz import cli
from pruneviz.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


@pytest.mark.parametrize("suffix,loads", [(".pt2", lambda p: torch.export.load(p).module()), (".safetensors", safetensors.torch.load_file), (".pt", lambda p: torch.load(p, weights_only=True))])
def test_out_suffix_chooses_the_format(tmp_path, capsys, suffix, loads):
    out = tmp_path / f"m{suffix}"
    assert main(["prune", "demo:mlp", "--amount", "0.2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert loads(str(out)) is not None
    assert main(["prune", "demo:mlp", "--amount", "0.2", "--format", "pt2", "--out", str(tmp_path / "x.safetensors")]) == 2  # an explicit mismatch is still refused


def test_every_option_has_help_and_bare_pruneviz_is_explained(capsys):
    parser = build_parser()
    missing = [(name, a.option_strings or a.dest) for name, sub in _subparsers(parser) for a in sub._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "Bare 'pruneviz'" in out and "demo:mlp" in out and "demo:digits" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["prune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fraction (0 to 1) of the still-kept weights or neurons" in out
    assert "magnitude, random, taylor, taylor-mean, obd, wanda, wanda-layer" in out and "global: one ranking over all selected layers" in out


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert main(["prune", "demo:mlp", "--amount", "0.1", "--out", str(tmp_path / "m.pt"), "--report", str(tmp_path / "r.json")]) == 0
        assert main(["score", "demo:mlp", "--method", "magnitude", "--out", str(tmp_path / "s.npz")]) == 0
    finally:
        os.umask(old)
    for name in ("m.pt", "r.json", "s.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


@pytest.mark.slow  # exports the CNN (torch.export) and loads it in a subprocess; quick: test_cli.py::test_demo_list_and_export
def test_demo_export_takes_demo_names_writes_arch_py_and_refuses_a_full_folder(tmp_path, capsys):
    out = tmp_path / "cnn"
    assert main(["demo", "export", "demo:cnn", str(out)]) == 0
    assert (out / "arch.py").exists()
    env = dict(os.environ, PYTHONPATH="")
    res = subprocess.run([sys.executable, "-m", "pruneviz", "eval", "cnn.safetensors", "--arch", "arch:build", "--data", "digits_test.npz"], cwd=out, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("accuracy 0.9972 ")
    capsys.readouterr()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert main(["demo", "export", "demo:cnn", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"pruneviz: error: {out} is not empty: name a new folder, or pass --force to write into it\n"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before
    assert main(["demo", "export", "cnn", str(out), "--force"]) == 0


def test_library_warnings_are_shown_only_with_debug(monkeypatch, capsys):
    real = cli.COMMANDS["inspect"]

    def noisy(args):
        warnings.warn("isinstance(treespec, LeafSpec) is deprecated", FutureWarning, stacklevel=1)
        return real(args)

    monkeypatch.setitem(cli.COMMANDS, "inspect", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as a user's terminal shows them
        assert main(["inspect", "demo:mlp"]) == 0
        assert "LeafSpec" not in capsys.readouterr().err
        with pytest.warns(FutureWarning, match="LeafSpec"):
            assert main(["--debug", "inspect", "demo:mlp"]) == 0


def test_readme_synopsis_names_every_option_of_every_subcommand():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("All subcommands:") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    entries = re.split(r"\npruneviz (?=\w)", "\n" + block)
    by_command: dict[str, str] = {}
    for entry in entries:
        for part in entry.split(" | pruneviz "):
            words = part.split()
            if not words:
                continue
            key = " ".join(words[:2]) if words[0] in ("demo", "lesson") else words[0]
            by_command[key] = part
    for name, sub in _subparsers(build_parser()):
        if name in ("demo", "lesson"):
            continue
        text = by_command.get(name)
        assert text is not None, name
        for a in sub._actions:
            for opt in a.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert opt in text, (name, opt)
