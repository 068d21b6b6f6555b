"""N:M semi-structured sparsity against oracles: a brute-force per-group top-N in plain Python for
the Linear, Conv2d and Conv1D (GPT-2) layouts; the pattern kept through fine-tuning; the written
safetensors read back with plain torch; compensation that keeps the pattern; unknown units refused."""

import itertools
import json

import numpy as np
import pytest
import torch

from pruneviz import Session
from pruneviz.cli import main
from pruneviz.core import display, nm, units
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel

from . import zoo


def brute_force(scores: torch.Tensor, kept: torch.Tensor, n: int, m: int, kind: str) -> torch.Tensor:
    """What goes, group by group: for each output (and kernel position), each run of ``m``
    consecutive inputs keeps its ``n`` highest-scored kept weights (ties: lower input first)."""
    s = scores.t() if kind == "Conv1D" else scores  # [out, in, *kernel]
    k = kept.t() if kind == "Conv1D" else kept
    go = torch.zeros_like(k)
    n_in = s.shape[1]
    for pos in itertools.product(range(s.shape[0]), *(range(d) for d in s.shape[2:])):
        for start in range(0, n_in, m):
            members = [(pos[0], c, *pos[1:]) for c in range(start, min(start + m, n_in))]
            alive = sorted((t for t in members if k[t]), key=lambda t: (-float(s[t]), t[1]))
            for t in alive[n:]:
                go[t] = True
    return go.t() if kind == "Conv1D" else go


def conv1d_session() -> Session:
    model = zoo.conv1d_mlp()
    return Session(LoadedModel(model, "conv1d", "state_dict", None, torch.randn(2, 12), True), None, device="cpu")


@pytest.mark.parametrize("pattern", ["2:4", "1:3", "3:8"])
@pytest.mark.parametrize("opener", ["mlp", pytest.param("cnn", marks=pytest.mark.slow), "conv1d"])
def test_mask_is_the_per_group_top_n(opener, pattern):
    s = conv1d_session() if opener == "conv1d" else Session.open(f"demo:{opener}", device="cpu")
    kinds = {layer.name: layer.kind for layer in s.layers}
    assert {"mlp": "Linear", "cnn": "Conv2d", "conv1d": "Conv1D"}[opener] in kinds.values()
    s.prune(0.3, method="random")  # some weights already gone: only kept ones are ranked
    n, m = nm.parse(pattern)
    scores = s.scores(None, "magnitude", "weight")
    kept = {name: s.mask(name) for name in kinds}
    chosen = s.preview(0.0, "layer", pattern, "magnitude")
    for name, kind in kinds.items():
        want = brute_force(scores[name], kept[name], n, m, kind)
        assert torch.equal(chosen[name], want), name
    s.prune(0.0, granularity=pattern)
    for name, kind in kinds.items():
        after = s.mask(name)
        assert torch.equal(after, kept[name] & ~chosen[name])
        assert nm.conforms(after, n, m, kind) and units.get(pattern).conforms(after, kind)


@pytest.mark.slow
def test_every_scorer_selects_n_of_m():
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    for method in units.get("2:4").methods(has_data=True):
        chosen = s.preview(0.0, "layer", "2:4", method)
        scores = s.scores(None, method, "weight")
        for layer in s.layers:
            want = brute_force(scores[layer.name], s.mask(layer.name), 2, 4, layer.kind)
            assert torch.equal(chosen[layer.name], want), (method, layer.name)


@pytest.mark.slow
def test_pattern_survives_two_epochs_of_finetuning_and_undo():
    from pruneviz.core.training import complete

    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.prune(0.5, granularity="2:4")
    masks = {layer.name: s.mask(layer.name) for layer in s.layers}
    before = {layer.name: s.weight(layer.name).clone() for layer in s.layers}
    complete(s.finetune(2))
    for layer in s.layers:
        w = s.weight(layer.name)
        assert not torch.equal(w, before[layer.name])  # it trained
        assert torch.equal(s.mask(layer.name), masks[layer.name])  # exactly the same pattern
        assert int(((w != 0).view(w.shape[0], -1, 4)).sum(2).max()) <= 2
    s.undo()
    s.undo()
    assert s.sparsity() == 0.0


def test_safetensors_loads_in_plain_torch_with_two_of_four(tmp_path, capsys):
    from safetensors.torch import load_file

    out, rep = tmp_path / "m.safetensors", tmp_path / "r.json"
    assert main(["prune", "demo:mlp", "--granularity", "2:4", "--amount", "0.5", "--out", str(out), "--report", str(rep), "--device", "cpu"]) == 0
    capsys.readouterr()
    sd = load_file(str(out))
    for key in ("0.weight", "2.weight", "4.weight"):
        w = sd[key]
        groups = (w != 0).reshape(w.shape[0], -1, 4).sum(2)
        assert int(groups.max()) <= 2 and float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    report = json.loads(rep.read_text())
    assert report["granularity"] == "2:4" and report["conforms"]["2:4"] == ["0", "2", "4"]
    assert report["semi_structured"]["measured"] is False and "not measured" in report["semi_structured"]["reason"]


