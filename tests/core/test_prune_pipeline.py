"""``prune``'s one pipeline (pruneviz.core.prune_pipeline): the CLI's report is the pipeline's,
a refused job changes nothing, and each stage is its own undo step."""

import json

import pytest
import torch

from pruneviz.cli import main
from pruneviz.core import prune_pipeline
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session
from pruneviz.core.training import complete


def _masks(s):
    return {n: m.clone() for n, m in s.masks.elem.items()}, {n: p.detach().clone() for n, p in s.model.state_dict().items()}


def test_the_cli_prints_the_pipelines_report(tmp_path, capsys):
    out, rep_path = tmp_path / "m.pt", tmp_path / "r.json"
    code = main(["prune", "demo:mlp", "--amount", "0.5", "--data", "demo:digits", "--granularity", "2:4", "--compensate", "sparsegpt", "--out", str(out), "--report", str(rep_path), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    s = Session.open("demo:mlp", data="demo:digits")
    job = prune_pipeline.PruneJob(amount=0.5, granularity="2:4", compensate="sparsegpt", out=str(tmp_path / "m2.pt"))
    ours = complete(prune_pipeline.run(s, job))
    for key in ("pruned", "unit", "sparsity", "params_nonzero", "accuracy_before", "accuracy_pruned", "accuracy_after", "compensation", "conforms"):
        assert printed[key] == ours[key], key
    assert json.loads(rep_path.read_text())["pruned"] == printed["pruned"] > 0
    assert printed["conforms"].get("2:4")  # SparseGPT chose 2:4 masks


@pytest.mark.parametrize("bad", [
    dict(finetune=1, lr=-1.0),  # a bad setting of a later stage
    dict(lr=1e-3),  # a fine-tuning setting without fine-tuning
    dict(report="r.json"),  # a report without a model file
    dict(granularity="3:3"),  # not a unit
    dict(scope="sensitivity", compensate="exact"),
])
def test_a_refused_job_changes_nothing(bad, tmp_path):
    s = Session.open("demo:mlp", data="demo:digits")
    masks, weights = _masks(s)
    job = prune_pipeline.PruneJob(amount=0.5, **{k: (str(tmp_path / v) if k == "report" else v) for k, v in bad.items()})
    with pytest.raises(PrunevizError):
        complete(prune_pipeline.run(s, job))
    assert s.history.index == 0
    after_masks, after_weights = _masks(s)
    assert all(torch.equal(masks[n], after_masks[n]) for n in masks)
    assert all(torch.equal(weights[n], after_weights[n]) for n in weights)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_prune_then_finetune_are_two_undo_steps_and_undo_is_exact(tmp_path):
    s = Session.open("demo:mlp", data="demo:digits")
    masks, weights = _masks(s)
    rep = complete(prune_pipeline.run(s, prune_pipeline.PruneJob(amount=0.6, finetune=1)))
    assert s.history.index == 2 and rep["finetune"]["epochs"] == 1
    assert rep["accuracy_after"] == s.evaluate().accuracy
    s.undo(), s.undo()
    after_masks, after_weights = _masks(s)
    assert all(torch.equal(masks[n], after_masks[n]) for n in masks)
    assert all(torch.equal(weights[n], after_weights[n]) for n in weights)


def test_without_a_file_and_measuring_nothing_is_evaluated():
    """The app's Prune… runs the pipeline with measure=False: its live evaluation follows anyway."""
    s = Session.open("demo:mlp", data="demo:digits")

    def refuse(*a, **k):
        raise AssertionError("evaluated")

    s.evaluate = s.baseline = refuse
    rep = complete(prune_pipeline.run(s, prune_pipeline.PruneJob(amount=0.3, granularity="neuron", measure=False)))
    assert rep["pruned"] == sum(int((~m).sum()) for m in s.masks.chan.values()) > 0
    assert rep["unit"] == "neurons" and rep["sparsity"] == s.sparsity() > 0
    assert "accuracy_before" not in rep
