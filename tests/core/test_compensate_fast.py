"""The fast paths of compensation give what the plain ones give: SparseGPT's inverse factor from
one Cholesky (against the three-factorisation formula of the reference), and calibration that
hands one ``nn.Sequential``'s cached outputs to the next (against running every layer's inputs
from the model's input)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pruneviz import Session
from pruneviz.core import compensate_solve as solve
from pruneviz.core import layer_hessian as cal
from pruneviz.core.model_io.common import LoadedModel


def test_inverse_factor_equals_the_reference_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 200, 60, dtype=torch.float64) @ (torch.eye(60, dtype=torch.float64) + 0.5 * torch.randn(60, 60, dtype=torch.float64))
    hd = solve.damped(x.transpose(1, 2) @ x, 0.01)
    ref = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hd)), upper=True)
    got = solve.inverse_factor(hd)
    assert torch.equal(got, got.triu())
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class _Staged(nn.Module):
    """A stem, two Sequential stages fed one into the other (as ResNet's), a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.stage1 = nn.Sequential(_Block(6), _Block(6))
        self.stage2 = nn.Sequential(_Block(6), _Block(6))
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = self.stage2(self.stage1(F.relu(self.stem(x))))
        return self.head(x.mean((2, 3)))


def _compensated(x: torch.Tensor, mode: str) -> tuple[dict[str, torch.Tensor], int]:
    model = _Staged().eval()
    seen = []
    model.stem.register_forward_hook(lambda m, i, o: seen.append(len(i[0])) if len(i[0]) > 2 else None)
    s = Session(LoadedModel(model, "toy", "state_dict", None, x[:1], True), None, device="cpu")
    s.prune(0.6, compensate=mode, calib=x)
    return {layer.name: s.weight(layer.name) for layer in s.layers}, sum(seen)


@pytest.mark.parametrize("mode", ["exact", "sparsegpt"])
def test_the_next_stage_starts_from_the_cached_outputs_of_the_last(mode, monkeypatch):
    """The stem runs over the calibration samples twice (to cache stage1's inputs, and for the
    head, which no Sequential holds), not a third time for stage2; the weights are those of a
    calibration that runs every layer's inputs from the model's input."""
    x = torch.randn(64, 3, 8, 8)
    fast, stem_samples = _compensated(x, mode)
    assert stem_samples == 2 * len(x)
    monkeypatch.setattr(cal, "CACHE_BYTES", 0)  # no cache: every layer from the model's input
    plain, plain_samples = _compensated(x, mode)
    # one batch each to find that a stage's cache does not fit, then 4 convs a stage and the head
    assert plain_samples == 2 * 32 + len(x) * (4 + 4 + 1)
    for n in plain:
        assert torch.allclose(fast[n], plain[n], atol=1e-6, rtol=0), n
