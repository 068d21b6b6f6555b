"""Plan curves: the figures after every step of every plan, measured on a copy, shared steps once.

Oracles: the same steps replayed on a fresh session and evaluated by a plain torch pass; for
weight-changing steps, the real session switched and undone to that step and fully evaluated."""

import threading

import pytest
import torch
import torch.nn.functional as F

from pruneviz.core import plans
from pruneviz.core.analysis import collect
from pruneviz.core.session import Session
from pruneviz.core.workers import Probe

# three plans: A and B share their first step; C branches off at the start
OP = {
    "a1": lambda s: s.prune(0.3, layers="0"),
    "a2": lambda s: s.prune_neurons("2", [1, 2]),
    "a3": lambda s: s.prune(0.6, scope="global"),
    "b2": lambda s: s.prune(0.5, scope="global"),
    "b3": lambda s: s.prune_neurons("0", [5, 9]),
    "c1": lambda s: s.prune_neurons("2", [0, 3, 4, 7]),
}
RECIPES = {"plan 1": ["a1", "a2", "a3"], "plan 2": ["a1", "b2", "b3"], "plan 3": ["c1"]}


def drain(gen) -> tuple[list, object]:
    """Every item a generator yields, and what it returns."""
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            return items, stop.value


def open_mlp(data=True):
    return Session.open("demo:mlp", data="demo:digits" if data else None, device="cpu")


def build(s):
    for op in RECIPES["plan 1"]:
        OP[op](s)
    s.goto(1)
    for op in RECIPES["plan 2"][1:]:
        OP[op](s)
    s.goto(0)
    OP["c1"](s)
    assert [p["name"] for p in s.plans()] == list(RECIPES)
    return s


def snapshot(s):
    """Everything measuring must leave alone: values, masks, originals, the history's place and shape."""
    h = s.history
    return (
        {k: v.detach().clone() for k, v in s.model.state_dict().items()},
        {k: v.clone() for k, v in s.masks.elem.items()},
        {k: v.clone() for k, v in s.masks.chan.items()},
        {k: v.clone() for k, v in s.masks.orig.items()},
        (h.index, h.current_plan, h.labels, [(p.name, len(p.path())) for p in h.plans()]),
    )


def same(a, b):
    for x, y in zip(a[:4], b[:4]):
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return a[4] == b[4]


def plain(s):
    """Accuracy and loss by a plain torch pass over the evaluation tensors (no cache, no batches)."""
    x, y = s.eval_tensors()
    with torch.no_grad():
        out = s.model(x)
    return int((out.argmax(1) == y).sum()) / len(y), float(F.cross_entropy(out, y))


def test_each_curve_point_equals_replaying_that_prefix_on_a_fresh_session():
    s = build(open_mlp())
    rows = collect(s.plan_summaries())
    assert [r["name"] for r in rows] == list(RECIPES)
    for row in rows:
        ops = RECIPES[row["name"]]
        assert [p["step"] for p in row["curve"]] == list(range(len(ops) + 1)) and row["curve"][0]["label"] == "start"
        fresh = open_mlp()
        for k, point in enumerate(row["curve"]):
            if k:
                OP[ops[k - 1]](fresh)
                assert point["label"] == fresh.history.labels[-1]
            acc, loss = plain(fresh)
            full = fresh.evaluate(incremental=False)
            assert (point["sparsity"], point["params"]) == (fresh.sparsity(), fresh.params_remaining())
            assert point["accuracy"] == acc == full.accuracy
            assert point["loss"] == full.loss and point["loss"] == pytest.approx(loss, rel=1e-5)
        # the end of the curve is the row's end figures
        end = row["curve"][-1]
        assert (row["sparsity"], row["params"], row["accuracy"], row["loss"]) == (end["sparsity"], end["params"], end["accuracy"], end["loss"])
        assert row["per_class"] == full.per_class and row["steps"] == len(ops)
    # plans differ after they branch: the curves are not copies of one another
    assert rows[0]["curve"][2]["sparsity"] != rows[1]["curve"][2]["sparsity"]


def test_shared_steps_are_measured_once_and_carry_one_id(monkeypatch):
    s = build(open_mlp())
    states = []
    real = Probe.evaluate

    def counting(self):
        states.append(tuple(self.masks.pruned_count(n) for n in self.layer_names))
        return real(self)

    monkeypatch.setattr(Probe, "evaluate", counting)
    items, rows = drain(s.plan_summaries())
    # the tree: start, a1, a2, a3, b2, b3, c1 = 7 nodes; the three curves have 4 + 4 + 2 = 10 points
    assert plans.points_to_measure(s) == 7 == len(states) == len(set(states))
    assert sum(len(r["curve"]) for r in rows) == 10
    a, b, c = (r["curve"] for r in rows)
    assert [p["id"] for p in a[:2]] == [p["id"] for p in b[:2]] and a[2]["id"] != b[2]["id"]
    assert c[0]["id"] == a[0]["id"] and c[1]["id"] not in {p["id"] for p in a + b}
    # progress: one point item per evaluation, counting up to the total; a plan item per plan
    points = [i for i in items if i["kind"] == "point"]
    assert [i["measured"] for i in points] == list(range(1, 8)) and {i["total"] for i in items} == {7}
    assert [i["row"]["name"] for i in items if i["kind"] == "plan"] == list(RECIPES)
    assert points[0]["plans"] == list(RECIPES) and points[1]["plans"] == ["plan 1", "plan 2"]


class _Recording(Probe):
    made: list = []

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _Recording.made.append(self)


