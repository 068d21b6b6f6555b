"""What used to be refusals for real models: example inputs, skipped layers, output objects."""

import numpy as np
import pytest
import torch

from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel, open_model
from pruneviz.core.session import Session
from tests.core import models, zoo


def test_neuron_pruning_without_data_infers_the_input_of_a_first_linear(tmp_path, cli):
    sd = tmp_path / "mlp.pt"
    torch.save(models.mlp().state_dict(), sd)
    code, out, err = cli("prune", sd, "--arch", "tests.core.models:mlp", "--amount", "0.25", "--granularity", "neuron", "--shrink", "--format", "pt2", "--out", tmp_path / "m.pt2")
    assert code == 0, err
    assert "note: no example input given: using [1, 12] from the first Linear layer" in err
    assert torch.export.load(str(tmp_path / "m.pt2")).module()(torch.randn(3, 12)).shape == (3, 5)


def test_a_cnn_needs_input_shape_and_the_error_names_it(tmp_path, cli):
    sd = tmp_path / "cnn.pt"
    torch.save(zoo.plain_cnn().state_dict(), sd)
    args = ["prune", sd, "--arch", "tests.core.zoo:plain_cnn", "--amount", "0.25", "--granularity", "neuron", "--out", tmp_path / "c.pt"]
    code, _, err = cli(*args)
    assert code == 2 and "--input-shape C,H,W" in err and "--input-dtype long" in err
    code, out, err = cli(*args, "--input-shape", "3,8,8", "--shrink")
    assert code == 0, err
    assert "pruned 4 neurons" in out
    code, _, err = cli(*args, "--input-shape", "3,9,a")
    assert code == 2 and "input shape must be sizes" in err
    code, _, err = cli(*args, "--input-shape", "5,8,8")
    assert code == 2 and "does not run on an input of shape 5,8,8" in err


def test_token_models_take_input_shape_and_dtype_long():
    loaded = open_model("demo:mlp")  # demo has its own example; an explicit one replaces it
    assert loaded.example_input.shape == (1, 64)
    with pytest.raises(PrunevizError, match="an input dtype needs an input shape"):
        open_model("demo:mlp", input_dtype="long")
    model = zoo.tied_lm()
    s = Session(LoadedModel(model, "lm", "state_dict", None, None, True), None, device="cpu")
    assert s.coupling is None and s.coupler.hint == "example_input" and "--" not in s.coupling_error
    from pruneviz.core.model_io.examples import infer_example, make_example

    x = make_example("6", "long")
    assert x.dtype == torch.long and x.shape == (1, 6)
    inferred, how = infer_example(model)  # starts with an Embedding: token ids
    assert inferred.dtype == torch.long and "Embedding" in how
    s = Session(LoadedModel(model, "lm", "state_dict", None, x, True), None, device="cpu")
    s.prune_neurons("fc1", [0])


def test_transformer_block_prunes_what_it_can_and_notes_each_skipped_layer_once():
    x = torch.randn(1, 3, 8, 8)
    s = Session(LoadedModel(zoo.vit_separate(), "vit", "state_dict", None, x, True), None, device="cpu")
    s.prune(0.25, granularity="neuron")
    s.prune(0.25, granularity="neuron", scope="global")
    skipped = [n for n in s.notices if n.startswith("skipped ")]
    assert sorted(n.split(":")[0] for n in skipped) == ["skipped attn.proj", "skipped fc2", "skipped patch"]
    assert all("LayerNorm" in n for n in skipped)
    for name in ("fc1", "attn.query"):
        assert not bool(s.neuron_mask(name).all()), name
    for name in ("patch", "attn.proj", "fc2"):
        assert bool(s.neuron_mask(name).all()), name
    with pytest.raises(PrunevizError, match="LayerNorm"):  # named exactly: refused, not skipped
        s.prune(0.25, granularity="neuron", layers="fc2")


def test_output_objects_are_read_by_logits_and_said_once(tmp_path, cli):
    sd = tmp_path / "oo.pt"
    torch.save(zoo.output_object().state_dict(), sd)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 12, generator=g), torch.randint(0, 4, (30,), generator=g)
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    code, out, err = cli("eval", sd, "--arch", "tests.core.zoo:output_object", "--data", tmp_path / "d.npz", "--json")
    assert code == 0, err
    with torch.no_grad():
        want = int((zoo.output_object()(x).logits.argmax(1) == y).sum()) / 30
    import json

    assert json.loads(out)["accuracy"] == want
    assert err.count("returns Output objects: pruneviz reads their .logits") == 1


