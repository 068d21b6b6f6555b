"""Analyses (sensitivity, knockout, criteria, sweeps, allocation) against torch oracles, and
the promise that the session is exactly as before afterwards."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune

from pruneviz.core import analysis as an
from pruneviz.core.errors import PrunevizError
from pruneviz.core.evaluate import child_index
from pruneviz.core.session import Session
from pruneviz.core.workers import Probe


# the analyses measure on the calibration split (demo:digits-train by default for the demo
# models); the held-out split is calibration enough here and four times quicker to evaluate
@pytest.fixture(scope="module")
def cnn():
    return Session.open("demo:cnn", data="demo:digits", device="cpu", calib_data="demo:digits")


@pytest.fixture()
def mlp():
    return Session.open("demo:mlp", data="demo:digits", device="cpu", calib_data="demo:digits")


def calib(s):
    """The samples sensitivity and knockout evaluate: the session's calibration tensors."""
    from types import SimpleNamespace

    x, y = s.calib.tensors()
    return SimpleNamespace(x=x, y=y)


def plain_eval(model, data):
    """The oracle: a plain torch loop over the data."""
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(data.x), 100):
            out = model(data.x[i : i + 100])
            correct += int((out.argmax(1) == data.y[i : i + 100]).sum())
            loss += float(F.cross_entropy(out, data.y[i : i + 100], reduction="sum"))
    return correct / len(data.x), loss / len(data.x)


def snapshot(s):
    return {
        "params": {n: p.detach().clone() for n, p in s.model.named_parameters()},
        "buffers": {n: b.clone() for n, b in s.model.named_buffers()},
        "elem": {n: m.clone() for n, m in s.masks.elem.items()},
        "chan": {n: m.clone() for n, m in s.masks.chan.items()},
        "keep": {n: m.clone() for n, m in s.masks.keep.items()},
        "kept": dict(s.masks.kept),
        "version": s.masks.version,
        "history": (list(s.history.steps), s.history.index),
    }


def assert_same(a, b, version=True):
    for key in ("params", "buffers", "elem", "chan", "keep"):
        assert a[key].keys() == b[key].keys()
        for n in a[key]:
            assert torch.equal(a[key][n], b[key][n]), (key, n)
    assert a["kept"] == b["kept"] and (a["version"] == b["version"] or not version)
    assert a["history"][0] == b["history"][0] and a["history"][1] == b["history"][1]


