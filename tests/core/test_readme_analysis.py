"""The README's analysis example (its second Python block) runs and does what its comments say."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.slow
def test_analysis_python_example(tmp_path, monkeypatch, capsys):
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "sensitivity(" in b)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    s, plan = ns["s"], ns["plan"]
    assert list(plan) == ["1", "4", "8", "12", "14"]
    # the comment's plan: the curves are measured on the calibration split (demo:digits-train)
    assert plan["1"] == 0.0 and abs(plan["4"] - 0.3) < 1e-3 and abs(plan["14"] - 0.1) < 1e-9 and 0.43 < plan["8"] < 0.44 and 0.70 <= plan["12"] < 0.71
    assert [p["name"] for p in s.plans()] == ["by sensitivity", "plan 2"] and s.history.current_plan == "by sensitivity"
    assert s.history.labels == ["prune to a sensitivity plan (magnitude)"]
    curve = ns["rows"][0]["curve"]  # the comment's figures: the start, then the allocation
    assert [(p["step"], round(p["sparsity"], 4), round(p["accuracy"], 4)) for p in curve] == [(0, 0.0, 0.9972), (1, 0.6, 0.9944)]
    assert ns["rows"][0]["name"] == "by sensitivity" and curve[1]["accuracy"] == s.evaluate(incremental=False).accuracy
    assert set(ns["ko"]["faithfulness"]) >= {"taylor", "magnitude"} and len(ns["curves"]["curves"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 10 and printed[0].split()[0] == "14"
