"""Lessons: the file format and its messages, the claim grammar, the engine against plain verbs,
and every runnable lesson's claim through `pruneviz lesson run`."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch

from pruneviz.cli import main
from pruneviz.core import lessons, toy
from pruneviz.core.correlation import spearman
from pruneviz.core.lesson_actions import ACTIONS, pct
from pruneviz.core.lesson_claim import decide
from pruneviz.core.lesson_format import LessonError, parse_claim, parse_lesson
from pruneviz.core.session import Session

GOOD = """\
title = "t"
model = "demo:mlp"
data = "demo:digits"
claim = "a > 0.5"

[[steps]]
caption = "c"
action = "evaluate"
record = "a"
"""

RUNNABLE = ["playground", "node-loop", "global-vs-layer", "criteria", "faithful", "fine-tune", "when", "surgeon", "regrow"]
#: lessons that need a training verb: refused by an engine without it (tested by hiding the verb)
WAITING = {"fine-tune": "finetune", "when": "train", "surgeon": "compensate", "regrow": "train"}


def parse(text: str, has_verb=lambda v: True):
    return parse_lesson(text, "x.toml", ACTIONS, has_verb=has_verb)


# ------------------------------------------------------------------------------ the format
def test_good_lesson_parses_with_defaults():
    lesson = parse(GOOD)
    assert lesson.title == "t" and lesson.seed == 0 and lesson.runnable
    assert lesson.steps == [{"caption": "c", "action": "evaluate", "record": "a"}]
    assert lesson.claim.names == {"a"}


@pytest.mark.parametrize(
    "edit, line, words",
    [
        (lambda t: t.replace('claim = "a > 0.5"', 'claim = "a >"'), 4, "claim: cannot read the claim 'a >'"),
        (lambda t: t.replace('claim = "a > 0.5"', 'claim = "b > 0.5"'), 4, "claim uses b, which no step records"),
        (lambda t: t.replace('claim = "a > 0.5"', 'claim = "a"'), 4, "must compare figures"),
        (lambda t: t.replace('claim = "a > 0.5"', 'claim = "__import__(1) > 0"'), 4, "unexpected '__import__(1)'"),
        (lambda t: t.replace('action = "evaluate"', 'action = "evalute"'), 8, "step 1: unknown action 'evalute'"),
        (lambda t: t.replace('record = "a"', 'record = 3'), 9, "step 1: record must be a string"),
        (lambda t: t.replace('record = "a"', 'recrod = "a"'), 9, "has no setting 'recrod'"),
        (lambda t: t.replace('caption = "c"\n', ""), 6, "step 1: missing 'caption'"),
        (lambda t: t.replace('title = "t"\n', ""), 1, "missing 'title'"),
        (lambda t: t.replace('data = "demo:digits"', 'data = "demo:digits'), 3, "not valid TOML"),
        (lambda t: t + "colour = 1\n", 10, "step 1: action 'evaluate' has no setting 'colour'"),
        (lambda t: "speed = 3\n" + t, 1, "unknown key 'speed'"),
        (lambda t: t.replace('model = "demo:mlp"\ndata = "demo:digits"\n', ""), 1, "missing 'model'"),
        (lambda t: t + '\n[[steps]]\ncaption = "p"\naction = "predict"\nquestion = "q"\nchoices = ["x", "y"]\nanswer = 3\n', 16, "answer must be the number of a choice"),
        (lambda t: t + '\n[[steps]]\ncaption = "p"\naction = "prune"\namount = 1.5\n', 14, "amount must be between 0 and 1"),
        (lambda t: t + '\n[[steps]]\ncaption = "p"\naction = "sweep"\nmethods = ["magnitude", "dice"]\n', 14, "must be one of"),
        (lambda t: t + '\n[[steps]]\ncaption = "p"\naction = "evaluate"\nrecord = "b"\nshow = "boundary"\n', 15, "needs a [problem] lesson"),
        (lambda t: t.replace('model = "demo:mlp"\ndata = "demo:digits"\n', '[problem]\nkind = "circles"\n').replace('claim = "a > 0.5"\n', "").replace('title = "t"\n', 'title = "t"\nclaim = "a > 0.5"\n'), 4, "unknown problem kind 'circles'"),
    ],
)
def test_broken_lessons_name_file_and_line(edit, line, words):
    with pytest.raises(LessonError) as info:
        parse(edit(GOOD))
    msg = str(info.value)
    assert msg.startswith(f"x.toml, line {line}: "), msg
    assert words in msg, msg
    assert "\n" not in msg


def test_broken_file_through_the_cli_is_one_line(tmp_path, capsys):
    bad = tmp_path / "mine.toml"
    bad.write_text(GOOD.replace('action = "evaluate"', 'action = "prunee"'))
    assert main(["lesson", "run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("pruneviz: error: mine.toml, line 8: step 1: unknown action 'prunee'")
    assert not (tmp_path / "o").exists()
    bad.write_bytes(b'title = "\xff"\n')
    assert main(["lesson", "run", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "mine.toml, line 1: not UTF-8 text" in capsys.readouterr().err


def test_unknown_lesson_and_bad_out(tmp_path, capsys):
    assert main(["lesson", "run", "nope", "--out", str(tmp_path)]) == 2
    assert "no lesson named 'nope'; lessons are: playground, node-loop" in capsys.readouterr().err
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["lesson", "run", "criteria", "--out", str(f)]) == 2
    assert "is a file: give a directory" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the claim
@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("a > b", {"a": 2, "b": 1}, True),
        ("a > b", {"a": 1, "b": 1}, False),
        ("a >= b and not c < 0", {"a": 1, "b": 1, "c": 0}, True),
        ("a - b >= 0.05 or c == 3", {"a": 0.5, "b": 0.49, "c": 3}, True),
        ("a - b >= 0.05 or c == 3", {"a": 0.5, "b": 0.49, "c": 2}, False),
        ("abs(a - b) < 1e-3", {"a": 0.3, "b": 0.3004}, True),
        ("-a * 2 + (b / 4) <= 1", {"a": -1, "b": -4}, True),
        ("-a * 2 + (b / 4) < 1", {"a": -1, "b": -4}, False),
        ("a - b - c > 0", {"a": 1, "b": 0.5, "c": 0.6}, False),
        ("a / b > 1", {"a": 1, "b": 0}, True),  # x/0 is +inf for x > 0, no exception
        ("1 < 2 and a != a", {"a": float("nan")}, True),
    ],
)
def test_claim_grammar_matches_python(text, env, expected):
    claim = parse_claim(text)
    env = {k: float(v) for k, v in env.items()}
    assert claim.evaluate(env) is expected
    if "/ b" not in text:  # Python itself is the oracle (it raises on x/0 where claims give inf)
        assert bool(eval(text, {"abs": abs}, dict(env))) is expected  # noqa: S307 - test oracle
    assert claim.names == {n for n in env}


@pytest.mark.parametrize("text", ["a > ", "a >> b", "a > b c", "(a > b", "a.b > 1", "a > b; import os", "lambda: 1 > 0", "a[0] > 1", ""])
def test_claim_grammar_refuses(text):
    with pytest.raises(LessonError):
        parse_claim(text)


def test_spearman_matches_the_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert spearman(a, 3 * a + 1) == pytest.approx(1.0)
    assert spearman([1, 1, 2], [3, 2, 1]) == pytest.approx(-np.sqrt(3) / 2)  # ties share ranks
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # not defined: the one documented answer
    assert spearman(torch.tensor([1.0, 1.0, 1.0]), [1, 2, 3]) is None


# ------------------------------------------------------------------------------- the engine
def test_list_shows_what_waiting_lessons_need(capsys):
    assert main(["lesson", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out]
    assert names == RUNNABLE  # every lesson runs with this engine
    assert not any("needs" in line for line in out)


@pytest.mark.parametrize("name", sorted(WAITING))
def test_lesson_needing_a_missing_verb_is_refused_naming_it(name, tmp_path, capsys, monkeypatch):
    """An engine without the verb a lesson needs (an older pruneviz reading a newer lesson) refuses it
    in one line; the verb is hidden from the lesson loader, the lesson itself is the shipped one."""
    real = lessons.has_verb
    monkeypatch.setattr(lessons, "has_verb", lambda verb: verb != WAITING[name] and real(verb))
    assert main(["lesson", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.split()[0] == name]
    assert len(listed) == 1 and listed[0].endswith(f"(needs: {WAITING[name]})")
    assert main(["lesson", "run", name, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pruneviz: error: lesson '{name}' needs Session.{WAITING[name]}, which this version of pruneviz does not have yet"]


def test_sweep_step_equals_plain_verbs():
    """The sweep action's figures are Session.prune + evaluate from the unpruned model, and it leaves the model as it was."""
    lesson = parse(GOOD.replace('claim = "a > 0.5"', 'claim = "accuracy_random_50 < accuracy_magnitude_50"') + '\n[[steps]]\ncaption = "s"\naction = "sweep"\nmethods = ["magnitude", "random"]\nlevels = [0.5, 0.8]\n')
    run = lessons.LessonRun(lesson)
    results = list(run.run())
    s = run.session
    assert s.sparsity() == 0.0
    oracle = Session.open("demo:mlp", data="demo:digits", device="cpu")
    for m in ("magnitude", "random"):
        for lv in (0.5, 0.8):
            oracle.prune(lv, method=m)
            assert run.figures[f"accuracy_{m}_{round(lv * 100)}"] == oracle.evaluate().accuracy
            oracle.undo()
    assert results[1].charts[0]["kind"] == "lines" and len(results[1].charts[0]["series"]) == 2
    assert run.holds()