def test_inspect_json_says_which_layers_conform(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["prune", "demo:mlp", "--granularity", "2:4", "--amount", "0.5", "--layers", "2", "--out", str(out)]) == 0
    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.5, granularity="2:4", layers="2")
    assert units.conformance(s) == {"2:4": ["2"]}
    capsys.readouterr()
    assert main(["inspect", "demo:mlp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["conforms"] == {"2:4": []}


@pytest.mark.parametrize("mode", ["exact", "sparsegpt"])
@pytest.mark.parametrize("model", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_compensation_keeps_the_pattern_and_lowers_the_error(mode, model):
    s = Session.open(f"demo:{model}", data="demo:digits", device="cpu")
    plain = Session.open(f"demo:{model}", data="demo:digits", device="cpu")
    plain.prune(0.5, granularity="2:4")
    s.prune(0.5, granularity="2:4", compensate=mode)
    for layer in s.layers:
        assert nm.conforms(s.mask(layer.name), 2, 4, layer.kind), layer.name
        assert nm.conforms(s.weight(layer.name) != 0, 2, 4, layer.kind)
    from pruneviz.core import demo

    x = demo.load_digits("train")[0][:256]  # the calibration split
    dense = demo.load_model(model).eval()
    with torch.no_grad():
        ref = dense(x)
        err_comp = float((s.model(x) - ref).pow(2).mean())
        err_plain = float((plain.model(x) - ref).pow(2).mean())
    assert err_comp < err_plain
    s.undo()
    assert s.sparsity() == 0.0


def test_sparsegpt_nm_picks_by_obs_error_within_groups():
    """With H = I the OBS error is w² / 1, so SparseGPT's N:M choice is the magnitude top-N and
    no weight is updated (the reference's behaviour on identity Hessians)."""
    from pruneviz.core.compensate_nm import sparsegpt_nm

    torch.manual_seed(0)
    w = torch.randn(1, 6, 16, dtype=torch.float64)
    h = torch.eye(16, dtype=torch.float64).unsqueeze(0)
    kept = torch.ones(1, 6, 16, dtype=torch.bool)
    new, keep = sparsegpt_nm(w, h, kept, 2, 4, damp=0.0)
    want = ~brute_force(w[0].abs(), kept[0], 2, 4, "Linear")
    assert torch.equal(keep[0], want)
    assert torch.allclose(new[0], torch.where(want, w[0], torch.zeros_like(w[0])))


def test_unknown_unit_is_an_error_not_the_neuron_path(capsys):
    s = Session.open("demo:mlp", device="cpu")
    for bad in ("neurons", "Weight", "4:2", "2:2", "", "2:4:8"):
        with pytest.raises(PrunevizError):
            s.prune(0.5, granularity=bad)
        with pytest.raises(PrunevizError):
            s.preview(0.5, granularity=bad)
    assert s.sparsity() == 0.0 and s.history.index == 0
    code = main(["prune", "demo:mlp", "--granularity", "filters", "--amount", "0.5", "--out", "x.pt"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown pruning unit 'filters'" in err and "Traceback" not in err


def test_display_pools_conformance_per_block():
    kept = torch.ones(64, 64, dtype=torch.bool)
    kept[:, 2::4] = False
    kept[:, 3::4] = False  # 2:4 everywhere
    kept[:8, 8:16] = True  # one region breaks it
    pruned2d = (~kept).numpy()
    img = units.get("2:4").pool_pruned(pruned2d, (8, 8), shape=(64, 64), kind="Linear")
    assert img.shape == (8, 8) and img[0, 1] == 1.0
    rest = np.delete(img.reshape(-1), 1)
    assert np.all(rest == 0.5)  # a conformant 2:4 block reads as half pruned, not as solid
    # "any pruned" would draw every conformant block as solid, like a fully pruned one
    assert np.all(np.delete(display.pool_any(pruned2d, (8, 8)).reshape(-1), 1) == 1.0)


def test_registry_describes_each_unit():
    assert units.names() == ["weight", "neuron", "head", "2:4"]
    assert [units.get(n).counted_in for n in units.names()] == ["weights", "neurons", "attention heads", "weights"]
    assert [units.get(n).shrinks for n in units.names()] == [False, True, True, False]
    assert units.get("1:8").name == "1:8" and units.get("1:8").conforms(torch.tensor([[True] + [False] * 7]), "Linear")
    assert "wanda-layer" not in units.NEURON.methods() and "apoz" in units.NEURON.methods()
    assert "apoz" not in units.get("2:4").methods() and "taylor" not in units.WEIGHT.methods(has_data=False)
