"""Benchmark of measuring plans (their ends and curves), registered in run.py.

- ``plan_curves_ms``: :meth:`Session.plan_summaries` of three plans of demo:cnn (4 steps each after
  2 shared steps: 21 curve points, 15 distinct steps with the start) on a copy;
- ``plan_curves_replay_ms``: the simplest way to get the same curves: in the session, switch to each
  plan, go to each step, evaluate fully (21 evaluations);
- ``plan_curves_ratio``: the first over the second, interleaved in one run (lower is better);
- ``plan_curves_exact``: both give the same sparsity, accuracy and loss at every point.
"""

from __future__ import annotations

import statistics
import time

from pruneviz.core.analysis import collect
from pruneviz.core.session import Session


def _tree(device: str) -> Session:
    s = Session.open("demo:cnn", data="demo:digits", device=device)
    s.prune(0.2, scope="global")
    s.prune(0.4, scope="global")
    late = s.layers[-2].name
    for b in range(3):
        s.goto(2)
        for a in (0.5, 0.6, 0.7, 0.8):
            if b == 0:
                s.prune(a, scope="global")
            elif b == 1:
                s.prune(a + 0.03, scope="layer")
            else:
                s.prune(a, layers=late)  # a late layer only: the cached activations before it serve
    return s


def _replay(s: Session, rows: list[dict]) -> list[list[tuple]]:
    here, out = s.history.current_plan, []
    for row in rows:
        s.switch_plan(row["name"])
        curve = []
        for k in range(len(row["curve"])):
            s.goto(k)
            r = s.evaluate(incremental=False)
            curve.append((s.sparsity(), r.accuracy, r.loss))
        out.append(curve)
    s.switch_plan(here)
    return out


def figures(quick: bool, device: str = "cpu") -> dict:
    s = _tree(device)
    repeat = 3 if quick else 9
    rows = collect(s.plan_summaries())  # warm-up
    t_curves, t_replay = [], []
    for _ in range(repeat):  # interleaved: load from other processes hits both alike
        t0 = time.perf_counter()
        rows = collect(s.plan_summaries())
        t_curves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        replayed = _replay(s, rows)
        t_replay.append(time.perf_counter() - t0)
    mine = [[(p["sparsity"], p["accuracy"], p["loss"]) for p in row["curve"]] for row in rows]
    out: dict = {}
    for key, ts in (("plan_curves_ms", t_curves), ("plan_curves_replay_ms", t_replay)):
        out[key] = statistics.median(ts) * 1000
        out[key + "_min"], out[key + "_max"] = min(ts) * 1000, max(ts) * 1000
    out["plan_curves_ratio"] = statistics.median(t_curves) / statistics.median(t_replay)
    out["plan_curves_points"] = sum(len(row["curve"]) for row in rows)
    out["plan_curves_evaluations"] = len({p["id"] for row in rows for p in row["curve"]})
    out["plan_curves_exact"] = mine == replayed
    return out
