"""Compensation against oracles written here: per-row ``torch.linalg.lstsq`` for ``exact`` on every
layer kind (Linear, Conv2d, grouped and depthwise Conv2d, Conv1d, GPT-2's Conv1D), a plain
re-implementation of SparseGPT's Algorithm 1 for ``sparsegpt``, accuracy over retrained seeds,
memory while calibrating, cancel and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pruneviz import Session
from pruneviz.core.edit_labels import prune_label
from pruneviz.core import compensate as comp
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io.common import LoadedModel
from tests.core import zoo

# Conv1dNet's even kernel with padding="same": torch says it pads a copy, which is the point
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _session(model: nn.Module, x: torch.Tensor, spec: str = "toy") -> Session:
    return Session(LoadedModel(model.eval(), spec, "state_dict", None, x[:1], True), None, device="cpu")


class Conv1dNet(nn.Module):
    """Conv1d layers: plain, 'same' padding with an even kernel, reflect padding in 2 groups."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c2 = nn.Conv1d(8, 8, 4, padding="same")
        self.c3 = nn.Conv1d(8, 6, 3, padding=2, dilation=2, groups=2, padding_mode="reflect", stride=2)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(x))))))
        return self.head(x.mean(-1))


def _layer_input(s: Session, name: str, x: torch.Tensor) -> torch.Tensor:
    got = []
    h = dict(s.model.named_modules())[name].register_forward_hook(lambda m, i, o: got.append(i[0].detach()))
    with torch.no_grad():
        s.model(x)
    h.remove()
    return torch.cat(got)


