"""Each importance criterion equals its published formula, computed by hand here on a toy model.

Taylor: Molchanov et al. 2019; APoZ and activation after BatchNorm and ReLU: Hu et al. 2016;
Wanda compared within each output row: Sun et al. 2023."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from pruneviz.core import analysis as an
from pruneviz.core import importance as imp
from pruneviz.core import ranking as rk
from pruneviz.core.activity import activity_chains
from pruneviz.core.data import EvalData
from pruneviz.core.inventory import find_layers
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import models


def toy_data(n, shape, classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def session(model, x, y):
    loaded = LoadedModel(model=copy.deepcopy(model), spec="toy", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    return Session(loaded, EvalData(x=x, y=y, spec="toy.npz"), device="cpu")


def conv_bn_relu():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 4)).eval()
    bn = m[1]
    with torch.no_grad():  # a shift that moves many outputs across zero, and scales of both signs
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.3, 2.0)
        bn.weight.copy_(torch.tensor([1.0, -0.7, 0.4, 1.5, -1.2, 0.9]))
        bn.bias.copy_(torch.tensor([0.6, -0.4, 0.2, -0.9, 0.3, 0.0]))
    return m


# ---------------------------------------------------------------- Taylor (Molchanov et al. 2019)
def test_taylor_is_the_mean_over_minibatches_of_squared_gradient_times_weight():
    model = models.mlp()
    layers, params = find_layers(model), dict(model.named_parameters())
    x, y = toy_data(10, (12,), 5)
    opts = imp.ScoreOptions(seed=0, calib_samples=10, batch_size=4)  # batches of 4, 4 and 2
    xs, ys = imp.calibration_set(x, y, 10, 0)
    data = EvalData(x=x, y=y, spec="t")
    weights = [params[layer.weight] for layer in layers]
    w_terms = [torch.zeros_like(w) for w in weights]
    n_terms = [torch.zeros(w.shape[0]) for w in weights]
    all_grad = [torch.zeros_like(w) for w in weights]
    for a, b in ((0, 4), (4, 8), (8, 10)):
        grads = torch.autograd.grad(F.cross_entropy(model(xs[a:b]), ys[a:b]), weights)  # the batch's mean loss
        for k, (w, g) in enumerate(zip(weights, grads)):
            w_terms[k] += (b - a) * (g * w).detach() ** 2
            n_terms[k] += (b - a) * ((g * w).sum(1)).detach() ** 2
            all_grad[k] += (b - a) * g / 10
    taylor_w = imp.weight_scores("taylor", model, layers, params, data, opts)
    taylor_n = imp.neuron_scores("taylor", model, layers, params, data, opts)
    mean_w = imp.weight_scores("taylor-mean", model, layers, params, data, opts)
    for k, layer in enumerate(layers):
        w = weights[k].detach()
        torch.testing.assert_close(taylor_w[layer.name], w_terms[k] / 10, rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(taylor_n[layer.name], n_terms[k] / 10, rtol=1e-4, atol=1e-12)
        # the former formula, one full-data mean gradient, lives on under its own name
        torch.testing.assert_close(mean_w[layer.name], (w * all_grad[k]).abs(), rtol=1e-4, atol=1e-9)
        # and it is not Molchanov's: the old `taylor` fails the oracle above
        assert not torch.allclose(mean_w[layer.name], w_terms[k] / 10, rtol=1e-2)
        # a neuron's term is the square of its summed contributions, not a sum of the weights' terms
        assert not torch.allclose(taylor_n[layer.name], (w_terms[k] / 10).sum(1), rtol=1e-2)


# ------------------------------------------------- APoZ and activation (Hu et al. 2016)
def test_apoz_and_activation_are_read_after_the_batchnorm_and_relu_that_follow_a_conv():
    model = conv_bn_relu()
    x, y = toy_data(24, (2, 5, 5), 4)
    s = session(model, x, y)
    assert activity_chains(s.model, ["0", "4"], x) == {"0": ("0", "1", "2"), "4": ("4",)}
    with torch.no_grad():
        a = torch.relu(model[1](model[0](x)))  # [n, 6, 5, 5]: what Hu et al. count zeros of
        logits = model(x)
    apoz = (a <= 0).float().mean(dim=(0, 2, 3))
    torch.testing.assert_close(s.scores("0", "apoz", "neuron"), 1 - apoz)
    torch.testing.assert_close(s.scores("0", "activation", "neuron"), a.abs().mean(dim=(0, 2, 3)))
    # the output layer has nothing after it: its own outputs
    torch.testing.assert_close(s.scores("4", "activation", "neuron"), logits.abs().mean(0))
    # the conv's own output (what was measured before) gives other figures
    with torch.no_grad():
        raw = model[0](x)
    assert not torch.allclose(s.scores("0", "apoz", "neuron"), 1 - (raw <= 0).float().mean(dim=(0, 2, 3)))
    assert not torch.allclose(s.scores("0", "activation", "neuron"), raw.abs().mean(dim=(0, 2, 3)))


class SharedRelu(nn.Module):
    """A ResNet-style block: one ReLU module used twice, the second time after a residual add."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv1, self.bn1 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(3 * 4 * 4, 3)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)

    def forward(self, x):
        z = self.relu(self.bn1(self.conv1(x)))
        z = self.relu(self.bn2(self.conv2(z)) + x)
        return self.head(z.flatten(1))


