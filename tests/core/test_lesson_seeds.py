"""Claims decided over seeds: the aggregation (mean, std, share) on synthetic per-seed figures,
the ``seeds`` / ``share`` keys of a lesson file, the spread drawn into charts, a real lesson run on
several seeds through Python and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pruneviz.cli import main
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_claim import DEFAULT_SHARE, decide, mean_std
from pruneviz.core.lesson_format import LessonError, parse_claim, parse_lesson
from pruneviz.core.lesson_seeds import LessonSeeds, spread

A_GT_B = parse_claim("a > b")


# ------------------------------------------------------------------- the aggregation itself
def test_mean_holds_but_too_few_seeds_do_so_the_claim_does_not_hold():
    per_seed = [{"a": 10.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, {"a": 0.0, "b": 1.0}]  # mean a = 3.33 > b = 0.67
    v = decide(A_GT_B, per_seed, share=0.6)
    assert v.holds_on_mean and v.held == (True, False, False) and v.held_on == 1 and v.needed == 2
    assert v.holds is False


def test_enough_seeds_hold_but_the_mean_does_not_so_the_claim_does_not_hold():
    per_seed = [{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 10.0}]  # 2 of 3 hold, mean a < b
    v = decide(A_GT_B, per_seed, share=0.6)
    assert v.held_on == 2 and not v.holds_on_mean and v.holds is False


def test_mean_and_share_both_hold():
    per_seed = [{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.5}]
    v = decide(A_GT_B, per_seed, share=0.6)
    assert v.holds_on_mean and v.held_on == 2 and v.holds is True
    assert decide(A_GT_B, per_seed, share=1.0).holds is False  # every seed needed: one fails
    assert decide(A_GT_B, per_seed, share=0.0).holds is True  # the mean alone


@pytest.mark.parametrize("n, share, needed", [(1, 0.6, 1), (2, 0.6, 2), (3, 0.6, 2), (5, 0.6, 3), (5, 0.8, 4), (4, 0.5, 2), (3, 1.0, 3)])
def test_the_share_needed_rounds_up(n, share, needed):
    per_seed = [{"a": 1.0, "b": 0.0}] * n
    assert decide(A_GT_B, per_seed, share).needed == needed
    failing = [{"a": 1.0, "b": 0.0}] * (needed - 1) + [{"a": 1.0, "b": 0.99}] * 0 + [{"a": 0.9, "b": 1.0}] * (n - needed + 1)
    assert decide(A_GT_B, failing, share).held_on == needed - 1
    assert decide(A_GT_B, failing, share).holds is False


def test_mean_and_std_are_numpys_over_the_seeds():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(5, 3))
    per_seed = [{"x": float(r[0]), "y": float(r[1]), "z": float(r[2])} for r in vals]
    mean, std = mean_std(per_seed)
    for j, name in enumerate("xyz"):
        assert mean[name] == pytest.approx(vals[:, j].mean(), abs=1e-12)
        assert std[name] == pytest.approx(vals[:, j].std(ddof=1), abs=1e-12)
    assert mean_std([{"x": 1.0}])[1]["x"] == 0.0
    mean, std = mean_std([{"x": 1.0}, {"x": math.nan}])
    assert math.isnan(mean["x"]) and math.isnan(std["x"])


def test_decide_refuses_nothing_to_decide_and_bad_shares():
    with pytest.raises(LessonError):
        decide(A_GT_B, [], 0.6)
    with pytest.raises(LessonError):
        decide(A_GT_B, [{"a": 1, "b": 0}], 1.5)
    with pytest.raises(LessonError, match="did not record"):
        decide(A_GT_B, [{"a": 1.0}], 0.6)


# ----------------------------------------------------------------------------- the file
LESSON = """\
title = "t"
model = "demo:mlp"
data = "demo:digits"
{extra}
claim = "half < baseline - 0.05"

[[steps]]
caption = "c"
action = "evaluate"
record = "baseline"

