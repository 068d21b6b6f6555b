"""Every command and example in the README runs and prints what the README says."""

import re
import shlex
from pathlib import Path

import pytest

from pruneviz.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _console_examples():
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        cmd, out = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if cmd:
                    yield cmd, out
                cmd, out = line[2:], []
            elif line.strip():
                out.append(line)
        if cmd:
            yield cmd, out


@pytest.mark.parametrize("cmd,expected", list(_console_examples()), ids=lambda v: v if isinstance(v, str) else "")
def test_console_example(cmd, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(cmd)
    assert argv[0] == "pruneviz"
    code = main(argv[1:])
    out, err = capsys.readouterr()
    got = [line for line in (out + err).splitlines() if line.strip()]
    assert got == expected
    assert code == (2 if any(line.startswith("pruneviz: error:") for line in expected) else 0)


def test_python_example(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    s = ns["s"]
    assert [layer.name for layer in s.layers] == ["0", "2", "4"]
    assert s.history.labels == ["prune 50% weights by magnitude (global, 3 layers)", "prune neurons 1, 5 of 0", "restore neuron 1 of 0"]
    assert (tmp_path / "out.pt2").exists()


def test_setup_commands_are_the_ci_commands():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    test_cmd = [line for line in README.splitlines() if line.endswith("python -m pytest")][0]
    assert test_cmd in ci
