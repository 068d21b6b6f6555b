"""Lessons are data: what a lesson file may name (demo: specs, files in its own folder, a
[problem]), code only with trust (checked before any import), bounded claims and TOML, outputs
written atomically without following links. Each attack writes a marker file if code runs."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import uuid

import numpy as np
import pytest

from pruneviz.cli import main
from pruneviz.core import lessons
from pruneviz.core.errors import TrustRequired
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_format import LessonError, parse_lesson

LESSON = """\
title = "t"
model = "demo:mlp"
data = "{data}"
claim = "a >= 0"

[[steps]]
caption = "c"
action = "evaluate"
record = "a"
"""

#: a module that writes a marker when imported and when its factory is called
EVIL = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def make():
    pathlib.Path({marker!r}).write_text("called")
"""

#: a benign data factory: 50 digits-shaped samples
GOOD = """\
import torch

def make():
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.rand(50, 64, generator=g) * 16, torch.randint(0, 10, (50,), generator=g))
"""


def _module(folder, source: str, marker=None) -> str:
    """Write a uniquely named module into ``folder`` (nothing cached in sys.modules); its name."""
    name = f"lessonmod_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(source.format(marker=str(marker)) if marker else source)
    return name


def _lesson(folder, data: str, name: str = "mine.toml"):
    path = folder / name
    path.write_text(LESSON.format(data=data))
    return path


# --------------------------------------------------------------------------- code needs trust
def test_cli_refuses_a_lesson_beside_a_hostile_module(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the module would be importable from here
    marker = tmp_path / "MARKER"
    mod = _module(tmp_path, EVIL, marker)
    path = _lesson(tmp_path, f"{mod}:make")
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pruneviz: error: mine.toml names code to run"), err
    assert f"imports {mod} from {tmp_path / (mod + '.py')}" in err[0] and "--trust" in err[0]
    assert not marker.exists() and mod not in sys.modules
    assert not (tmp_path / "out").exists()


def test_python_api_refuses_before_importing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    mod = _module(tmp_path, EVIL, marker)
    path = _lesson(tmp_path, f"{mod}:make")
    with pytest.raises(TrustRequired) as info:
        lessons.load(path)
    assert str(tmp_path / f"{mod}.py") in str(info.value) and info.value.imports
    # a Lesson built without the loader's check is held to the same rule by LessonRun
    trusted = lessons.load(path, trust=True)
    assert not marker.exists()  # loading, even trusted, imports nothing
    import dataclasses

    for lesson in (dataclasses.replace(trusted, trusted=False), dataclasses.replace(trusted, trusted=False, specs=None)):
        with pytest.raises(TrustRequired):
            lessons.LessonRun(lesson)
    assert not marker.exists() and mod not in sys.modules


@pytest.mark.parametrize("spec, module", [("tempfile:mkdtemp", "tempfile"), ("os:abort", "os"), ("subprocess:getoutput", "subprocess")])
def test_standard_library_factories_need_trust(spec, module):
    with pytest.raises(TrustRequired) as info:
        parse_lesson(LESSON.format(data=spec), "x.toml", ACTIONS)
    msg = str(info.value)
    assert msg.startswith("x.toml names code to run") and f"imports {module}" in msg and "\n" not in msg


def test_cli_tempfile_factory_creates_nothing(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = _lesson(tmp_path, "tempfile:mkdtemp")
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "names code to run" in capsys.readouterr().err
    assert list(scratch.iterdir()) == []


def test_trusted_factory_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mod = _module(tmp_path, GOOD)
    path = _lesson(tmp_path, f"{mod}:make")
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out"), "--trust"]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["holds"] is True and 0 <= result["figures"]["a"] <= 1
    run = lessons.LessonRun(lessons.load(path, trust=True))
    list(run.run())
    assert len(run.session.data) == 50  # the factory's data, not the demo's


def test_shipped_lessons_need_no_trust():
    for name in lessons.available():
        lesson = lessons.load(name)
        assert lesson.specs is not None and lesson.specs.code == []


# ------------------------------------------------------------------------- files beside it
def _npz(path):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((40, 64), dtype=np.float32) * 16, y=rng.integers(0, 10, 40))


def test_relative_files_are_found_in_the_lessons_folder(tmp_path, monkeypatch):
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "data").mkdir()
    _npz(folder / "data" / "test.npz")
    path = _lesson(folder, "data/test.npz")
    monkeypatch.chdir(tmp_path)  # not the lesson's folder
    lesson = lessons.load(path)
    assert lesson.specs.data == str(folder / "data" / "test.npz")
    run = lessons.LessonRun(lesson)
    list(run.run())
    assert len(run.session.data) == 40