def _columns(module: nn.Module, inp: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per group: the inputs as rows [positions, cols] and the weight [rows, cols] — the columns
    taken through the layer's own convolution with one-hot kernels (its padding, stride, dilation)."""
    w = module.weight.detach().double()
    if isinstance(module, zoo.Conv1D):
        return [inp.reshape(-1, inp.shape[-1]).double()], [w.t()]
    if isinstance(module, nn.Linear):
        return [inp.reshape(-1, inp.shape[-1]).double()], [w]
    c_in, kk = module.in_channels, w[0, 0].numel()
    probe = type(module)(c_in, c_in * kk, module.kernel_size, stride=module.stride, padding=module.padding, dilation=module.dilation, groups=c_in, bias=False, padding_mode=module.padding_mode).double()
    with torch.no_grad():
        probe.weight.zero_()
        for c in range(c_in):
            for p in range(kk):
                probe.weight.view(c_in * kk, kk)[c * kk + p, p] = 1
        cols = probe(inp.double())  # [N, c_in·kk, *L]
    cols = cols.reshape(cols.shape[0], cols.shape[1], -1).transpose(1, 2).reshape(-1, c_in * kk)
    g, per_in, per_out = module.groups, c_in // module.groups, w.shape[0] // module.groups
    xs = [cols[:, i * per_in * kk : (i + 1) * per_in * kk] for i in range(g)]
    ws = [w[i * per_out : (i + 1) * per_out].reshape(per_out, -1) for i in range(g)]
    return xs, ws


def _errors(x_g, w_dense, w_new, kept) -> tuple[float, float, float]:
    """(compensated, per-row lstsq, plain masked) squared reconstruction errors of one group."""
    target = x_g @ w_dense.t()
    comp_err = float(((target - x_g @ w_new.t()) ** 2).sum())
    plain = float(((target - x_g @ (w_dense * kept).t()) ** 2).sum())
    best = 0.0
    for r in range(w_dense.shape[0]):
        K = kept[r]
        if K.any():
            sol = torch.linalg.lstsq(x_g[:, K], target[:, r : r + 1], driver="gelsd").solution
            best += float(((x_g[:, K] @ sol).squeeze(1) - target[:, r]).pow(2).sum())
        else:
            best += float(target[:, r].pow(2).sum())
    return comp_err, best, plain


def _check_exact(s: Session, x: torch.Tensor, amount: float = 0.6, **kw) -> dict[str, float]:
    """Prune with exact compensation; returns each layer's error / lstsq optimum (asserting the
    oracle's columns reproduce the layer's output)."""
    dense = {layer.name: s.weight(layer.name).double() for layer in s.layers}
    comp.prune(s, amount, "layer", "magnitude", None, x, mode="exact", **kw)
    modules = dict(s.model.named_modules())
    ratios = {}
    for layer in s.layers:
        m = modules[layer.name]
        inp = _layer_input(s, layer.name, x)  # through the compensated layers before it
        xs, ws = _columns(m, inp)
        mask = s.mask(layer.name)
        mask = mask.t() if isinstance(m, zoo.Conv1D) else mask
        g, per_out = len(xs), (mask.shape[0] // len(xs))
        dw = dense[layer.name].t() if isinstance(m, zoo.Conv1D) else dense[layer.name]
        with torch.no_grad():  # the oracle's columns give the layer's own output
            out = m(inp).double()
        out = out.reshape(out.shape[0], out.shape[1], -1).transpose(1, 2).reshape(-1, out.shape[1]) if out.dim() > 2 and not isinstance(m, (nn.Linear, zoo.Conv1D)) else out.reshape(-1, out.shape[-1])
        pred = torch.cat([xs[i] @ ws[i].t() for i in range(g)], 1) + (m.bias.detach().double() if m.bias is not None else 0)
        assert torch.allclose(out, pred, atol=1e-4), layer.name
        tot_c = tot_b = tot_p = 0.0
        for i in range(g):
            rows = slice(i * per_out, (i + 1) * per_out)
            kept = mask[rows].reshape(per_out, -1)
            c, b, p = _errors(xs[i], dw[rows].reshape(per_out, -1), ws[i], kept)
            tot_c, tot_b, tot_p = tot_c + c, tot_b + b, tot_p + p
        # error above the optimum, as a share of it; where lstsq fits exactly (fewer samples than
        # kept inputs), as a share of the plain masked error instead
        ratios[layer.name] = 1 + (tot_c - tot_b) / max(tot_b, 1e-6 * tot_p, 1e-30)
    return ratios


CASES = {
    "linear (demo:mlp)": lambda: (Session.open("demo:mlp"), comp.calibration_inputs(Session.open("demo:mlp"), "demo:digits-train", samples=512)),
    "conv2d": lambda: (zoo.plain_cnn(), zoo.inputs(zoo.ZOO[0], 64, 0)),
    "grouped conv2d": lambda: (zoo.grouped(), zoo.inputs(zoo.ZOO[5], 64, 0)),
    "depthwise-separable block": lambda: (zoo.depthwise(), zoo.inputs(zoo.ZOO[4], 64, 0)),
    "conv1d": lambda: (Conv1dNet(), torch.randn(64, 4, 20, generator=torch.Generator().manual_seed(0))),
    "gpt-2 conv1d": lambda: (zoo.conv1d_mlp(), zoo.inputs(zoo.ZOO[-1], 64, 0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exact_is_the_per_row_least_squares_optimum(case):
    model, x = CASES[case]()
    s = model if isinstance(model, Session) else _session(model, x)
    ratios = _check_exact(s, x)
    assert len(ratios) == len(s.layers)
    for name, r in ratios.items():
        assert r <= 1.001, (name, r)  # within 0.1 % of per-row lstsq on the same inputs
    assert s.history.labels == [prune_label(0.6, "layer", "weight", "magnitude", s.select_layers(None, "weight")) + ", compensated"]


@pytest.mark.slow  # checks the oracle itself with three compensations
def test_the_oracle_catches_a_large_lambda_and_a_wrong_mask():
    """Perturbed settings: SparseGPT's 1 % λ, or the solve done for another mask, leave more
    than 0.1 % above the optimum (so the oracle above can fail)."""
    s = Session.open("demo:mlp")
    x = comp.calibration_inputs(s, "demo:digits-train", samples=512)
    assert max(_check_exact(s, x, 0.7, damp=0.01).values()) > 1.001
    s = Session.open("demo:mlp")
    from pruneviz.core import compensate_solve as solve

    original = solve.exact

    def shifted(w, h, kept, damp=solve.DAMP_EXACT, **kw):  # solves for the mask one column over
        new = original(w, h, torch.roll(kept, 1, dims=2), damp, **kw)
        return torch.where(kept, new, torch.zeros((), dtype=new.dtype))

    solve.exact = shifted
    try:
        worst = max(_check_exact(s, x, 0.7).values())
    finally:
        solve.exact = original
    assert worst > 1.001


def _algorithm1(W: torch.Tensor, H: torch.Tensor, sparsity: float, blocksize: int = 128, percdamp: float = 0.01):
    """SparseGPT, Frantar & Alistarh 2023, Algorithm 1, written out plainly (no lazy batching:
    every column's error goes straight to all later columns). Each block prunes its share,
    round(p·cols_up_to_block_end·rows) − round(p·cols_before·rows), of lowest w²/[U]ᵢᵢ²."""
    W = W.double().clone()
    H = H.double().clone()
    rows, cols = W.shape
    H += percdamp * H.diagonal().mean() * torch.eye(cols, dtype=H.dtype)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)  # Cholesky(H⁻¹)ᵀ
    M = torch.zeros_like(W, dtype=torch.bool)  # True = pruned
    n_total = round(sparsity * rows * cols)
    for j in range(cols):
        if j % blocksize == 0:
            end = min(j + blocksize, cols)
            n = round(n_total * end / cols) - round(n_total * j / cols)
            score = W[:, j:end] ** 2 / U.diagonal()[j:end] ** 2
            order = torch.argsort(score.reshape(-1))[:n]
            blk = torch.zeros(score.numel(), dtype=torch.bool)
            blk[order] = True
            M[:, j:end] = blk.reshape(score.shape)
        err = torch.where(M[:, j], W[:, j], torch.zeros(rows, dtype=W.dtype)) / U[j, j]
        W[:, j:] -= err[:, None] * U[j, j:][None, :]
        W[M[:, j], j] = 0
    return W, ~M


def test_sparsegpt_equals_algorithm_1():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 40))
    x = torch.randn(600, 300) @ (torch.eye(300) + 0.3 * torch.randn(300, 300))  # correlated inputs
    s = _session(model, x)
    dense = s.weight("0")
    n = s.prune(0.5, compensate="sparsegpt", calib=x)
    w_ref, kept_ref = _algorithm1(dense, x.double().t() @ x.double(), 0.5)
    assert n == 6000 and torch.equal(s.mask("0"), kept_ref)
    assert torch.allclose(s.weight("0").double(), w_ref, atol=1e-5, rtol=0)
    assert s.history.labels == ["prune 50% weights in 0 by SparseGPT, compensated"]


@pytest.mark.slow  # compensation of a grouped and a Conv1D model; quick: test_exact_is_the_per_row_least_squares_optimum
def test_sparsegpt_on_grouped_and_conv1d_layers_prunes_each_layers_share():
    for model, x in (CASES["depthwise-separable block"](), CASES["gpt-2 conv1d"](), CASES["conv1d"]()):
        s = _session(model, x)
        s.prune(0.5, compensate="sparsegpt", calib=x)
        for layer in s.layers:
            assert abs(s.sparsity(layer.name) - 0.5) < 0.01, layer.name
        assert all(torch.equal(s.weight(n.name)[~s.mask(n.name)], torch.zeros(int((~s.mask(n.name)).sum()))) for n in s.layers)


def test_compensation_is_a_generator_that_yields_per_layer_and_cancels_cleanly():
    s = Session.open("demo:mlp", data="demo:digits")
    before = {layer.name: s.weight(layer.name, original=True) for layer in s.layers}
    seen = [p.text for p in comp.steps(s, 0.5, calib="demo:digits-train")]
    assert seen == [f"compensate {i + 1}/3 {n}: {st}" for i, n in enumerate(["0", "2", "4"]) for st in ("calibrate", "solve")]
    s.undo()
    cancel = threading.Event()
    gen = comp.steps(s, 0.5, calib="demo:digits-train", cancel=cancel)
    next(gen), next(gen), next(gen)  # layer 0 done, layer 2 calibrating
    cancel.set()
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value == 0 and s.sparsity() == 0 and s.history.labels == ["prune 50% weights in 0, 2, 4 by magnitude, compensated"]
    for layer in s.layers:
        assert torch.equal(s.weight(layer.name, original=True), before[layer.name])


def test_refusals_come_before_any_change():
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 3))
    x = torch.randn(20, 6)
    s = _session(model, x)
    with pytest.raises(PrunevizError, match=r"unknown compensation 'obs': choose exact or sparsegpt"):
        s.prune(0.5, compensate="obs", calib=x)
    with pytest.raises(PrunevizError, match=r"cannot compensate 0: its 6×6 Hessian needs .* but only .* is free"):
        comp.prune(s, 0.5, "layer", "magnitude", None, x, limit=100)
    t = _session(nn.Sequential(nn.Conv3d(2, 4, 1), nn.Flatten(), nn.Linear(4 * 27, 3)), torch.randn(5, 2, 3, 3, 3))
    with pytest.raises(PrunevizError, match=r"cannot compensate 0: supported are Linear, Conv1d, Conv2d .* not Conv3d"):
        t.prune(0.5, compensate=True, calib=torch.randn(5, 2, 3, 3, 3))
    assert s.sparsity() == 0 and t.sparsity() == 0 and s.history.labels == t.history.labels == []