@pytest.mark.slow  # every level of every layer twice; quick: test_sensitivity_neuron_points_equal_ln_structured
def test_sensitivity_weight_points_equal_l1_unstructured_and_plain_loop(cnn):
    levels = [0.3, 0.7, 0.9]
    res = an.collect(cnn.sensitivity(levels=levels))
    assert res["granularity"] == "weight" and res["levels"] == levels
    base_acc, base_loss = plain_eval(cnn.model, calib(cnn))
    assert res["baseline"]["accuracy"] == base_acc and res["baseline"]["loss"] == pytest.approx(base_loss, rel=1e-5)
    for name, points in res["layers"].items():
        assert [p["level"] for p in points] == levels
        for p in points:
            ref = copy.deepcopy(cnn.model)
            mod = dict(ref.named_modules())[name]
            tprune.l1_unstructured(mod, "weight", p["level"])
            acc, loss = plain_eval(ref, calib(cnn))
            assert p["accuracy"] == acc, (name, p)
            assert p["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7), (name, p)
            assert p["sparsity"] == pytest.approx(1 - float(mod.weight_mask.mean()))


def test_sensitivity_neuron_points_equal_ln_structured(mlp):
    res = an.collect(mlp.sensitivity(layers="0,2", levels=[0.25, 0.75], granularity="neuron"))
    for name, points in res["layers"].items():
        for p in points:
            ref = copy.deepcopy(mlp.model)
            mod = dict(ref.named_modules())[name]
            tprune.ln_structured(mod, "weight", p["level"], n=2, dim=0)
            gone = ~mod.weight_mask.bool().all(1)
            tprune.custom_from_mask(mod, "bias", ~gone)  # a pruned neuron's output is exactly 0
            acc, loss = plain_eval(ref, calib(mlp))
            assert p["accuracy"] == acc and p["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7), (name, p)


@pytest.mark.slow  # a sensitivity run per layer; quick: test_sensitivity_from_current_state_and_session_untouched
def test_every_sensitivity_point_starts_at_its_own_layer(cnn):
    points = []
    gen = cnn.sensitivity(levels=[0.2, 0.5, 0.8])
    for item in gen:
        points.append(item)
    assert len(points) == 15
    for p in points:
        assert p["start"] == child_index(cnn.model, p["layer"]) > 0, p


def test_sensitivity_from_current_state_and_session_untouched(mlp):
    mlp.prune(0.5, scope="global")
    before = snapshot(mlp)
    res = an.collect(mlp.sensitivity(levels=[0.5]))
    assert_same(before, snapshot(mlp))
    assert res["baseline"]["accuracy"] == plain_eval(mlp.model, calib(mlp))[0]
    # the level is a fraction of the weights still kept, as with prune()
    for name, (p,) in res["layers"].items():
        mlp.prune(0.5, layers=[name])
        assert p["sparsity"] == mlp.sparsity(name)
        acc, loss = plain_eval(mlp.model, calib(mlp))
        assert p["accuracy"] == acc and p["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7)
        mlp.undo()
    after = snapshot(mlp)
    after["history"] = (after["history"][0][:1], 1)
    assert_same(before, after, version=False)  # each prune was undone (undo bumps the version)


@pytest.mark.slow  # sweeps cancelled and failing at every step; quick: test_sweep_equals_prune_then_evaluate_and_leaves_session
def test_session_exactly_as_before_when_cancelled_or_failing(mlp, monkeypatch):
    mlp.prune_neurons("0", [3, 4])
    before = snapshot(mlp)
    gen = mlp.sensitivity(levels=[0.5, 0.9])
    next(gen), next(gen)
    gen.close()
    assert_same(before, snapshot(mlp))
    calls = {"n": 0}
    real = Probe.evaluate

    def failing(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("evaluation failed")
        return real(self)

    monkeypatch.setattr(Probe, "evaluate", failing)
    for make in (lambda: mlp.sensitivity(levels=[0.5, 0.9]), lambda: mlp.knockout("2"), lambda: mlp.sweep(levels=[0.5, 0.9])):
        calls["n"] = 0
        with pytest.raises(RuntimeError):
            an.collect(make())
        assert_same(before, snapshot(mlp))
    monkeypatch.setattr(Probe, "evaluate", real)
    import threading

    cancel = threading.Event()
    gen = mlp.knockout("2", cancel=cancel)
    next(gen)
    cancel.set()
    res = an.collect(gen)
    assert sum(1 for n in res["neurons"] if "pruned" not in n) < 64
    assert_same(before, snapshot(mlp))


def test_knockout_equals_removing_each_neuron_alone(mlp):
    mlp.prune_neurons("2", [5])
    res = an.collect(mlp.knockout("2"))
    assert res["layer"] == "2" and len(res["neurons"]) == 64
    assert res["neurons"][5]["pruned"] and res["neurons"][5]["accuracy"] == res["baseline"]["accuracy"]
    for i in (0, 17, 40, 63):
        ref = copy.deepcopy(mlp.model)
        with torch.no_grad():
            ref[2].weight[i] = 0
            ref[2].bias[i] = 0
        acc, loss = plain_eval(ref, calib(mlp))
        n = res["neurons"][i]
        assert n["index"] == i and n["accuracy"] == acc and n["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7)
    # the same as the session's own verb, evaluated on the calibration samples
    mlp.prune_neurons("2", [17])
    acc, loss = plain_eval(mlp.model, calib(mlp))
    assert res["neurons"][17]["accuracy"] == acc and res["neurons"][17]["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-7)
    assert set(res["faithfulness"]) == {"magnitude", "random", "taylor", "taylor-mean", "obd", "wanda", "activation", "apoz"}
    for m, f in res["faithfulness"].items():
        assert -1 <= f["spearman"] <= 1 and 0 <= f["top10_overlap"] <= 1
    # recompute one figure from the parts
    mlp.undo()
    idx = mlp.neuron_mask("2").nonzero().flatten()
    inc = torch.tensor([res["neurons"][i]["loss"] - res["baseline"]["loss"] for i in idx.tolist()])
    for m in ("magnitude", "taylor", "apoz"):  # scored on the copy, equal to the session's scores
        s = mlp.scores("2", m, "neuron")[idx]
        assert res["faithfulness"][m]["spearman"] == pytest.approx(an.spearman(s, inc), abs=1e-12)
        assert res["faithfulness"][m]["top10_overlap"] == an.top_overlap(s, inc, 10)


def test_spearman_and_top_overlap():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g), torch.randn(50, generator=g)
    d = (an.ranks(a) - an.ranks(b)) ** 2
    assert an.spearman(a, b) == pytest.approx(1 - 6 * float(d.sum()) / (50 * (50**2 - 1)))
    assert an.spearman(a, a * 3 + 1) == pytest.approx(1.0) and an.spearman(a, -a) == pytest.approx(-1.0)
    assert an.ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert an.spearman(a, torch.ones(50)) is None
    assert an.top_overlap(a, a, 10) == 1.0 and an.top_overlap(a, -a, 10) == 0.0


def test_compare_criteria_and_colour_scales(mlp):
    mlp.prune(0.3)
    res = an.collect(mlp.compare_criteria("0", "magnitude", "magnitude"))
    assert res["agreement"] == 1.0 and res["k"] == round(0.1 * int(mlp.mask("0").sum()))
    res = an.collect(mlp.compare_criteria("0", "magnitude", "random", k=500))
    kept = mlp.mask("0").reshape(-1)
    low_a = set(torch.topk(torch.where(kept, res["scores"]["magnitude"], torch.tensor(float("inf"))), 500, largest=False).indices.tolist())
    low_b = set(torch.topk(torch.where(kept, res["scores"]["random"], torch.tensor(float("inf"))), 500, largest=False).indices.tolist())
    assert res["agreement"] == len(low_a & low_b) / 500
    assert torch.equal(res["pruned"], ~kept)
    g = torch.Generator().manual_seed(0)
    assert an.color_scale(torch.rand(1000, generator=g)) == "linear"
    heavy = torch.exp(3 * torch.randn(1000, generator=g))
    assert an.color_scale(heavy) == "log"
    heavy[:100] = 0
    assert an.color_scale(heavy) == "rank"
    r = an.scaled(heavy, "rank")
    assert float(r.max()) == 1 and float(r[0]) == pytest.approx(49.5 / 999)  # tied zeros share their mean rank
    assert bool((r[:100] == r[0]).all()) and bool((r[100:] > r[0]).all())
    with pytest.raises(PrunevizError):
        an.scaled(heavy, "cubic")


def test_sweep_equals_prune_then_evaluate_and_leaves_session(mlp):
    mlp.prune_neurons("0", [1])
    before = snapshot(mlp)
    res = an.collect(mlp.sweep(levels=[0.2, 0.6], scope="global", method="magnitude"))
    assert_same(before, snapshot(mlp))
    (curve,) = res["curves"]
    assert (curve["method"], curve["scope"], curve["granularity"]) == ("magnitude", "global", "weight")
    for p in curve["points"]:
        mlp.prune(p["level"], scope="global")
        r = mlp.evaluate()
        assert (p["sparsity"], p["accuracy"], p["loss"]) == (mlp.sparsity(), r.accuracy, r.loss)
        mlp.undo()
    res = an.collect(an.sweeps(mlp, [0.5], scopes=["layer", "global"], methods=["magnitude", "random"]))
    assert [(c["method"], c["scope"]) for c in res["curves"]] == [("magnitude", "layer"), ("magnitude", "global"), ("random", "layer"), ("random", "global")]


def test_bad_input_is_one_clear_error(mlp):
    with pytest.raises(PrunevizError, match="levels"):
        an.collect(mlp.sensitivity(levels=[0.5, 1.5]))
    with pytest.raises(PrunevizError, match="scope"):
        an.collect(mlp.sweep(scope="everywhere"))
    with pytest.raises(PrunevizError, match="no prunable layer"):
        an.collect(mlp.knockout("nope"))
    nodata = Session.open("demo:mlp", device="cpu")
    with pytest.raises(PrunevizError, match="data"):
        an.collect(nodata.sweep())  # a sweep reports held-out accuracy: it needs --data
    from pruneviz.core.model_io import LoadedModel
    from tests.core import models

    toy = Session(LoadedModel(model=models.mlp(), spec="toy", source="state_dict", arch=None, example_input=torch.zeros(1, 12), structured_ok=True), device="cpu")
    with pytest.raises(PrunevizError, match="calib"):  # no training data known, no data at all
        an.collect(toy.sensitivity())


def test_probe_stores_no_activations_after_priming_and_stays_exact(cnn):
    probe = Probe(cnn)
    probe.prime()
    primed = probe.cache.nbytes
    full = Probe(cnn)
    full.cache.budget_bytes = 0  # every evaluation a full pass
    full.cache.clear()
    edits = [(name, an.flips_for(cnn, cnn.preview(0.6, "layer", "weight", "magnitude", [name]), "weight")) for name in ("14", "4", "8")]
    got = list(probe.run(edits))
    assert probe.cache.nbytes <= primed  # the inputs before each edited child are all it keeps
    want = list(full.run(edits))
    assert [(g["accuracy"], g["loss"]) for g in got] == [(w["accuracy"], w["loss"]) for w in want]
    # 8 after 4 starts at 4: what follows an edited child is dropped, hence deepest layers first
    assert [g["start"] for g in got] == [14, 4, 4] and [w["start"] for w in want] == [0, 0, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("ties", [False, True])
def test_sensitivity_prefixes_choose_what_prune_chooses(ties, dtype):
    """One sort per layer gives every level's choice: exactly ranking.lowest's (the choice prune
    makes), also with ties at the cut, NaN scores and entries already pruned."""
    from pruneviz.core import ranking as rk

    g = torch.Generator().manual_seed(1)
    levels = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    for trial in range(60):
        n = int(torch.randint(2, 300, (1,), generator=g))
        s = torch.randn(n, generator=g)
        if ties:
            s = torch.round(s * 2)  # a handful of distinct values: ties at most cuts
        if trial % 5 == 0:
            s[torch.randint(0, n, (2,), generator=g)] = float("nan")
        kept = torch.rand(n, generator=g) > 0.3
        s = s.to(dtype)
        shape = (n // 2, 2) if n % 2 == 0 else (n,)
        got = an.lowest_prefixes(s.reshape(shape), kept.reshape(shape), levels)
        for level, idx in zip(levels, got):
            want = rk.lowest(s, kept, round(level * rk.count(kept))).nonzero().flatten()
            assert torch.equal(idx, want), (trial, level)


def test_priming_hands_activations_back_only_to_an_unchanged_session():
    s = Session.open("demo:cnn", data="demo:digits", device="cpu")
    assert not s.cache.points  # never evaluated
    an.collect(s.sweep(levels=[0.5]))
    assert s.cache.points  # the analysis's priming filled it
    inc, full = s.evaluate(), s.evaluate(incremental=False)
    assert inc.start == max(s.cache.points) > 0 and (inc.correct, inc.loss) == (full.correct, full.loss)
    # an edit between the copy and its priming: the copy's activations are not the session's
    t = Session.open("demo:cnn", data="demo:digits", device="cpu")
    probe = Probe(t)
    t.prune_neurons("4", [0, 1])
    probe.prime()
    assert not t.cache.points
    r = t.evaluate()
    assert r.start == 0 and (r.correct, r.loss) == (t.evaluate(incremental=False).correct, t.evaluate(incremental=False).loss)
