"""The node-pruning loop's one rule (pruneviz.core.prune_loop), as Session.prune_loop runs it and
as the app drives it step by step."""

import pytest

from pruneviz.core.errors import PrunevizError
from pruneviz.core.prune_loop import PruneLoop
from pruneviz.core.session import Session


def _session():
    return Session.open("demo:mlp", data="demo:digits")


def test_driving_the_rule_by_hand_equals_the_generator():
    a, b = _session(), _session()
    bound = a.baseline().accuracy - 0.01  # reached after about 55 steps
    by_generator = [target for target, _ in a.prune_loop("magnitude", min_accuracy=bound, max_steps=500)]
    loop = PruneLoop(b, "magnitude", min_accuracy=bound, max_steps=500)
    by_hand = []
    while loop.stop_before() is None and (target := loop.step()) is not None:
        by_hand.append(target)
        if loop.judge(b.evaluate()) is not None:
            break
    assert by_hand == by_generator and len(by_hand) > 1
    assert a.history.index == b.history.index == len(by_hand) - 1  # the step that fell below is undone
    assert "fell below" in loop.why
    assert b.evaluate().accuracy >= bound > b.evaluate().accuracy - 1  # it ends on a step that met the bound


@pytest.mark.parametrize("kw,why", [(dict(max_steps=3), "step limit reached"), (dict(target_sparsity=0.02), "sparsity reached")])
def test_each_stop_condition(kw, why):
    s = _session()
    loop = PruneLoop(s, "magnitude", **kw)
    while loop.stop_before() is None and loop.step() is not None:
        loop.judge(None)
    assert loop.why.startswith(why)
    if "target_sparsity" in kw:
        assert s.sparsity() >= kw["target_sparsity"]
    else:
        assert loop.steps == s.history.index == 3


def test_an_accuracy_bound_without_data_is_refused_before_any_step():
    s = Session.open("demo:mlp")
    with pytest.raises(PrunevizError, match="needs evaluation data"):
        PruneLoop(s, min_accuracy=0.5)
    assert s.history.index == 0