_MEMORY_SCRIPT = r"""
import json, resource, sys, torch, torch.nn as nn
from pruneviz import Session
from pruneviz.core.edit_labels import prune_label
from pruneviz.core import compensate as comp, layer_hessian as cal
from pruneviz.core.model_io.common import LoadedModel
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 32 * 32, 4)).eval()
x = torch.randn(512, 3, 32, 32)
s = Session(LoadedModel(model, "toy", "state_dict", None, x[:1], True), None, device="cpu")
cal.CHUNK_BYTES = 16 * 2**20
with torch.no_grad():
    model(x[:32])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
comp.prune(s, 0.5, "layer", "magnitude", ["0", "2"], x, batch=32)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": after - before, "whole": 512 * 144 * 32 * 32 * 4}))
"""


@pytest.mark.slow  # a subprocess measuring peak memory; quick: the compensation oracles above
def test_calibration_memory_stays_within_its_bound():
    """Peak RSS growth while compensating a conv over 512 samples of 32×32: H (float64) + one
    unfolded chunk (16 MiB here) + one batch's activations stay under 100 MiB, while the layer's
    whole unfolded input would take 288 MiB (float32) on its own."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    assert fig["whole"] > 280 * 2**20
    assert fig["growth"] < 100 * 2**20, fig


def _retrained(seed: int, tmp) -> Session:
    from safetensors.torch import load_file

    from pruneviz.core import demo

    path = tmp / f"mlp_{seed}.safetensors"
    if not path.exists():
        demo.train("mlp", path, seed=seed)
    model = demo.build("mlp")
    model.load_state_dict(load_file(str(path)))
    return Session(LoadedModel(model.eval(), "demo:mlp", "demo", None, torch.zeros(1, 64), True), None, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exact", "sparsegpt"])
def test_compensated_accuracy_is_not_lower_over_retrained_seeds(mode, tmp_path_factory):
    """demo:mlp retrained with seeds 0-4, calibrated on demo:digits-train, measured on demo:digits.
    exact: on every seed at 70, 80 and 90 %. sparsegpt (its own mask): on the mean over the seeds;
    seed 4 at 90 % is the exception measured (0.5389 against plain 0.6000)."""
    from pruneviz.core.data import open_data

    tmp = tmp_path_factory.getbasetemp()
    held_out = open_data("demo:digits")
    for amount in (0.7, 0.8, 0.9):
        gains = []
        for seed in range(5):
            plain, s = _retrained(seed, tmp), _retrained(seed, tmp)
            plain.prune(amount)
            s.prune(amount, compensate=mode, calib="demo:digits-train")
            a_plain, a_comp = (_accuracy(t, held_out) for t in (plain, s))
            gains.append(a_comp - a_plain)
            if mode == "exact":
                assert a_comp >= a_plain, (mode, seed, amount, a_plain, a_comp)
        assert sum(gains) / len(gains) > 0, (mode, amount, gains)


def _accuracy(s: Session, data) -> float:
    with torch.no_grad():
        return float((s.model(data.x).argmax(1) == data.y).float().mean())


def test_cli_compensate_modes(capsys, tmp_path):
    from pruneviz.cli import main

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("prune", "demo:mlp", "--amount", "0.7", "--data", "demo:digits", "--compensate", "sparsegpt", "--json", "--out", str(tmp_path / "s.pt"))
    assert code == 0, err
    r = json.loads(out)
    assert r["compensation"] == "sparsegpt" and r["steps"] == ["prune 70% weights in 0, 2, 4 by SparseGPT, compensated"]
    assert r["accuracy_pruned"] > 0.9  # 0.9667 with the shipped weights; plain magnitude: 0.8667
    code, out, err = run("prune", "demo:mlp", "--amount", "0.7", "--compensate", "--out", str(tmp_path / "e.pt"))
    assert code == 0 and "(compensated)" in out, err  # the bare flag means exact
    code, out, err = run("prune", "demo:mlp", "--amount", "0.7", "--compensate", "obs", "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "invalid choice: 'obs'" in err and not (tmp_path / "x.pt").exists()
