"""One loss everywhere: fine-tuning, schedules, data-driven scores and sensitivity run on models
that return output objects, dicts and tuples (as Hugging Face models do), and on a language model
whose loss is per token; pruned entries stay exactly 0."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pruneviz.core import losses
from pruneviz.core.data import EvalData
from pruneviz.core.importance import DATA_METHODS, NEURON_METHODS, WEIGHT_METHODS
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from pruneviz.core.training import complete


@dataclass
class Out:
    logits: torch.Tensor
    hidden: torch.Tensor


class MLP(nn.Module):
    """Classifier whose output is wrapped the way ``kind`` says."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        z = self.fc2(h)
        return {"object": lambda: Out(z, h), "dict": lambda: {"logits": z, "hidden": h}, "tuple": lambda: (z, h), "tensor": lambda: z}[self.kind]()


class TinyLM(nn.Module):
    """Token ids -> logits per token, returned as an output object (Hugging Face's causal LMs)."""

    def __init__(self, vocab: int = 20):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.fc1 = nn.Linear(16, 24)
        self.fc2 = nn.Linear(24, 16)
        self.head = nn.Linear(16, vocab)

    def forward(self, ids):
        h = self.embed(ids)
        h = h + self.fc2(F.relu(self.fc1(h)))
        return Out(self.head(h), h)


def _session(kind: str) -> Session:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if kind == "lm":
        model = TinyLM().eval()
        ids = torch.randint(0, 20, (48, 9), generator=g)
        data = EvalData(ids[:, :-1].contiguous(), ids[:, 1:].contiguous(), "tokens")  # next-token labels
    else:
        model = MLP(kind).eval()
        x = torch.randn(48, 12, generator=g)
        data = EvalData(x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long(), "synthetic")
    return Session(LoadedModel(model, kind, "state_dict", None, data.x[:1], True), data, device="cpu")


def _zeros_hold(s: Session) -> None:
    for layer in s.layers:
        w = s.weight(layer.name)
        assert bool((w[~s.mask(layer.name)] == 0).all()), layer.name


KINDS = ["object", "dict", "tuple", "lm"]


def test_task_loss_reads_every_output_kind_and_equals_cross_entropy():
    z, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 2, 0])
    plain = F.cross_entropy(z, y)
    for out in (z, Out(z, z), {"logits": z}, (z, z)):
        torch.testing.assert_close(losses.task_loss(out, y), plain)
    zt, yt = torch.randn(2, 3, 7), torch.tensor([[1, 2, -100], [0, 6, 5]])
    keep = yt.reshape(-1) != -100
    torch.testing.assert_close(losses.task_loss(zt, yt), F.cross_entropy(zt.reshape(-1, 7)[keep], yt.reshape(-1)[keep]))
    own = {"loss": torch.tensor(1.5), "logits": z}
    assert float(losses.task_loss(own, None)) == 1.5


@pytest.mark.parametrize("kind", KINDS)
def test_finetune_runs_on_every_output_kind_and_keeps_pruned_zero(kind):
    s = _session(kind)
    s.prune(0.5)
    before = {layer.name: s.weight(layer.name).clone() for layer in s.layers}
    result = complete(s.finetune(1, data=s.data, batch_size=16))
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(p["loss"])) for p in result.curve)
    _zeros_hold(s)
    assert any(not torch.equal(s.weight(n), w) for n, w in before.items())  # it trained


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("schedule", ["before", "regrow"])
def test_schedules_with_snip_run_on_every_output_kind(kind, schedule):
    s = _session(kind)
    complete(s.train(schedule, 0.5, 1, method="snip" if schedule == "before" else "magnitude", data=s.data, batch_size=16))
    _zeros_hold(s)
    assert abs(s.sparsity() - 0.5) < 0.02


@pytest.mark.parametrize("kind", KINDS)
def test_every_data_driven_score_and_sensitivity_run_on_every_output_kind(kind):
    s = _session(kind)
    s.prune(0.3)
    for method in sorted(DATA_METHODS):
        for granularity in ("weight", "neuron"):
            if method not in (WEIGHT_METHODS if granularity == "weight" else NEURON_METHODS):
                continue  # e.g. activation is per neuron, wanda-layer per weight
            got = s.scores("fc1", method, granularity)
            assert bool(torch.isfinite(got).all()), (method, granularity)
    result = complete(s.sensitivity(layers=["fc1"], levels=[0.5]))
    assert set(result["layers"]) == {"fc1"}
    _zeros_hold(s)


def test_language_model_loss_is_next_token_cross_entropy():
    s = _session("lm")
    with torch.no_grad():
        z = s.model(s.data.x).logits
    expected = F.cross_entropy(z.reshape(-1, z.shape[-1]), s.data.y.reshape(-1))
    assert s.evaluate().tokens == s.data.y.numel()
    assert s.evaluate().loss == pytest.approx(float(expected), rel=1e-5)
