"""Budget allocation from sensitivity curves: target met, no layer emptied, better than uniform."""

import pytest
import torch

from pruneviz.core import allocation as al
from pruneviz.core import analysis as an
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session


@pytest.fixture(scope="module")
def cnn_sens():
    # curves measured on the held-out split (360 samples) rather than the default calibration split
    # (1437): four times quicker, and the allocator's promises below hold for whatever data the
    # curves come from; calibrating on the training split is test_scope_sensitivity_... (slow)
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", calib_data="demo:digits")
    return s, an.collect(s.sensitivity())


@pytest.mark.parametrize("target", [0.3, 0.6, 0.8])
def test_allocation_hits_target_and_never_empties_a_layer(cnn_sens, target):
    s, sens = cnn_sens
    plan = s.allocate(target, sens)
    assert set(plan) == {layer.name for layer in s.layers}
    n = s.apply_allocation(plan)
    try:
        assert n > 0 and s.history.labels[-1].startswith("prune to a sensitivity plan")
        assert abs(s.sparsity() - target) <= 0.005
        for layer in s.layers:
            assert int(s.mask(layer.name).sum()) >= 1, layer.name
            assert s.sparsity(layer.name) == pytest.approx(plan[layer.name], abs=1.5 / layer.numel)
    finally:
        s.undo()
    assert s.sparsity() == 0.0 and s.history.index == 0


def test_allocation_at_60_percent_beats_uniform_per_layer_on_demo_cnn(cnn_sens):
    s, sens = cnn_sens
    s.apply_allocation(s.allocate(0.6, sens))
    planned = s.evaluate()
    s.undo()
    s.prune(0.6, scope="layer")
    uniform = s.evaluate()
    s.undo()
    assert planned.accuracy >= uniform.accuracy
    assert planned.loss < uniform.loss


def test_apply_allocation_is_one_undo_step_with_bit_identical_undo():
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.prune_neurons("0", [2])
    before = {n: p.detach().clone() for n, p in s.model.named_parameters()}
    plan = s.allocate(0.5, an.collect(s.sensitivity(levels=[0.3, 0.6, 0.9])))
    steps = s.history.index
    s.apply_allocation(plan)
    assert s.history.index == steps + 1
    s.undo()
    for n, p in s.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_allocation_picks_the_cheapest_segments():
    # two layers: "a" costs 1 per weight, "b" costs 3; the greedy takes "a" first, all of it
    class Fake:
        layers = [type("L", (), {"name": "a", "numel": 100})(), type("L", (), {"name": "b", "numel": 100})()]

        class masks:
            @staticmethod
            def pruned_count(name):
                return 0

    sens = {"granularity": "weight", "baseline": {"loss": 0.0}, "layers": {
        "a": [{"sparsity": 0.5, "loss": 50.0}, {"sparsity": 0.9, "loss": 90.0}],
        "b": [{"sparsity": 0.5, "loss": 150.0}, {"sparsity": 0.9, "loss": 270.0}]}}
    plan = al.allocate(Fake(), 0.5, sens)
    assert plan == pytest.approx({"a": 0.9, "b": 0.1})
    # a non-convex curve is replaced by its hull: the dip at 0.9 makes 0..0.9 one segment
    sens["layers"]["a"] = [{"sparsity": 0.5, "loss": 80.0}, {"sparsity": 0.9, "loss": 81.0}]
    assert al.lower_hull([(0, 0), (0.5, 80), (0.9, 81)]) == [(0, 0), (0.9, 81)]
    with pytest.raises(PrunevizError, match="beyond"):
        al.allocate(Fake(), 0.95, sens)


def test_bad_plans_change_nothing():
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    with pytest.raises(PrunevizError, match="no.*layer|does not have"):
        s.apply_allocation({"0": 0.5, "nope": 0.5})
    with pytest.raises(PrunevizError, match="below 1"):
        s.apply_allocation({"0": 0.5, "2": 1.0})
    with pytest.raises(PrunevizError, match="target"):
        s.allocate(1.2, {"granularity": "weight"})
    with pytest.raises(PrunevizError, match="weights"):
        s.allocate(0.5, {"granularity": "neuron"})
    assert s.history.index == 0 and s.sparsity() == 0.0


def calib_eval(s):
    """Accuracy and mean loss of the session's model on its calibration samples, by a plain loop."""
    x, y = s.calib.tensors()
    with torch.no_grad():
        out = s.model(x)
    return float((out.argmax(1) == y).double().mean()), float(torch.nn.functional.cross_entropy(out, y))


@pytest.mark.slow
@pytest.mark.parametrize("model, amounts", [("demo:mlp", (0.5, 0.8, 0.95)), ("demo:cnn", (0.7, 0.9))])
def test_scope_sensitivity_is_never_worse_on_the_calibration_data_than_uniform_or_global(model, amounts):
    s = Session.open(model, data="demo:digits", device="cpu")
    for amount in amounts:
        n = s.prune(amount, scope="sensitivity")
        detail = s.last_prune.detail
        cands = detail["candidates"]
        assert detail["calibration"]["spec"] == "demo:digits-train" and s.last_prune.scope == "sensitivity"
        assert cands[detail["chosen"]]["accuracy"] >= max(cands["layer"]["accuracy"], cands["global"]["accuracy"]), (amount, cands)
        # the figures are what the plans give, measured here by hand on the calibration samples
        acc, loss = calib_eval(s)
        assert acc == pytest.approx(cands[detail["chosen"]]["accuracy"], abs=1e-12) and loss == pytest.approx(cands[detail["chosen"]]["loss"], rel=1e-4)
        assert n == round(amount * sum(layer.numel for layer in s.layers)) or abs(s.sparsity() - amount) <= 0.005
        s.undo()
        for scope in ("layer", "global"):
            s.prune(amount, scope=scope)
            acc, loss = calib_eval(s)
            assert acc == pytest.approx(cands[scope]["accuracy"], abs=1e-12) and loss == pytest.approx(cands[scope]["loss"], rel=1e-4), (amount, scope)
            s.undo()
    assert s.sparsity() == 0.0


def test_a_misleading_sensitivity_plan_loses_to_uniform_or_global_and_is_not_applied():
    """Curves that say the output layer is free to prune put the whole budget there: alone, that
    plan would be worse on the calibration data than a plain ranking, so the ranking is applied."""
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    names = [layer.name for layer in s.layers]
    fake = {"granularity": "weight", "baseline": {"loss": 0.0, "accuracy": 1.0}, "layers": {
        n: [{"level": 1.0, "sparsity": 1.0, "loss": 0.0 if n == "4" else 100.0, "accuracy": 1.0}] for n in names}}
    al.prune_by_sensitivity(s, 0.06, "magnitude", None, sensitivity=fake)  # 6 % of 17k: about 1.6 times layer 4
    detail = s.last_prune.detail
    assert detail["plan"]["4"] > 0.99  # the allocation alone empties the output layer (all but one weight)
    cands = detail["candidates"]
    assert cands["sensitivity"]["accuracy"] < max(cands["layer"]["accuracy"], cands["global"]["accuracy"])
    assert detail["chosen"] in ("layer", "global") and s.sparsity("4") < 0.5
    assert calib_eval(s)[0] == pytest.approx(cands[detail["chosen"]]["accuracy"], abs=1e-12)