def _calib_loss(s) -> float:
    """The oracle for knockout figures: the mean loss over the session's calibration tensors (what
    knockout measures on), by a plain torch loop."""
    import torch.nn.functional as F

    x, y = s.calib.tensors()
    with torch.no_grad():
        return sum(float(F.cross_entropy(s.model(x[i : i + 100]), y[i : i + 100], reduction="sum")) for i in range(0, len(x), 100)) / len(x)


@pytest.mark.slow  # a lesson run (knockout of every neuron); quick: test_analysis.py::test_knockout_equals_removing_each_neuron_alone
def test_knockout_step_equals_removing_each_neuron():
    lesson = parse(GOOD.replace('claim = "a > 0.5"', 'claim = "spearman_magnitude > -1"') + '\n[[steps]]\ncaption = "k"\naction = "knockout"\nlayer = "2"\nmethods = ["magnitude"]\n')
    run = lessons.LessonRun(lesson)
    list(run.run())
    s = run.session
    base = _calib_loss(s)
    inc = []
    for i in range(64):
        s.prune_neurons("2", [i])
        inc.append(_calib_loss(s) - base)
        s.undo()
    expected = spearman(s.scores("2", method="magnitude", granularity="neuron").numpy(), inc)
    assert run.figures["spearman_magnitude"] == pytest.approx(expected)
    assert run.figures["knockout_max_loss_increase"] == pytest.approx(max(inc))
    assert s.history.index == 0


