"""Incremental evaluation of traced graphs (pruneviz.core.incremental) against its oracle, the full
pass: after every edit the result from the cached cut equals a full evaluation exactly (accuracy,
loss, per-class accuracy, and every batch's logits bit for bit on the CPU).

Every scenario is also run with the cache made stale on purpose (an edit drops nothing): each must
then fail, which shows it would catch an incremental path that starts from a stale cut.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from pruneviz.core import evaluate as ev
from pruneviz.core import incremental
from pruneviz.core.data import EvalData
from pruneviz.core.graph_cuts import Graph
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.outputs import logits
from pruneviz.core.session import Session
from pruneviz.core.training import complete

from . import zoo

FAMILIES = {f.name: f for f in zoo.ZOO}
N = 80


def _session(family: zoo.Family, n: int = N, batch: int = 16, seed: int = 0) -> Session:
    model = family.factory()
    x = zoo.inputs(family, n, seed)
    with torch.no_grad():
        out = model(x)
    out = out if isinstance(out, torch.Tensor) else out.logits
    # labels the model half gets right: accuracy and per-class figures that edits move
    y = torch.where(torch.rand(out.shape[:-1], generator=torch.Generator().manual_seed(seed)) < 0.5, out.argmax(-1), torch.randint(0, out.shape[-1], out.shape[:-1], generator=torch.Generator().manual_seed(seed + 1)))
    return Session(LoadedModel(model, family.name, "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec=f"{family.name}-{seed}"), device="cpu", batch_size=batch)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def check_exact(s: Session) -> int:
    """The next incremental evaluation equals a full pass exactly; returns where it started."""
    x, _ = s.eval_tensors()
    graph = s.cache.graph
    assert isinstance(graph, Graph), f"not traced: {graph}"
    # the logits, batch by batch, through the path evaluate_iter takes (from the cache as it is)
    bounds = ev.batches(len(x), s.batch_size, 32)
    gpass = incremental.GraphPass(graph, s.model, s.cache, bounds)
    with torch.inference_mode():
        for b, (i, j) in enumerate(bounds):
            assert torch.equal(logits(gpass.forward(b, x[i:j])), logits(s.model(x[i:j]))), f"logits differ in batch {b} (from cut {gpass.start})"
    inc = s.evaluate()
    full = s.evaluate(incremental=False)
    assert inc.start == gpass.start
    assert (inc.accuracy, inc.loss, inc.correct) == (full.accuracy, full.loss, full.correct)
    assert all(_same(a, b) for a, b in zip(inc.per_class, full.per_class, strict=True))
    return inc.start


def _random_edit(s: Session, rng: random.Random) -> None:
    layer = rng.choice(s.layers)
    kind = rng.random()
    neurons = s.neuron_pruning and not s.coupling[layer.name].refused  # (a LayerNorm's feeder is refused)
    if kind < 0.35 and neurons:
        k = layer.out_channels
        s.prune_neurons(layer.name, rng.sample(range(k), max(1, k // 4)))
    elif kind < 0.45 and neurons:
        s.restore_neurons(layer.name, list(range(layer.out_channels)))
    elif kind < 0.75:
        s.prune_weights(layer.name, torch.tensor(rng.sample(range(layer.numel), max(1, layer.numel // 5))))
    elif kind < 0.85:
        s.restore_weights(layer.name, torch.arange(layer.numel))
    elif kind < 0.95:
        s.undo()
    else:
        s.redo()


def random_edits(name: str, steps: int = 10, seed: int = 0) -> list[int]:
    s = _session(FAMILIES[name])
    s.evaluate()  # traces the graph and fills the cache
    rng = random.Random(seed)
    starts = []
    for _ in range(steps):
        _random_edit(s, rng)
        starts.append(check_exact(s))
    while s.undo() is not None:  # all the way back, then forward again
        starts.append(check_exact(s))
    while s.redo() is not None:
        starts.append(check_exact(s))
    return starts


@pytest.mark.parametrize("name", ["residual", "dense", "depthwise", "vit_separate", "vit_fused", "conv1d", "mha", "grouped"])
def test_random_edits_undo_and_redo_equal_a_full_pass(name):
    starts = random_edits(name)
    assert max(starts) > 0  # some evaluations did start from a cached cut


def edit_last_stage_of_resnet18() -> list[int]:
    """Edits in the last stage start from the cut just before it; in the first, near the input."""
    fam = zoo.Family("resnet18", lambda: zoo.resnet18(4), (3, 16, 16), "layer4.1.conv1", (0,))
    s = _session(fam, n=48, batch=16)
    s.evaluate()
    starts = []
    s.prune_neurons("layer4.1.conv1", [1, 5, 9])
    starts.append(check_exact(s))
    s.prune_weights("layer4.0.conv2", torch.arange(0, 500, 3))
    starts.append(check_exact(s))
    s.undo()
    starts.append(check_exact(s))
    s.prune_neurons("layer1.0.conv1", [0, 2])
    starts.append(check_exact(s))
    return starts


@pytest.mark.slow  # a ResNet-18-shaped model; quick: test_probe_edits_start_from_the_cut_before_the_edited_layer
def test_resnet18_shape_starts_from_the_cut_before_the_edited_block():
    starts = edit_last_stage_of_resnet18()
    assert starts[0] > starts[3] > 0  # the last stage starts late, the first stage early


def plan_switches() -> list[int]:
    s = _session(FAMILIES["residual"])
    s.evaluate()
    s.prune_weights("head", torch.arange(0, 32, 2))
    s.prune_weights("conv2", torch.arange(0, 300, 5))
    check_exact(s)
    s.undo()
    s.prune_neurons("conv1", [1, 6])  # a second plan
    starts = [check_exact(s)]
    s.switch_plan("plan 1")
    starts.append(check_exact(s))
    s.switch_plan("plan 2")
    starts.append(check_exact(s))
    return starts


def test_plan_switches_equal_a_full_pass():
    assert max(plan_switches()) > 0


def finetuning() -> None:
    s = _session(FAMILIES["vit_fused"])
    s.evaluate()
    s.prune_weights("fc1", torch.arange(0, 256, 3))
    check_exact(s)
    train = s.data.rows(slice(0, 64))
    complete(s.finetune(1, lr=0.05, data=EvalData(train.x, train.y, "train")))
    check_exact(s)
    s.undo()
    check_exact(s)


@pytest.mark.slow
def test_finetuning_and_its_undo_equal_a_full_pass():
    finetuning()


def data_and_batch_size() -> None:
    s = _session(FAMILIES["dense"])
    s.evaluate()
    s.prune_weights("conv2", torch.arange(0, 300, 4))
    check_exact(s)
    s.batch_size = 24
    s.prune_weights("head", torch.arange(0, 50, 2))
    check_exact(s)
    other = _session(FAMILIES["dense"], seed=3).data
    s.set_data(other)
    s.evaluate()
    s.prune_weights("head", torch.arange(1, 50, 2))
    check_exact(s)


def test_data_and_batch_size_changes_equal_a_full_pass():
    data_and_batch_size()


def test_an_untraceable_model_is_evaluated_in_full_and_says_why_once():
    s = _session(FAMILIES["branching"])
    results = [s.evaluate()]
    s.prune_weights("fc1", torch.arange(0, 100, 3))
    results.append(s.evaluate())
    full = s.evaluate(incremental=False)
    assert isinstance(s.cache.graph, str) and "control flow" in s.cache.graph
    assert [n for n in s.notices if "incremental evaluation is off" in n] == [s.cache.note]
    assert results[-1].start == 0 and (results[-1].accuracy, results[-1].loss) == (full.accuracy, full.loss)
    assert s.cache.nbytes == 0 and not s.incremental
    assert "full pass" in s.evaluation.cache_info()


def test_a_graph_that_computes_something_else_is_not_used():
    """The trace is checked against the model: a forward that depends on a Python-side counter
    (traced once, as a constant) gives other logits on the next call and is refused."""

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(12, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.fc(x) * self.calls

    torch.manual_seed(0)
    model = Counting().eval()
    x = torch.randn(40, 12)
    s = Session(LoadedModel(model, "counting", "state_dict", None, x[:1], True), EvalData(x=x, y=torch.zeros(40, dtype=torch.long), spec="c"), device="cpu")
    s.evaluate()
    assert isinstance(s.cache.graph, str) and "exactly" in s.cache.graph


def test_probe_edits_start_from_the_cut_before_the_edited_layer():
    """Knockout and sensitivity probes use the same path: an edit of the last layer starts late
    and its figures equal a full evaluation of the same edit in the session."""
    from pruneviz.core.history import Flip
    from pruneviz.core.workers import Probe

    s = _session(FAMILIES["vit_separate"])
    s.evaluate()
    probe = Probe(s)
    probe.prime()
    flips = [Flip.make("elem", "fc2", torch.arange(0, 400, 7), 512)]
    (fig,) = probe.run([("k", flips)])
    s.apply_flips(flips)
    full = s.evaluate(incremental=False)
    assert fig["start"] > 0 and (fig["accuracy"], fig["loss"]) == (full.accuracy, full.loss)
    assert 0 < fig["start"] <= probe.child_of[("elem", "fc2")]


@pytest.mark.slow  # many evaluations under a short cache budget; quick: test_probe_edits_start_from_the_cut_before_the_edited_layer
def test_the_cache_keeps_the_cut_before_a_recent_edit_when_the_budget_is_short():
    fam = zoo.Family("resnet18", lambda: zoo.resnet18(4), (3, 16, 16), "layer4.1.conv1", (0,))
    s = _session(fam, n=32, batch=16)
    s.evaluate()
    graph = s.cache.graph
    cut = max(p for p in graph.cuts if p <= graph.position(["layer2.0.conv1"]))
    one = incremental.nbytes(s.cache.points[cut][0]) * 2  # two batches of that cut
    s.set_cache_budget(one + 1)  # room for about one cut
    s.evaluate()
    s.prune_weights("layer2.0.conv1", torch.arange(0, 100, 3))
    s.evaluate()  # stores the cut before the edited layer first, then nothing else fits
    assert cut in s.cache.points and s.cache.nbytes <= one + 1
    s.prune_weights("layer2.0.conv1", torch.arange(1, 100, 3))
    assert check_exact(s) == cut


SCENARIOS = {
    "random edits": lambda: random_edits("residual", steps=6),
    "resnet18": edit_last_stage_of_resnet18,
    "plan switches": plan_switches,
    "fine-tuning": finetuning,
    "data and batch size": data_and_batch_size,
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_catches_a_stale_cut(scenario, monkeypatch):
    """With invalidation broken (cuts after an edit are kept), every scenario above fails."""
    monkeypatch.setattr(ev.ActivationCache, "invalidate", lambda self, child: setattr(self, "generation", self.generation + 1))
    with pytest.raises((AssertionError, RuntimeError, IndexError)):
        SCENARIOS[scenario]()


@pytest.mark.slow
def test_a_hugging_face_model_that_fx_cannot_trace_goes_through_torch_export():
    """BERT (transformers 5 has no fx tracer, and torch.fx fails on its forward): exported with
    a dynamic batch, cut between its layers despite the attention mask that crosses them all,
    and exact after edits in its last and first layers."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=50, num_labels=3)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    x = torch.randint(0, 50, (48, 8), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (48,), generator=torch.Generator().manual_seed(1))
    s = Session(LoadedModel(model, "bert", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu", batch_size=16)
    s.evaluate()
    assert isinstance(s.cache.graph, Graph), s.cache.graph
    assert s.cache.graph.how in ("torch.export", "transformers.utils.fx")
    s.prune_weights("bert.encoder.layer.2.output.dense", torch.arange(0, 2048, 5))
    late = check_exact(s)
    s.prune_weights("bert.encoder.layer.0.attention.self.query", torch.arange(0, 1024, 7))
    early = check_exact(s)
    assert late > early > 0


def test_a_graph_that_fails_on_a_batch_hands_over_to_the_model_with_one_note(monkeypatch):
    """A graph that raises mid-evaluation (an exported graph's shape guard on a last batch of
    one) leaves that evaluation right (the model runs the batch) and turns the graph off."""
    s = _session(FAMILIES["residual"])
    s.evaluate()
    s.prune_weights("conv2", torch.arange(0, 300, 4))
    real = incremental._Runner.forward
    calls = []

    def flaky(self, x, *args):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("guard failed on purpose")
        return real(self, x, *args)

    monkeypatch.setattr(incremental._Runner, "forward", flaky)
    inc = s.evaluate()
    full = s.evaluate(incremental=False)
    assert (inc.correct, inc.loss) == (full.correct, full.loss)
    assert isinstance(s.cache.graph, str) and "failed on a batch" in s.cache.graph and s.cache.nbytes == 0
    assert len([n for n in s.notices if "incremental evaluation is off" in n]) == 1
    s.prune_weights("conv2", torch.arange(1, 300, 4))
    assert s.evaluate().start == 0 and len(calls) == 3  # full passes of the model from now on
