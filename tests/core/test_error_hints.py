"""Core errors carry a neutral message and a hint key; each front end words the hint."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pruneviz.cli import main
from pruneviz.cli_common import CLI_HINTS, error_text
from pruneviz.core.errors import HINTS, ArchRequired, PrunevizError, TrustRequired
from pruneviz.core.session import Session

CORE = Path(__file__).resolve().parents[2] / "pruneviz" / "core"
QT_HINTS = Path(__file__).resolve().parents[2] / "pruneviz" / "qt" / "hints.py"


def test_every_hint_is_worded_by_each_front_end():
    app = ast.literal_eval(re.search(r"APP_HINTS = (\{.*?\n\})", QT_HINTS.read_text(encoding="utf-8"), re.S).group(1))
    assert set(CLI_HINTS) == set(HINTS) == set(app)
    assert all(re.search(r"--[a-z]", CLI_HINTS[k]) for k in HINTS)  # the command line names a flag
    assert not any("--" in text for text in app.values())  # the app never does
    assert not any("--" in text for text in HINTS.values())  # nor the Python API's words


def test_message_stays_neutral_and_each_front_end_adds_its_words():
    exc = PrunevizError("no evaluation data", hint="data")
    assert exc.message == "no evaluation data" and exc.hint_key == "data"
    assert error_text(exc) == "no evaluation data: pass --data"
    assert str(exc) == f"no evaluation data: {HINTS['data']}"
    assert str(PrunevizError("plain")) == error_text(PrunevizError("plain")) == "plain"
    assert TrustRequired("x runs code").hint_key == "trust" and ArchRequired("w.pt is a state_dict").hint_key == "arch"
    with pytest.raises(ValueError):
        PrunevizError("x", hint="no such hint")


def test_engine_refusal_is_worded_by_flag_on_the_command_line(tmp_path, capsys):
    import torch

    s = Session.open("demo:mlp", device="cpu")
    with pytest.raises(PrunevizError) as exc:
        s.evaluate()
    assert exc.value.hint_key == "data" and "--" not in str(exc.value)
    path = tmp_path / "w.pt"
    torch.save(s.model.state_dict(), path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is a state_dict: {CLI_HINTS['arch']}" in err


#: strings (not errors) that still name a flag: notices and tooltips the app shows too
KNOWN_FLAG_STRINGS = {"calibration.py": 1, "groups.py": 1, "session.py": 1}


@pytest.mark.slow  # parses every core module; quick: the hint tests of this module
def test_core_errors_name_no_flag_as_a_hint():
    """Errors raised in the core say what the user can do by hint key, not by a flag."""
    bad, strings = [], {}
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        raised = {id(n) for r in ast.walk(tree) if isinstance(r, ast.Raise) for n in ast.walk(r)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"pass --|without --shrink", node.value):
                if id(node) in raised:
                    bad.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
                else:
                    strings[path.name] = strings.get(path.name, 0) + 1
    assert bad == []
    assert all(n <= KNOWN_FLAG_STRINGS.get(name, 0) for name, n in strings.items()), strings