def test_back_restores_session_and_figures():
    lesson = parse(GOOD + '\n[[steps]]\ncaption = "p"\naction = "prune"\namount = 0.5\nrecord = "b"\n')
    run = lessons.LessonRun(lesson)
    list(run.run())
    s = run.session
    assert s.sparsity() > 0.49 and "b" in run.figures
    run.back()
    assert s.sparsity() == 0.0 and "b" not in run.figures and run.done == 1
    gen = run.step_iter()
    with pytest.raises(StopIteration):
        while True:
            next(gen)
    assert run.done == 2 and s.sparsity() > 0.49


def test_a_failing_step_leaves_the_session_as_before():
    lesson = parse(GOOD + '\n[[steps]]\ncaption = "p"\naction = "prune_neurons"\nlayer = "0"\nneurons = [1, 999]\n')
    run = lessons.LessonRun(lesson)
    with pytest.raises(Exception, match="out of range"):
        list(run.run())
    assert run.session.sparsity() == 0.0 and run.done == 1


@pytest.mark.slow  # a lesson run training the toy problem twice; quick: test_toy_training_is_torch_adam
def test_toy_problem_is_deterministic_and_learns():
    a = toy.open_problem({"kind": "xor", "epochs": 200}, seed=3)
    b = toy.open_problem({"kind": "xor", "epochs": 200}, seed=3)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert a.evaluate().accuracy > 0.9
    grid = toy.boundary(a, 32)
    assert grid.shape == (32, 32) and 0 <= grid.min() and grid.max() <= 1
    # the grid agrees with the model's own class decision on the held-out points' plane
    x0, x1, y0, y1 = toy.BOUNDS
    with torch.no_grad():
        corner = a.model(torch.tensor([[x1, y1]])).softmax(1)[0, 1]
    assert grid[-1, -1] == pytest.approx(float(corner), abs=1e-5)


