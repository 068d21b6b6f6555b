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


#: prose that names a command-line flag on purpose: the README an exported demo writes, and
#: Ray's own shell command (argv tokens such as ``"--head"`` are not prose and not counted)
FLAG_ON_PURPOSE = {"demo_export.py": 2, "workers.py": 1}
FLAG = re.compile(r"(^|[\s(])--[a-z]")
ARGV_TOKEN = re.compile(r"--[a-z][\w-]*(=\S*)?")


def docstrings(tree) -> set[int]:
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def flag_strings(source: str) -> list[tuple[int, str]]:
    """Strings and f-strings (docstrings and bare argv tokens not) naming a ``--flag``."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    texts = []
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr):  # an f-string is read whole, its fields as {}
            skip |= {id(v) for v in n.values}
            texts.append((n.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in n.values)))
    texts += [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]
    return [(line, text) for line, text in texts if FLAG.search(text) and not ARGV_TOKEN.fullmatch(text.strip())]


def test_the_flag_check_catches_a_flag_in_a_message():
    assert flag_strings('raise PrunevizError(f"--layers {x} matches nothing")') != []
    assert flag_strings('raise PrunevizError("use a smaller --batch-size")') != []
    assert flag_strings('def f():\n    """Like ``prune --finetune``."""\n') == []
    assert flag_strings('raise PrunevizError("no data", hint="data")') == []
    assert flag_strings('subprocess.run(["ray", "start", "--head", f"--port={p}"])') == []  # argv, not prose


@pytest.mark.slow  # parses every core module; quick: the flag check's own test above
def test_core_messages_name_no_flag():
    """Errors and notices of the core say what went wrong in words every front end shares; what
    to give is a hint key each front end words (a flag on the command line, a menu in the app)."""
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        hits = flag_strings(path.read_text(encoding="utf-8"))
        if len(hits) > FLAG_ON_PURPOSE.get(path.name, 0):
            found[str(path.relative_to(CORE))] = hits
    assert not found, found