def test_activity_follows_the_tensors_through_a_shared_relu_and_stops_at_a_residual_add():
    model = SharedRelu().eval()
    x, y = toy_data(16, (3, 4, 4), 3, seed=2)
    s = session(model, x, y)
    chains = activity_chains(s.model, ["conv1", "conv2", "head"], x)
    assert chains == {"conv1": ("conv1", "bn1", "relu"), "conv2": ("conv2", "bn2"), "head": ("head",)}
    with torch.no_grad():
        a1 = torch.relu(model.bn1(model.conv1(x)))
        a2 = model.bn2(model.conv2(a1))  # the ReLU comes after the add: BatchNorm's output is read
    torch.testing.assert_close(s.scores("conv1", "apoz", "neuron"), 1 - (a1 <= 0).float().mean(dim=(0, 2, 3)))
    torch.testing.assert_close(s.scores("conv2", "activation", "neuron"), a2.abs().mean(dim=(0, 2, 3)))


def test_an_mlp_reads_its_relu_outputs():
    model = models.mlp()
    x, y = toy_data(30, (12,), 5, seed=3)
    s = session(model, x, y)
    with torch.no_grad():
        h = torch.relu(model[0](x))
    torch.testing.assert_close(s.scores("0", "activation", "neuron"), h.mean(0))  # |relu| = relu
    torch.testing.assert_close(s.scores("0", "apoz", "neuron"), 1 - (h == 0).float().mean(0))


# ---------------------------------------------------------------- Wanda (Sun et al. 2023)
def test_wanda_prunes_the_same_fraction_of_every_output_row():
    model = models.mlp()
    x, y = toy_data(40, (12,), 5, seed=4)
    s = session(model, x, y)
    w = model[0].weight.detach()
    score = w.abs() * x.norm(dim=0).view(1, -1)  # |W_ij| · ‖X_j‖₂
    torch.testing.assert_close(s.scores("0", "wanda"), score)
    s.prune_weights("0", torch.tensor([0, 1, 2, 13]))  # rows 0 and 1 start with fewer kept weights
    kept = s.mask("0")
    chosen = s.preview(0.5, "layer", "weight", "wanda", ["0"])["0"]
    for r in range(w.shape[0]):  # by hand: the round(0.5 · kept) lowest kept scores of each row
        cand = kept[r].nonzero().flatten()
        k = round(0.5 * len(cand))
        want = torch.zeros(w.shape[1], dtype=torch.bool)
        want[cand[torch.topk(score[r, cand], k, largest=False).indices]] = True
        assert torch.equal(chosen[r], want), r
    assert chosen.sum(1).tolist()[:3] == [4, 6, 6]  # 9, 11 and 12 kept: round(4.5), round(5.5), 6
    # wanda-layer: one ranking over the layer, as before (rows lose unequal shares)
    layer_wide = s.preview(0.5, "layer", "weight", "wanda-layer", ["0"])["0"]
    assert torch.equal(layer_wide, rk.lowest(score, kept, round(0.5 * int(kept.sum()))))
    assert len(set(layer_wide.sum(1).tolist())) > 1


def test_wanda_rows_of_a_conv_are_its_filters_and_sensitivity_chooses_as_prune_does():
    model = conv_bn_relu()
    x, y = toy_data(20, (2, 5, 5), 4, seed=5)
    s = session(model, x, y)
    chosen = s.preview(0.3, "layer", "weight", "wanda", ["0"])["0"]
    assert chosen.reshape(6, -1).sum(1).tolist() == [round(0.3 * 18)] * 6
    levels = [0.3, 0.6]
    for level, idx in zip(levels, an.level_choices(s, "0", "wanda", levels)):
        assert torch.equal(idx, s.preview(level, "layer", "weight", "wanda", ["0"])["0"].reshape(-1).nonzero().flatten())
    n = s.prune(0.3, "layer", "weight", "wanda", ["0"])
    assert n == 6 * round(0.3 * 18)