[[steps]]
caption = "c"
action = "prune"
amount = 0.5
method = "random"
record = "half"
"""


def test_seeds_and_share_keys_default_and_are_checked():
    lesson = parse_lesson(LESSON.format(extra=""), "x.toml", ACTIONS)
    assert lesson.seeds == 3 and lesson.share == DEFAULT_SHARE == 0.6
    lesson = parse_lesson(LESSON.format(extra="seeds = 5\nshare = 0.8"), "x.toml", ACTIONS)
    assert lesson.seeds == 5 and lesson.share == 0.8
    for extra, words in [("share = 1.5", "share must be from 0 to 1"), ("seeds = 0", "seeds must be from 1"), ('share = "most"', "share must be a number"), ("seeds = 1000", "seeds must be from 1")]:
        with pytest.raises(LessonError, match=words) as info:
            parse_lesson(LESSON.format(extra=extra), "x.toml", ACTIONS)
        assert "x.toml, line 4" in str(info.value)


# ----------------------------------------------------------------------------- the spread
def _lines(ys, x=(1, 2, 3)):
    return {"kind": "lines", "title": "t", "series": [{"name": "s", "x": list(x), "y": list(ys)}]}


def test_spread_of_lines_is_the_mean_with_one_line_per_seed():
    out = spread([_lines([0.1, 0.2, 0.3]), _lines([0.3, 0.4, 0.5])])
    assert out["series"][0]["y"] == pytest.approx([0.2, 0.3, 0.4])
    assert out["series"][0]["seeds"] == [[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]]
    assert "mean of 2 seeds" in out["title"]
    # a series whose x differs between seeds (a loop stopping elsewhere) is the first seed's
    odd = spread([_lines([0.1, 0.2, 0.3]), _lines([0.3, 0.4], x=(1, 2))])
    assert odd["series"][0]["y"] == [0.1, 0.2, 0.3] and "seeds" not in odd["series"][0]
    assert spread([_lines([0.1, 0.2, 0.3])]) == _lines([0.1, 0.2, 0.3])  # one seed: as drawn


def test_spread_of_bars_is_mean_and_std_error_bars():
    bars = [{"kind": "bars", "categories": ["a", "b"], "series": [{"name": "acc", "values": v}]} for v in ([0.5, 0.9], [0.7, 0.9], [0.6, 0.6])]
    out = spread(bars)
    assert out["series"][0]["values"] == pytest.approx([0.6, 0.8])
    assert out["series"][0]["errors"] == pytest.approx([np.std([0.5, 0.7, 0.6], ddof=1), np.std([0.9, 0.9, 0.6], ddof=1)])


# ----------------------------------------------------------------- a real lesson on seeds
def test_a_lesson_on_three_seeds_decides_its_claim_from_the_per_seed_figures(tmp_path):
    from pruneviz.core import lessons

    lesson = parse_lesson(LESSON.format(extra=""), "x.toml", ACTIONS)
    seeds = LessonSeeds(lesson)
    steps = list(seeds.run())
    assert [sd for sd, _ in steps] == [0, 0, 1, 1, 2, 2]
    result = lessons.write_outputs(seeds, tmp_path, None)
    per = [p["figures"] for p in result["per_seed"]]
    assert [p["seed"] for p in result["per_seed"]] == [0, 1, 2]
    assert len({p["half"] for p in per}) == 3  # random pruning: each seed cuts other weights
    assert len({p["baseline"] for p in per}) == 1  # the shipped network: the same for every seed
    assert result["mean"]["half"] == pytest.approx(np.mean([p["half"] for p in per]), abs=2e-6)
    assert result["std"]["half"] == pytest.approx(np.std([p["half"] for p in per], ddof=1), abs=2e-6)
    verdict = decide(lesson.claim, per, lesson.share)
    assert result["holds"] == verdict.holds and result["held_on"] == verdict.held_on
    assert [p["holds"] for p in result["per_seed"]] == [lesson.claim.evaluate(f) for f in per]
    assert json.loads((tmp_path / "result.json").read_text()) == result
    page = (tmp_path / "handout.html").read_text()
    assert "mean ± std" in page and "seeds 0–2" in page


def test_the_cli_takes_seeds_and_refuses_a_bad_count(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(LESSON.format(extra="seeds = 1"))
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "a"), "--seeds", "2"]) == 0
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["seeds"] == [0, 1] and len(result["per_seed"]) == 2
    out = capsys.readouterr().out
    assert "over 2 seeds" in out and "half = " in out and " ± " in out
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "b")]) == 0  # the lesson's own: 1
    assert json.loads((tmp_path / "b" / "result.json").read_text())["seeds"] == [0]
    capsys.readouterr()
    for bad in ("0", "x", "51"):
        try:
            code = main(["lesson", "run", str(path), "--out", str(tmp_path / "c"), "--seeds", bad])
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--seeds" in err[0] and "from 1 to 50" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "c").exists()


def test_a_checkout_runs_its_own_lessons_and_weights():
    """Code run from a source checkout reads that checkout's resources/, not those an editable
    install of another worktree maps pruneviz.resources onto (a lesson edited here runs here)."""
    from pathlib import Path

    import pruneviz
    from pruneviz.core import lessons
    from pruneviz.core.shipped import resources_dir

    checkout = Path(pruneviz.__file__).resolve().parents[1]
    assert resources_dir() == checkout / "resources"
    assert lessons.LESSON_DIR == checkout / "resources" / "lessons"
