"""The history as a tree of plans: branches kept, named, returned to; saved, reopened, recovered."""

import pytest
import torch

from pruneviz.core import persist
from pruneviz.core.analysis import collect
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session


def state(s):
    return {k: v.detach().clone() for k, v in s.model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def tree(s):
    """Everything about the history tree that must survive a save: plans, labels, flips, position."""
    h = s.history
    plans = [(p.name, [(n.step.label, [(f.store, f.layer, f.idx.tolist()) for f in n.step.flips]) for n in p.path()]) for p in h.plans()]
    return plans, h.current_plan, h.index, h.labels


@pytest.fixture()
def s():
    return Session.open("demo:mlp", data="demo:digits", device="cpu")


def branchy(s):
    """Two plans sharing their first step; returns the states at the end of each."""
    s.prune(0.3, layers="0")
    s.prune_neurons("2", [1, 2])
    end1 = state(s)
    s.undo()
    s.prune(0.5, scope="global")
    s.prune_neurons("0", [5])
    return end1, state(s)


def test_editing_after_undo_keeps_the_old_branch_as_a_plan(s):
    end1, end2 = branchy(s)
    h = s.history
    assert [p["name"] for p in s.plans()] == ["plan 1", "plan 2"]
    assert h.current_plan == "plan 2" and h.index == 3 and len(h.steps) == 3
    assert h.labels[0] == h.plan("plan 1").path()[0].step.label
    s.switch_plan("plan 1")
    assert same(state(s), end1) and h.index == 2 and h.current_plan == "plan 1"
    assert h.labels[1] == "prune neurons 1, 2 of 2"
    # undo/redo follow the current plan, across the branch point
    s.undo(), s.undo()
    assert s.sparsity() == 0.0
    s.redo(), s.redo()
    assert same(state(s), end1)
    s.switch_plan("plan 2")
    assert same(state(s), end2) and h.index == 3
    s.goto(1)
    s.switch_plan("plan 1")
    assert same(state(s), end1)
    rows = s.plans()
    assert [r["current"] for r in rows] == [True, False] and [r["steps"] for r in rows] == [2, 3]


def test_rename_and_errors(s):
    branchy(s)
    s.rename_plan("plan 1", "gentle")
    assert [p["name"] for p in s.plans()] == ["gentle", "plan 2"]
    with pytest.raises(PrunevizError, match="exists"):
        s.rename_plan("gentle", "plan 2")
    with pytest.raises(PrunevizError, match="no plan named"):
        s.switch_plan("nope")
    # a plan that grows keeps its name; a third branch gets a fresh one
    s.prune_neurons("0", [7])
    assert s.history.current_plan == "plan 2"
    s.goto(0)
    s.prune_neurons("0", [9])
    assert [p["name"] for p in s.plans()] == ["gentle", "plan 2", "plan 3"]


def test_plans_tree_survives_save_and_reopen(s, tmp_path):
    end1, _ = branchy(s)
    s.rename_plan("plan 1", "gentle")
    s.switch_plan("gentle")
    s.undo()
    want = (tree(s), state(s))
    persist.save_session(s, tmp_path / "x.pvz")
    r = persist.load_session(tmp_path / "x.pvz")
    assert tree(r) == want[0] and same(state(r), want[1])
    r.redo()
    assert same(state(r), end1)
    r.switch_plan("plan 2")
    s.redo()
    s.switch_plan("plan 2")
    assert same(state(r), state(s)) and tree(r) == tree(s)


def test_plans_tree_survives_a_crash(s, tmp_path):
    auto = persist.Autosave(s, tmp_path)
    end1, _ = branchy(s)
    s.rename_plan("plan 2", "bold")
    s.switch_plan("plan 1")
    s.undo()
    s.prune_neurons("0", [4])  # a third plan, from the shared first step
    want = (tree(s), state(s))
    # no close(): the journal is what a killed process leaves; a torn last line is dropped
    with open(auto.path, "a") as fh:
        fh.write('{"op": "pu')
    r = persist.load_session(auto.path)
    assert tree(r) == want[0] and same(state(r), want[1])
    r.switch_plan("plan 1")
    assert same(state(r), end1)
    auto.close()


def test_plan_summaries_equal_switching_and_evaluating(s):
    branchy(s)
    before = (tree(s), state(s))
    rows = collect(s.plan_summaries())
    assert tree(s) == before[0] and same(state(s), before[1])
    for row in rows:
        s.switch_plan(row["name"])
        r = s.evaluate()
        assert (row["sparsity"], row["params"], row["accuracy"], row["loss"]) == (s.sparsity(), s.params_remaining(), r.accuracy, r.loss)
        assert row["layer_sparsity"] == {layer.name: s.sparsity(layer.name) for layer in s.layers}


def test_plan_summaries_replay_fine_tuned_and_compensated_steps(s):
    """Plans whose steps changed weights (fine-tuning, compensation) are measured with those weights,
    and the measuring leaves the session bit for bit as it was."""
    from pruneviz.core.training import complete

    s.prune(0.8, layers="0")
    complete(s.finetune(1, lr=1e-3))
    s.undo()
    s.undo()
    s.prune(0.7, compensate=True)
    s.prune_neurons("2", [3])
    before = (tree(s), state(s))
    rows = collect(s.plan_summaries())
    assert tree(s) == before[0] and same(state(s), before[1])
    assert len(rows) == 2
    for row in rows:
        s.switch_plan(row["name"])
        r = s.evaluate()
        assert (row["sparsity"], row["params"], row["accuracy"], row["loss"]) == (s.sparsity(), s.params_remaining(), r.accuracy, r.loss)