@pytest.mark.parametrize("kind", ["parent", "absolute", "home", "link"])
def test_files_outside_the_lessons_folder_are_refused(tmp_path, kind):
    folder = tmp_path / "course"
    folder.mkdir()
    _npz(tmp_path / "outside.npz")
    spec = {"parent": "../outside.npz", "absolute": str(tmp_path / "outside.npz"), "home": "~/outside.npz", "link": "inside.npz"}[kind]
    if kind == "link":
        os.symlink(tmp_path / "outside.npz", folder / "inside.npz")
    path = _lesson(folder, spec)
    with pytest.raises(LessonError) as info:
        lessons.load(path)
    msg = str(info.value)
    assert msg.startswith("mine.toml, line 3: data ") and "own folder" in msg and "\n" not in msg


def test_model_must_be_demo_or_a_file_in_the_folder(tmp_path):
    text = LESSON.format(data="demo:digits").replace('model = "demo:mlp"', 'model = "os:abort"')
    with pytest.raises(LessonError, match=r"x.toml, line 2: model 'os:abort': a lesson's model is a demo: model"):
        parse_lesson(text, "x.toml", ACTIONS)


# ------------------------------------------------------------------------------------ bounds
@pytest.mark.parametrize(
    "claim, words",
    [
        ("(" * 5000 + "a" + ")" * 5000 + " >= 0", "characters long"),
        ("not " * 100 + "a >= 0", "more than 32 deep"),
        ("-" * 100 + "a >= 0", "more than 32 deep"),
        ("(" * 40 + "a" + ")" * 40 + " >= 0", "more than 32 deep"),
        ("+".join(["a"] * 900) + " >= 0", "more than 256"),
    ],
)
def test_deep_or_long_claims_are_one_clean_error(tmp_path, capsys, claim, words):
    path = tmp_path / "deep.toml"
    path.write_text(LESSON.format(data="demo:digits").replace('claim = "a >= 0"', f'claim = "{claim}"'))
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pruneviz: error: deep.toml, line 4: claim: ") and words in err[0], err
    assert "internal error" not in err[0]


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a = " * 3000 + "1" + "}" * 3000])
def test_deeply_nested_toml_is_one_clean_error(tmp_path, capsys, value):
    path = tmp_path / "deep.toml"
    path.write_text(LESSON.format(data="demo:digits") + f"summary2 = {value}\n")
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pruneviz: error: deep.toml") and "internal error" not in err[0], err


def test_a_huge_lesson_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(LESSON.format(data="demo:digits") + "# " + "x" * (2 * 1024 * 1024) + "\n")
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "big.toml: larger than 256 KiB" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- outputs
def test_outputs_replace_links_and_never_write_through_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victims = {}
    for name in ("result.json", "handout.html", "step-01-1.png"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        os.symlink(victim, out / name)
        victims[name] = victim
    run = lessons.LessonRun(parse_lesson(LESSON.format(data="demo:digits"), "x.toml", ACTIONS))
    list(run.run())
    run.results[0].charts.append({"kind": "bars"})
    run.record("a_nan", math.nan)

    def render(chart, path):
        with open(path, "wb") as fh:
            fh.write(b"\x89PNG fake")

    result = lessons.write_outputs(run, out, render)
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert (out / name).is_file() and not (out / name).is_symlink(), name
    text = (out / "result.json").read_text()
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in result.json"))
    assert parsed["figures"]["a_nan"] is None and result["figures"]["a_nan"] is None
    assert (out / "step-01-1.png").read_bytes() == b"\x89PNG fake"
    assert sorted(p.name for p in out.iterdir()) == ["handout.html", "result.json", "step-01-1.png"]  # no temp files left
