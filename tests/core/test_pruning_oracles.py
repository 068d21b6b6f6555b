"""Pruning semantics against torch.nn.utils.prune and plain torch as oracles."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune

from pruneviz.core.data import EvalData
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import models


def make(model_fn, in_shape, n_classes, n=64, data=True):
    model = model_fn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, *in_shape, generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    loaded = LoadedModel(model=copy.deepcopy(model), spec="test", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    s = Session(loaded, EvalData(x=x, y=y, spec="test") if data else None, device="cpu")
    return s, model, x, y


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_weight_layer_magnitude_equals_l1_unstructured(amount):
    s, ref, _, _ = make(models.mlp, (12,), 5)
    s.prune(amount, scope="layer", granularity="weight", method="magnitude")
    for layer in s.layers:
        mod = dict(ref.named_modules())[layer.name]
        tprune.l1_unstructured(mod, "weight", amount)
        assert torch.equal(s.mask(layer.name), mod.weight_mask.bool()), layer.name
        assert torch.equal(s.weight(layer.name), mod.weight.detach())


def test_repeated_layer_prune_matches_torch_iterative():
    s, ref, _, _ = make(models.mlp, (12,), 5)
    for amount in (0.3, 0.4):
        s.prune(amount)
        for layer in s.layers:
            tprune.l1_unstructured(dict(ref.named_modules())[layer.name], "weight", amount)
    for layer in s.layers:
        assert torch.equal(s.mask(layer.name), dict(ref.named_modules())[layer.name].weight_mask.bool())


@pytest.mark.parametrize("amount", [0.2, 0.6, 0.9])
def test_weight_global_magnitude_equals_global_unstructured(amount):
    s, ref, _, _ = make(models.cnn_seq, (3, 8, 8), 4)
    s.prune(amount, scope="global", granularity="weight", method="magnitude")
    mods = dict(ref.named_modules())
    params = [(mods[layer.name], "weight") for layer in s.layers]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    for layer in s.layers:
        assert torch.equal(s.mask(layer.name), mods[layer.name].weight_mask.bool()), layer.name


@pytest.mark.parametrize("amount", [0.25, 0.5])
def test_neuron_layer_magnitude_picks_ln_structured_rows(amount):
    s, ref, _, _ = make(models.mlp, (12,), 5)
    s.prune(amount, scope="layer", granularity="neuron", method="magnitude")
    mods = dict(ref.named_modules())
    for layer in s.layers:
        if layer.is_output:
            assert bool(s.neuron_mask(layer.name).all()), "the output layer must not be neuron-pruned by default"
            continue
        mod = mods[layer.name]
        tprune.ln_structured(mod, "weight", amount, n=2, dim=0)
        torch_rows = mod.weight_mask.flatten(1).all(1)
        assert torch.equal(s.neuron_mask(layer.name), torch_rows), layer.name


def test_output_layer_pruned_only_when_named_exactly():
    s, _, _, _ = make(models.mlp, (12,), 5)
    assert [layer.name for layer in s.layers if layer.is_output] == ["4"]
    s.prune(0.4, granularity="neuron", layers="*")
    assert bool(s.neuron_mask("4").all())
    s.prune(0.4, granularity="neuron", layers="4")
    assert int((~s.neuron_mask("4")).sum()) == 2


def test_scores_are_taken_before_the_command():
    """A data-driven global prune ranks all layers on the same, unpruned model."""
    s, _, _, _ = make(models.mlp, (12,), 5)
    before = s.scores(None, "taylor", "weight")
    preview = s.preview(0.5, scope="global", method="taylor")
    s.prune(0.5, scope="global", method="taylor")
    for layer in s.layers:
        assert torch.equal(~s.mask(layer.name), preview[layer.name])
    flat = torch.cat([before[layer.name].flatten() for layer in s.layers])
    thr = flat.kthvalue(round(0.5 * flat.numel())).values
    pruned = torch.cat([(~s.mask(layer.name)).flatten() for layer in s.layers])
    assert bool((flat[pruned] <= thr).all())


def test_pruned_neuron_output_is_exactly_zero_with_batchnorm():
    s, _, x, _ = make(models.cnn_seq, (3, 8, 8), 4)
    s.prune_neurons("3", [1, 4, 7])
    acts = {}
    s.model[5].register_forward_hook(lambda m, i, o: acts.setdefault("bn", o))
    with torch.no_grad():
        s.model(x)
    out = acts["bn"]
    assert torch.equal(out[:, [1, 4, 7]], torch.zeros_like(out[:, [1, 4, 7]]))
    assert (out[:, 0] != 0).any()
    # weight rows, bias and BN scale/shift of the channel are zero; next layer's inputs too
    assert torch.equal(s.model[3].weight[[1, 4, 7]], torch.zeros(3, 8, 3, 3))
    assert torch.equal(s.model[3].bias[[1, 4, 7]], torch.zeros(3))
    assert torch.equal(s.model[4].weight[[1, 4, 7]], torch.zeros(3))
    assert torch.equal(s.model[4].bias[[1, 4, 7]], torch.zeros(3))
    cols = s.model[8].weight.view(10, 12, 16)[:, [1, 4, 7]]
    assert torch.equal(cols, torch.zeros_like(cols))


def test_residual_coupling_prunes_added_channels_together():
    s, _, x, _ = make(models.resnet, (3, 8, 8), 6)
    s.prune_neurons("stem", [2, 5])
    for name in ("stem", "conv2"):
        assert (~s.neuron_mask(name)).nonzero().flatten().tolist() == [2, 5], name
    assert bool(s.neuron_mask("conv1").all())
    acts = {}
    s.model.head.register_forward_pre_hook(lambda m, i: acts.setdefault("in", i[0]))
    with torch.no_grad():
        s.model(x)
    h = acts["in"].view(len(x), 8, 4, 4)
    assert torch.equal(h[:, [2, 5]], torch.zeros_like(h[:, [2, 5]]))
    s.undo()
    assert bool(s.neuron_mask("conv2").all()) and bool(s.neuron_mask("stem").all())


@pytest.mark.parametrize("factory,shape,classes", [(models.resnet, (3, 8, 8), 6), (models.cnn_seq, (3, 8, 8), 4), (models.mlp, (12,), 5)])
def test_shrunk_model_matches_masked(tmp_path, factory, shape, classes):
    s, _, x, _ = make(factory, shape, classes)
    s.prune(0.4, granularity="neuron", method="magnitude")
    s.prune(0.3, granularity="weight", method="magnitude")
    out = tmp_path / "m.pt2"
    rep = s.export(out, format="pt2", shrink=True)
    shrunk = torch.export.load(str(out)).module()
    with torch.no_grad():
        expect = s.model(x)
        got = shrunk(x)
    torch.testing.assert_close(got, expect, atol=1e-4, rtol=0)
    assert rep["params_after"] < rep["params_before"]
    assert rep["params_after"] == sum(p.numel() for p in shrunk.parameters())


def test_invariants_effective_equals_orig_times_mask():
    s, ref, _, _ = make(models.resnet, (3, 8, 8), 6)
    s.prune(0.3, granularity="neuron", method="random")
    s.prune(0.5, scope="global", method="magnitude")
    s.prune_weights("conv1", torch.arange(0, 100, 3))
    for layer in s.layers:
        assert torch.equal(s.weight(layer.name), s.weight(layer.name, original=True) * s.mask(layer.name))
    # pruning never un-zeroes anything: old zeros stay zero after another prune
    zeros_before = {layer.name: s.weight(layer.name) == 0 for layer in s.layers}
    s.prune(0.2)
    for layer in s.layers:
        assert bool((s.weight(layer.name)[zeros_before[layer.name]] == 0).all())


def test_bad_arguments_raise_one_line_errors():
    s, _, _, _ = make(models.mlp, (12,), 5)
    for call in (
        lambda: s.prune(1.5),
        lambda: s.prune(-0.1),
        lambda: s.prune(0.5, scope="everywhere"),
        lambda: s.prune(0.5, method="nonsense"),
        lambda: s.prune(0.5, granularity="bits"),
        lambda: s.prune(0.5, layers="nomatch*"),
        lambda: s.prune_neurons("0", [99]),
        lambda: s.prune_weights("0", [10**6]),
        lambda: s.scores("missing"),
    ):
        with pytest.raises(PrunevizError) as info:
            call()
        assert "\n" not in str(info.value)


def test_data_methods_say_they_need_data():
    s, _, _, _ = make(models.mlp, (12,), 5, data=False)
    for method in ("taylor", "obd", "wanda"):
        with pytest.raises(PrunevizError, match="needs calibration data") as exc:
            s.scores("0", method)
    for method in ("activation", "apoz"):
        with pytest.raises(PrunevizError, match="needs calibration data") as exc:
            s.scores("0", method, "neuron")
        assert exc.value.hint_key == "calib_data"  # the CLI says --calib-data, the app File > Open data…


def test_importance_methods_shapes_and_definitions():
    s, model, x, y = make(models.mlp, (12,), 5)
    w = model[0].weight.detach()
    for method in ("magnitude", "random", "taylor", "taylor-mean", "obd", "wanda", "wanda-layer"):
        sc = s.scores("0", method)
        assert sc.shape == w.shape and bool(torch.isfinite(sc).all()) and bool((sc >= 0).all()), method
        if method != "wanda-layer":  # the same neuron score as wanda
            assert s.scores("0", method, "neuron").shape == (20,), method
    for method in ("activation", "apoz"):
        assert s.scores("2", method, "neuron").shape == (16,)
    torch.testing.assert_close(s.scores("0", "magnitude"), w.abs())
    # taylor (Molchanov 2019): (g·w)² per batch of 64 (here one batch = all 64 samples), g the
    # gradient of the batch's mean loss; taylor-mean: |w · mean gradient| over all samples
    m = copy.deepcopy(model)
    loss = nn.functional.cross_entropy(m(x), y)
    loss.backward()
    torch.testing.assert_close(s.scores("0", "taylor"), (w * m[0].weight.grad) ** 2)
    torch.testing.assert_close(s.scores("0", "taylor", "neuron"), (w * m[0].weight.grad).sum(1) ** 2)
    torch.testing.assert_close(s.scores("0", "taylor-mean"), (w * m[0].weight.grad).abs())
    # obd: ½ w² × the mean over samples of each sample's squared gradient (empirical Fisher)
    fisher = torch.zeros_like(w)
    for i in range(len(x)):
        g = torch.autograd.grad(nn.functional.cross_entropy(m(x[i : i + 1]), y[i : i + 1]), m[0].weight)[0]
        fisher += g * g / len(x)
    torch.testing.assert_close(s.scores("0", "obd"), 0.5 * w * w * fisher)
    torch.testing.assert_close(s.scores("0", "wanda"), w.abs() * x.norm(dim=0).view(1, -1))
    h = torch.relu(m[0](x))  # read after the ReLU that follows the layer (Hu et al. 2016)
    torch.testing.assert_close(s.scores("0", "activation", "neuron"), h.abs().mean(0).detach())
    torch.testing.assert_close(s.scores("0", "apoz", "neuron"), 1 - (h <= 0).float().mean(0).detach())
    # random is seeded: same seed, same scores
    assert torch.equal(s.scores("0", "random"), s.scores("0", "random"))


def test_original_scores_show_what_pruned_neurons_were_worth():
    s, model, _, _ = make(models.mlp, (12,), 5)
    s.prune_neurons("0", [1])
    assert float(s.scores("0", "magnitude", "neuron")[1]) == 0.0
    torch.testing.assert_close(s.scores("0", "magnitude", "neuron", original=True), model[0].weight.detach().norm(dim=1))
    assert s.scores("0", "taylor", "neuron", original=True).shape == (20,)


def test_baseline_is_cancellable_and_cached():
    import threading

    from pruneviz.core.evaluate import EvalResult

    s, _, _, _ = make(models.mlp, (12,), 5, n=600)
    s.batch_size = 100
    cancel = threading.Event()
    gen = s.baseline_iter(cancel)
    next(gen)
    cancel.set()
    assert not any(isinstance(i, EvalResult) for i in gen) and s.evaluation.baseline_result is None
    s.prune(0.9)
    full = s.baseline()
    s.undo()
    assert full == s.baseline() and full.correct == s.evaluate().correct


def test_state_dict_without_arch_raises_arch_required(tmp_path):
    from pruneviz.core.errors import ArchRequired
    from pruneviz.core.model_io import open_model

    path = tmp_path / "w.pt"
    torch.save(models.mlp().state_dict(), path)
    with pytest.raises(ArchRequired, match="arch=") as exc:
        open_model(str(path))
    assert exc.value.hint_key == "arch"


def test_memory_is_checked_before_allocating_masks(monkeypatch):
    from pruneviz.core import masks as masks_mod

    monkeypatch.setattr(masks_mod, "available_bytes", lambda device: 1000)
    with pytest.raises(PrunevizError, match="GiB"):
        make(models.mlp, (12,), 5)


def test_nan_weights_rank_first_and_cache_budget_is_settable():
    s, _, _, _ = make(models.mlp, (12,), 5)
    with torch.no_grad():
        s.masks.orig["0.weight"][0, :3] = float("nan")
        s.model[0].weight[0, :3] = float("nan")
    s.prune(3 / 240, layers="0")
    assert not bool(s.mask("0")[0, :3].any()) and int((~s.mask("0")).sum()) == 3
    s.set_cache_budget(0)
    s.evaluate()
    assert s.memory()["cache"] == 0
    with pytest.raises(PrunevizError):
        s.set_cache_budget(-1)