# ------------------------------------------------------------------- every lesson's claim
@pytest.mark.slow
@pytest.mark.parametrize("name", RUNNABLE)
def test_lesson_claim_holds(name, tmp_path, capsys):
    out = tmp_path / name
    code = main(["lesson", "run", name, "--out", str(out)])
    text = capsys.readouterr()
    assert code == 0, text.out + text.err
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {"lesson", "claim", "holds", "holds_on_mean", "share", "held_on", "seeds", "seeded", "figures", "mean", "std", "per_seed", "seconds"}
    lesson = lessons.load(name)
    assert result["lesson"] == name and result["holds"] is True
    assert result["claim"] == lesson.claim.text
    # the verdict is the claim decided over the per-seed figures: on the mean and on the share
    assert result["seeds"] == list(range(lesson.seed, lesson.seed + lesson.seeds)) and len(result["per_seed"]) == lesson.seeds
    per = [p["figures"] for p in result["per_seed"]]
    verdict = decide(lesson.claim, per, lesson.share)
    assert verdict.holds and verdict.holds_on_mean and verdict.held_on == result["held_on"] >= verdict.needed
    assert lesson.claim.evaluate(result["mean"]) and result["figures"] == result["mean"]
    for k in lesson.claim.names:
        assert result["mean"][k] == pytest.approx(np.mean([f[k] for f in per]), abs=2e-6)
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    page = (out / "handout.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w|src=['\"](?!data:)|href=|@import|url\(", page), "the handout must be self-contained"
    for step in lessons.load(name).steps:
        assert _html_escape(step["caption"]) in page
    from pruneviz.core.lesson_labels import human

    for figure in result["figures"]:  # every measured number is on the handout, in words
        assert f"<td title='{figure}'>{_html_escape(human(figure))}</td>" in page


def _html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_toy_training_is_torch_adam():
    """The written-out Adam of the playground equals torch.optim.Adam step for step."""
    x, y = (torch.from_numpy(a) for a in toy.points("moons", 64, 0.1, 0))
    ours = toy.mlp([6])
    toy.train(ours, x, y, epochs=15, lr=0.02, seed=1)
    ref = toy.mlp([6])
    toy.train(ref, x, y, epochs=0, lr=0.02, seed=1)  # the same seeded initial weights
    opt = torch.optim.Adam(ref.parameters(), lr=0.02)
    for _ in range(15):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(x), y).backward()
        opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _teaching_section() -> str:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return readme.split("## Teaching with pruneviz", 1)[1].split("\n## ", 1)[0]