def test_untrusted_files_are_refused_under_a_torch_older_than_2_10(tmp_path, monkeypatch):
    sd = tmp_path / "mlp.pt"
    torch.save(models.mlp().state_dict(), sd)
    monkeypatch.setattr(torch, "__version__", "2.9.1+cpu")
    with pytest.raises(PrunevizError, match="older than 2.10"):
        open_model(str(sd), arch="tests.core.models:mlp")
    assert open_model(str(sd), arch="tests.core.models:mlp", trust=True).source == "state_dict"
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    assert open_model(str(sd), arch="tests.core.models:mlp").source == "state_dict"


def test_inspect_counts_the_zeros_of_a_pruned_file_and_prune_tells_file_from_non_zero(tmp_path, cli):
    import json

    sd = tmp_path / "mlp.pt"
    torch.save(models.mlp().state_dict(), sd)
    out_file = tmp_path / "pruned.pt"
    arch = ["--arch", "tests.core.models:mlp"]
    code, out, err = cli("prune", sd, *arch, "--amount", "0.4", "--out", out_file, "--report", tmp_path / "r.json")
    assert code == 0, err
    state = torch.load(out_file, weights_only=True)
    file_params = sum(t.numel() for t in state.values())
    nonzero = sum(int(torch.count_nonzero(t)) for t in state.values())
    assert f"params 681 -> {file_params:,} in the file, {nonzero:,} non-zero" in out and file_params == 681
    code, out, err = cli("inspect", out_file, *arch, "--json")
    info = json.loads(out)
    weights = [state[f"{n}.weight"] for n in ("0", "2", "4")]
    for layer, w in zip(info["layers"], weights):
        assert layer["sparsity"] == float((w == 0).sum()) / w.numel()
    assert info["sparsity"] == sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights) > 0.39


def test_macs_of_original_masked_and_shrunk_and_measured_latency(tmp_path):
    import torch.nn as nn

    from pruneviz.core.cost import count_macs

    model = models.mlp()
    x = torch.randn(1, 12)
    s = Session(LoadedModel(model, "mlp", "state_dict", None, x, True), None, device="cpu")
    s.prune_neurons("0", [1, 4, 7])
    rep = s.export(tmp_path / "m.pt2", format="pt2", shrink=True)
    torch.manual_seed(0)
    hand = nn.Sequential(nn.Linear(12, 17), nn.ReLU(), nn.Linear(17, 16), nn.ReLU(), nn.Linear(16, 5))
    assert rep["macs_before"] == count_macs(models.mlp(), x)[0]
    assert rep["macs_shrunk"] == count_macs(hand, x)[0] < rep["macs_before"]
    assert rep["macs_shrunk"] <= rep["macs_masked"] < rep["macs_before"]
    lat = rep["latency"]
    assert lat["device"] == "cpu" and lat["original_ms"]["min"] <= lat["original_ms"]["median"] <= lat["original_ms"]["max"]
    assert lat["speedup"] == pytest.approx(lat["original_ms"]["median"] / lat["shrunk_ms"]["median"])


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_language_model_evaluation_reports_next_token_loss_and_perplexity(tmp_path, cli, suffix):
    import json
    import math

    model = zoo.tied_lm()
    sd = tmp_path / "lm.pt"
    torch.save(model.state_dict(), sd)
    ids = torch.randint(0, 40, (23, 9), generator=torch.Generator().manual_seed(0))
    data = tmp_path / f"tokens{suffix}"
    if suffix == ".npz":
        np.savez(data, x=ids.numpy())
    else:
        torch.save({"x": ids}, data)
    arch = ["--arch", "tests.core.zoo:tied_lm"]
    code, out, err = cli("eval", sd, *arch, "--data", data, "--batch-size", "5", "--json")
    assert code == 0, err
    r = json.loads(out)
    with torch.no_grad():
        logits = model(ids[:, :-1]).reshape(-1, 40)
        target = ids[:, 1:].reshape(-1)
        loss = torch.nn.functional.cross_entropy(logits, target).item()
        acc = (logits.argmax(1) == target).float().mean().item()
    assert r["tokens"] == 23 * 8 and r["samples"] == 23
    assert r["loss"] == pytest.approx(loss, rel=1e-5) and r["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
    assert r["accuracy"] == pytest.approx(acc)
    code, out, err = cli("eval", sd, *arch, "--data", data)
    assert code == 0 and "tokens 184" in out
    assert float(out.split("perplexity ")[1].split()[0]) == pytest.approx(math.exp(loss), rel=1e-5)
    code, out, err = cli("prune", sd, *arch, "--data", data, "--amount", "0.3", "--method", "obd", "--out", tmp_path / "p.pt")
    assert code == 0, err