def probe_is_back(s, probe):
    """The copy ends where it started: the session's values and masks, bit for bit."""
    sd, pd = s.model.state_dict(), probe.model.state_dict()
    return all(torch.equal(sd[k], pd[k]) for k in sd) and all(torch.equal(s.masks.elem[n], probe.masks.elem[n]) for n in s.masks.elem) and all(
        torch.equal(s.masks.chan[n], probe.masks.chan[n]) for n in s.masks.chan) and all(torch.equal(s.masks.orig[n], probe.masks.orig[n]) for n in s.masks.orig)


@pytest.mark.parametrize("how", ["done", "cancel", "close", "error"])
def test_the_session_and_the_copy_end_as_they_started(how, monkeypatch):
    from pruneviz.core.training import complete

    s = build(open_mlp())
    s.switch_plan("plan 1")
    s.goto(1)
    complete(s.finetune(1, lr=1e-3))  # a weight-changing step in a fourth plan
    s.prune_neurons("0", [2])
    s.switch_plan("plan 2")
    s.undo()  # start mid-path: the copy must come back here, not to a plan's end
    before = snapshot(s)
    _Recording.made = []
    monkeypatch.setattr(plans, "Probe", _Recording)
    if how == "error":
        real, calls = Probe.evaluate, []

        def failing(self):
            calls.append(1)
            if len(calls) == 4:
                raise RuntimeError("out of memory")
            return real(self)

        monkeypatch.setattr(Probe, "evaluate", failing)
    cancel = threading.Event()
    gen = s.plan_summaries(cancel)
    seen = 0
    if how == "error":
        with pytest.raises(RuntimeError, match="out of memory"):
            for _ in gen:
                pass
    else:
        for item in gen:
            seen += item["kind"] == "point"
            if seen == 4 and how == "cancel":
                cancel.set()
            if seen == 4 and how == "close":
                gen.close()
                break
    assert same(snapshot(s), before)
    assert len(_Recording.made) == 1 and probe_is_back(s, _Recording.made[0])
    if how == "cancel":
        assert seen == 4


@pytest.mark.slow  # fine-tuning and compensation replayed per step; quick: test_each_curve_point_equals_replaying_that_prefix_on_a_fresh_session
def test_plans_with_fine_tuned_and_compensated_steps_equal_the_session_undone_to_each_step():
    from pruneviz.core.training import complete

    s = open_mlp()
    s.prune(0.8, layers="0")
    complete(s.finetune(1, lr=1e-3))
    s.prune_neurons("2", [3])
    s.goto(1)
    s.prune(0.7, compensate=True)
    complete(s.finetune(1, lr=1e-3))
    assert [p["name"] for p in s.plans()] == ["plan 1", "plan 2"] and s.history.steps[-1].weights is not None
    before = snapshot(s)
    rows = collect(s.plan_summaries())
    assert same(snapshot(s), before)
    for row in rows:
        s.switch_plan(row["name"])
        for k, point in enumerate(row["curve"]):
            s.goto(k)
            full = s.evaluate(incremental=False)
            acc, loss = plain(s)
            assert (point["sparsity"], point["params"], point["accuracy"], point["loss"]) == (s.sparsity(), s.params_remaining(), full.accuracy, full.loss)
            assert acc == full.accuracy and loss == pytest.approx(full.loss, rel=1e-5)
    # fine-tuning changed the figures at equal sparsity: the curve has a step with no new pruning
    c = rows[0]["curve"]
    assert c[2]["sparsity"] == c[1]["sparsity"] and c[2]["loss"] != c[1]["loss"]


def test_without_data_the_curves_have_sparsity_and_params_only():
    s = build(open_mlp(data=False))
    rows = collect(s.plan_summaries())
    fresh = open_mlp(data=False)
    for k, point in enumerate(rows[0]["curve"]):
        if k:
            OP[RECIPES["plan 1"][k - 1]](fresh)
        assert (point["sparsity"], point["params"], point["accuracy"], point["loss"]) == (fresh.sparsity(), fresh.params_remaining(), None, None)
    assert rows[0]["per_class"] is None


def test_a_session_with_no_steps_has_one_plan_with_one_point():
    s = open_mlp()
    (row,) = collect(s.plan_summaries())
    assert row["steps"] == 0 and row["current"] and len(row["curve"]) == 1
    assert row["curve"][0]["accuracy"] == s.evaluate(incremental=False).accuracy == row["accuracy"]


def test_an_edit_while_measuring_is_not_measured_and_breaks_nothing():
    """The app stays usable while plans are measured in the worker: an edit made meanwhile grows
    the current plan (its name moves to the new step); the measuring goes on over the tree it began with."""
    s = build(open_mlp())
    want = collect(s.plan_summaries())
    gen = s.plan_summaries()
    items = [next(gen), next(gen)]
    s.prune_neurons("2", [8])  # plan 3 grows by one step
    more, rows = drain(gen)
    items += more
    assert rows == want
    assert [i["measured"] for i in items if i["kind"] == "point"] == list(range(1, 8)) and {i["total"] for i in items} == {7}
    assert [len(r["curve"]) for r in collect(s.plan_summaries())] == [4, 4, 3]


@pytest.mark.slow  # a benchmark smoke run; quick: the plan-curve oracles above
def test_the_benchmark_runs_and_its_curves_equal_replaying_in_the_session():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "plans.py"
    spec = importlib.util.spec_from_file_location("plans_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    fig = bench.figures(quick=True)
    assert fig["plan_curves_exact"] is True
    assert fig["plan_curves_evaluations"] == 15 and fig["plan_curves_points"] == 21
    assert fig["plan_curves_ms_min"] <= fig["plan_curves_ms"] <= fig["plan_curves_ms_max"] and fig["plan_curves_ratio"] > 0