def teaching_commands() -> list[str]:
    """The commands of the README's "Teaching with pruneviz" section (also used by the Qt tests)."""
    block = re.search(r"```bash\n(.*?)```", _teaching_section(), re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_teaching_commands(tmp_path, monkeypatch, capsys):
    import shlex

    monkeypatch.chdir(tmp_path)
    lesson_cmds = [c for c in teaching_commands() if c.startswith("pruneviz lesson")]
    assert len(lesson_cmds) == 2
    for cmd in lesson_cmds:
        assert main(shlex.split(cmd)[1:]) == 0
    out = capsys.readouterr().out
    assert "criteria" in out and "holds" in out
    assert json.loads((tmp_path / "lesson-criteria" / "result.json").read_text())["holds"] is True


def test_readme_lesson_example_runs(tmp_path, capsys):
    text = re.search(r"```toml\n(.*?)```", _teaching_section(), re.S).group(1)
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["lesson"] == "mine" and result["holds"] is True
    assert set(result["figures"]) == {"baseline", "baseline_loss", "half", "half_loss"}
    for name in ("evaluate", "prune", "prune_neurons", "restore_neurons", "undo", "reset", "loop", "sweep", "scopes", "knockout", "predict", "sensitivity", "finetune", "train", "compensate"):
        assert f"`{name}`" in _teaching_section() and name in ACTIONS  # the README lists every action
    assert set(ACTIONS) == {"evaluate", "prune", "prune_neurons", "restore_neurons", "undo", "reset", "loop", "sweep", "scopes", "knockout", "predict", "sensitivity", "finetune", "train", "compensate"}


@pytest.mark.slow  # a subprocess running a lesson; the quick loop's import check is test_cli.py::test_core_and_cli_never_import_qt
def test_lesson_engine_never_imports_qt():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pruneviz.core import lessons\n"
        "import pruneviz.cli\n"
        "pruneviz.cli.main(['lesson', 'list'])\n"
        "run = lessons.LessonRun(lessons.load('playground'))\n"
        "list(run.run()); assert run.holds()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt', 'shiboken6') or m.startswith('pruneviz.qt')]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow  # lesson runs of a sweep and a knockout; quick: test_sweep_step_equals_plain_verbs
def test_sweep_and_knockout_figures_equal_prune_evaluate_undo():
    """The sweep and knockout actions measure through Session.sweep / Session.knockout (on a
    copy); their figures equal pruning the live session, evaluating and undoing, by hand."""
    text = GOOD + '\n[[steps]]\ncaption = "s"\naction = "sweep"\nmethods = ["magnitude", "random"]\nlevels = [0.0, 0.5]\n'
    text += '\n[[steps]]\ncaption = "k"\naction = "knockout"\nlayer = "2"\nmethods = ["magnitude"]\n'
    run = lessons.LessonRun(parse(text))
    list(run.run())
    s = Session.open("demo:mlp", data="demo:digits")
    for method in ("magnitude", "random"):
        for level in (0.0, 0.5):
            n = s.prune(level, method=method) if level else 0
            assert run.figures[f"accuracy_{method}_{pct(level)}"] == s.evaluate().accuracy, (method, level)
            if n:
                s.undo()
    base = _calib_loss(s)
    increase = []
    for i in range(s.layer("2").out_channels):
        s.prune_neurons("2", [i])
        increase.append(_calib_loss(s) - base)
        s.undo()
    assert run.figures["knockout_neurons"] == len(increase)
    assert run.figures["knockout_max_loss_increase"] == pytest.approx(max(increase), abs=1e-9)
    scores = s.scores("2", method="magnitude", granularity="neuron").numpy()
    assert run.figures["spearman_magnitude"] == pytest.approx(spearman(scores, increase), abs=1e-9)


def test_a_new_verb_makes_a_waiting_lesson_runnable(monkeypatch, tmp_path, capsys):
    """finetune is one registry entry: with a Session.finetune of the agreed shape, the
    fine-tune lesson is listed without 'needs' and its step drives the generator."""
    from types import SimpleNamespace

    seen = []

    def finetune(self, epochs=1, lr=None, data=None, optimizer="adam", batch_size=None, cancel=None):
        for e in range(1, epochs + 1):
            seen.append(e)
            yield SimpleNamespace(step=e, epoch=e, loss=1.0 / e, accuracy=0.5 + 0.1 * e, sparsity=self.sparsity())
        return SimpleNamespace(curve=[], label="fine-tune")

    assert lessons.load("fine-tune").needs == (["finetune"] if not lessons.has_verb("finetune") else [])
    monkeypatch.setattr(Session, "finetune", finetune, raising=False)
    assert lessons.load("fine-tune").runnable
    assert main(["lesson", "list"]) == 0
    assert "needs: finetune" not in capsys.readouterr().out
    text = GOOD + '\n[[steps]]\ncaption = "f"\naction = "finetune"\nepochs = 3\nrecord = "tuned"\n'
    run = lessons.LessonRun(parse(text, has_verb=lessons.has_verb))
    results = list(run.run())
    assert seen == [1, 2, 3] and "tuned" in run.figures
    curve = results[-1].charts[0]["series"][0]
    # the curve starts where training starts (epoch 0: the model before it), then one point per epoch
    assert curve["x"] == [0, 1, 2, 3] and curve["y"] == pytest.approx([run.figures["a"], 0.6, 0.7, 0.8])
    assert results[-1].charts[0]["hlines"][0]["y"] == pytest.approx(run.session.baseline().accuracy)


def test_sensitivity_action_follows_the_agreed_shape(monkeypatch):
    """The sensitivity action (for global-vs-layer once the analysis engine lands) drives a
    Session.sensitivity generator of the agreed point shape; without the verb a lesson using it waits."""
    text = GOOD.replace('claim = "a > 0.5"', 'claim = "sensitivity_4_90 < sensitivity_0_90"') + '\n[[steps]]\ncaption = "s"\naction = "sensitivity"\nlevels = [0.5, 0.9]\n'
    if not lessons.has_verb("sensitivity"):
        assert parse(text, has_verb=lessons.has_verb).needs == ["sensitivity"]

    def sensitivity(self, layers=None, levels=None, granularity="weight", method="magnitude", cancel=None):
        for layer in [l.name for l in self.layers]:
            for lv in levels:
                self.prune(lv, layers=layer, method=method)
                r = self.evaluate()
                self.undo()
                yield {"layer": layer, "level": lv, "sparsity": lv, "accuracy": r.accuracy, "loss": r.loss}
        return {}

    monkeypatch.setattr(Session, "sensitivity", sensitivity, raising=False)
    run = lessons.LessonRun(parse(text, has_verb=lessons.has_verb))
    results = list(run.run())
    oracle = Session.open("demo:mlp", data="demo:digits", device="cpu")
    oracle.prune(0.9, layers="4")
    assert run.figures["sensitivity_4_90"] == oracle.evaluate().accuracy
    assert [s["name"] for s in results[-1].charts[0]["series"]] == ["layer 0", "layer 2", "layer 4"]


@pytest.mark.slow
def test_training_curves_of_a_lesson_share_one_plot_and_back_drops_one():
    """'when': the after step's chart shows before, during and after on one plot, each curve the
    accuracy its own step recorded at the end; Back drops the last step's curve with the step."""
    run = lessons.LessonRun(lessons.load("when"))
    list(run.run())
    accuracy, sparsity = run.results[-1].charts
    assert [s["name"] for s in accuracy["series"]] == ["before", "during", "after"]
    assert [s["y"][-1] for s in accuracy["series"]] == [run.figures["before_80"], run.figures["during_80"], run.figures["after_80"]]
    # beside accuracy, the sparsity each arm had at each epoch: all at 80 % at the end, 'before' from the start
    assert [s["name"] for s in sparsity["series"]] == ["before", "during", "after"]
    assert [s["x"] for s in sparsity["series"]] == [s["x"] for s in accuracy["series"]]
    assert all(s["y"][-1] == pytest.approx(0.8, abs=0.01) for s in sparsity["series"])
    assert sparsity["series"][0]["x"][0] == 1  # from fresh weights: the curves start at the first epoch, not at the shipped network
    assert sparsity["series"][0]["y"][0] == pytest.approx(0.8, abs=0.01) and sparsity["series"][1]["y"][0] < 0.79
    run.back()
    run.back()
    assert [s["name"] for s in run.results[-1].charts[0]["series"]] == ["before", "during"]
