"""Importance scores, one small function per method.

Weight scores have the weight's shape; neuron scores have one value per output neuron (row of a
Linear, filter of a Conv). Higher = more important; pruning removes the lowest.

===========  ==============================================================  =========================
method       weight score                                                    neuron score
===========  ==============================================================  =========================
magnitude    |w|                                                             ‖row‖₂ (``ln_structured``)
random       uniform, seeded per layer                                       uniform, seeded
taylor       mean over mini-batches of (g·w)², g the gradient of the         mean over mini-batches of
             batch's mean loss (Molchanov et al. 2019, "Importance           (Σ_row g·w)²: the unit's
             Estimation for Neural Network Pruning", eq. 8)                  own Taylor term (eq. 8)
taylor-mean  |w · ḡ|, ḡ the mean gradient over all calibration samples:       Σ row
             the first-order loss change on the whole calibration set
obd          ½ · w² · F, F = mean over samples of the squared per-sample      Σ row
             gradient: the empirical Fisher, a diagonal-Hessian approximation
             (LeCun et al. 1989, "Optimal Brain Damage")
wanda        |w| · ‖X_j‖₂ over calibration inputs (per input channel for      Σ row
             convs), compared *within each output row* at layer scope (Sun
             et al. 2023, "A Simple and Effective Pruning Approach for LLMs")
wanda-layer  the same score, compared across the whole layer                  —
activation   —                                                               mean |a|
apoz         —                                                               1 − fraction of a ≤ 0
===========  ==============================================================  =========================

``a``: the neuron's output after the normalisation and the non-linearity that follow the layer
(conv → BatchNorm → ReLU: the ReLU's output), as Hu et al. 2016 ("Network Trimming") measure
APoZ; see :mod:`pruneviz.core.activity` for how they are found and what is read when none
follows. For a ReLU, "≤ 0" counts exactly its zeros. Taylor's batches weigh by their size.

Which entries a score compares with is :data:`ROW_METHODS`: at layer scope those methods prune
the same fraction of every output row (:func:`pruneviz.core.ranking.lowest_per_row`); at global
scope every method is one ranking over the selected layers.

Data-driven methods run the *current* (masked) model over up to ``calib_samples`` samples of the
calibration data in eval mode; they never change the model or its ``.grad``. The samples are
chosen with the seed by their content, not their position (:func:`calibration_set`), so a
class-sorted file is sampled as fairly as a shuffled one and both give the same scores; every
statistic is a mean over samples (a short last batch weighs by its size).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from . import losses
from .errors import PrunevizError
from .activity import ChainReader, activity_chains
from .inventory import LayerInfo

WEIGHT_METHODS = ("magnitude", "random", "taylor", "taylor-mean", "obd", "wanda", "wanda-layer")
NEURON_METHODS = tuple(m for m in WEIGHT_METHODS if m != "wanda-layer") + ("activation", "apoz")
DATA_METHODS = frozenset({"taylor", "taylor-mean", "obd", "wanda", "wanda-layer", "activation", "apoz"})
#: weight methods whose scores are compared within each output row at layer scope (Sun et al. 2023)
ROW_METHODS = frozenset({"wanda"})
#: methods that read only the layer's own weights (cheap per layer, nothing to cache)
LOCAL_METHODS = frozenset({"magnitude", "random"})


@dataclass(frozen=True)
class ScoreOptions:
    seed: int = 0
    calib_samples: int = 512
    batch_size: int = 64


def check_method(method: str, granularity: str, has_data: bool) -> None:
    if granularity not in ("weight", "neuron"):
        raise PrunevizError(f"unknown granularity {granularity!r}: use weight or neuron")
    valid = WEIGHT_METHODS if granularity == "weight" else NEURON_METHODS
    if method not in valid:
        raise PrunevizError(f"unknown {granularity} importance method {method!r}: use one of {', '.join(valid)}")
    if method in DATA_METHODS and not has_data:
        raise PrunevizError(f"importance method {method!r} needs calibration data", hint="calib_data")


def _seeded(seed: int, name: str, shape, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return torch.rand(shape, generator=g).to(device)


def calibration_set(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` samples of ``x``/``y`` chosen with ``seed`` by their content
    (:func:`calibration_rows`)."""
    pick = calibration_rows(x, n, seed)
    return x[pick.to(x.device)], y[pick.to(y.device)]


def calibration_rows(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """The indices (CPU) of up to ``n`` samples of ``x`` chosen with ``seed`` by their content.

    Each sample gets a key, its dot product with a seeded random vector (float64); the ``n``
    smallest keys are taken, in key order. A random projection of the content is as good as a
    random draw for picking samples, and it does not depend on where a sample sits in the file:
    any permutation of the same data gives the same calibration batches."""
    total = len(x)
    g = torch.Generator().manual_seed(int(seed))
    width = x[0].numel() if total else 0
    direction = torch.randn(width, generator=g, dtype=torch.float64)
    keys = torch.empty(total, dtype=torch.float64)
    step = max(1, 2**24 // max(width, 1))  # about 128 MB of float64 at a time, whatever the sample size
    for i in range(0, total, step):
        rows = x[i : i + step].reshape(-1, width).to("cpu", torch.float64)
        keys[i : i + step] = (rows * direction).sum(1)
    return torch.argsort(keys, stable=True)[: min(n, total)]


def _batches(data, opts: ScoreOptions, device):
    """(inputs, labels, extra keyword arrays) of the calibration subset, batch by batch, on ``device``."""
    data = data.rows(calibration_rows(data.x, opts.calib_samples, opts.seed))
    for i in range(0, len(data.x), opts.batch_size):
        b = data.rows(slice(i, i + opts.batch_size)).to(device)
        yield b.x, b.y, b.extra


def _modules(model: nn.Module, layers: list[LayerInfo]) -> dict[str, nn.Module]:
    mods = dict(model.named_modules())
    return {layer.name: mods[layer.name] for layer in layers}


def _loss(out, y: torch.Tensor) -> torch.Tensor:
    """The shared task loss (:mod:`pruneviz.core.losses`), summed: a batch adds its size's share."""
    return losses.task_loss(out, y, reduction="sum")


def _gradient_stats(model, layers, params, data, opts, squares: bool):
    """Mean over samples of each layer's weight gradient and, with ``squares``, of its square
    (per-sample gradients: the empirical Fisher)."""
    weights = [params[layer.weight] for layer in layers]
    mean = [torch.zeros_like(w) for w in weights]
    sq = [torch.zeros_like(w) for w in weights] if squares else None
    samples = 0
    device = weights[0].device
    with torch.enable_grad():
        for xb, yb, eb in _batches(data, opts, device):
            loss = _loss(losses.forward(model, xb, eb), yb)  # summed: the batch adds its size's share
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
            for k, g in enumerate(grads):
                if g is not None:
                    mean[k] += g
            if squares:
                for k, g2 in enumerate(_per_sample_squares(model, layers, params, xb, yb, eb)):
                    if g2 is not None:
                        sq[k] += g2
            samples += len(xb)
    samples = max(samples, 1)
    return {
        layer.name: (m / samples, (sq[k] / samples) if squares else None)
        for k, (layer, m) in enumerate(zip(layers, mean))
    }


def _per_sample_squares(model, layers, params, xb, yb, eb=None) -> list[torch.Tensor | None]:
    """Σ over the batch of each sample's squared weight gradient (vmap; a loop when vmap fails)."""
    names = [layer.weight for layer in layers]
    try:
        from torch.func import functional_call, grad, vmap

        def one(ws, xi, yi, ei):
            kw = {k: v.unsqueeze(0) for k, v in ei.items()}
            return _loss((functional_call(model, ws, (xi.unsqueeze(0),), kw, strict=False)), yi.unsqueeze(0))

        ws = {n: params[n].detach() for n in names}
        per = vmap(grad(one), in_dims=(None, 0, 0, 0))(ws, xb, yb, dict(eb or {}))
        return [(per[n] * per[n]).sum(0) for n in names]
    except Exception:  # in-place ops, data-dependent control flow, opaque programs: one by one
        weights = [params[n] for n in names]
        total: list[torch.Tensor | None] = [None] * len(names)
        for i in range(len(xb)):
            loss = _loss(losses.forward(model, xb[i : i + 1], losses.take(eb, slice(i, i + 1))), yb[i : i + 1])
            for k, g in enumerate(torch.autograd.grad(loss, weights, allow_unused=True)):
                if g is not None:
                    total[k] = g * g if total[k] is None else total[k] + g * g
        return total


def _taylor_terms(model, layers, params, data, opts, per_neuron: bool):
    """Molchanov et al. 2019: per mini-batch, the gradient g of the batch's mean loss; per weight
    (g·w)², or per output neuron (Σ over its row of g·w)²; the mean over batches, each weighing
    by its size."""
    weights = [params[layer.weight] for layer in layers]
    acc: list[torch.Tensor | None] = [None] * len(layers)
    samples = 0
    with torch.enable_grad():
        for xb, yb, eb in _batches(data, opts, weights[0].device):
            loss = _loss(losses.forward(model, xb, eb), yb) / len(xb)  # the batch's mean loss
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
            for k, (layer, g) in enumerate(zip(layers, grads)):
                term = (torch.zeros_like(weights[k]) if g is None else g) * weights[k].detach()
                if per_neuron:
                    term = by_neuron(layer, term).sum(1)
                v = term * term * len(xb)
                acc[k] = v if acc[k] is None else acc[k] + v
            samples += len(xb)
    samples = max(samples, 1)
    return {layer.name: acc[k] / samples for k, layer in enumerate(layers)}


def _flat_channels(module, t: torch.Tensor) -> torch.Tensor:
    """``t`` as [positions, channels]: the channel dim is 1 for convs and the last dim for Linear
    (and GPT-2's Conv1D)."""
    if isinstance(module, nn.Linear) or t.dim() == 2 or type(module).__name__ == "Conv1D":
        return t.reshape(-1, t.shape[-1])
    return t.transpose(0, 1).reshape(t.shape[1], -1).t()


def _accumulate(acc, count, name, module, t, kind):
    flat = _flat_channels(module, t.detach().float())
    if kind == "wanda":
        v = (flat * flat).sum(0)
    elif kind == "activation":
        v = flat.abs().sum(0)
    else:  # apoz
        v = (flat <= 0).float().sum(0)
    acc[name] = acc[name] + v if name in acc else v
    count[name] = count.get(name, 0) + flat.shape[0]


def _hook_stats(model, layers, data, opts, kind: str):
    """Per-layer statistics collected with forward hooks: input norms (wanda) or the activity
    after the normalisation and non-linearity that follow each layer (activation, apoz)."""
    mods = _modules(model, layers)
    acc: dict[str, torch.Tensor] = {}
    count: dict[str, int] = {}
    device = next(model.parameters()).device
    batches = list(_batches(data, opts, device))
    if kind == "wanda":
        handles = [m.register_forward_hook(lambda mod, i, o, n=n: _accumulate(acc, count, n, mod, i[0], kind)) for n, m in mods.items()]
        try:
            with torch.inference_mode():
                for xb, _, eb in batches:
                    losses.forward(model, xb, eb)
        finally:
            for h in handles:
                h.remove()
    elif batches:
        chains = activity_chains(model, list(mods), batches[0][0])
        with ChainReader(model, chains, lambda n, t: _accumulate(acc, count, n, mods[n], t, kind)) as reader:
            with torch.inference_mode():
                for xb, _, eb in batches:
                    losses.forward(model, xb, eb)
                    reader.flush()
    out = {}
    for layer in layers:
        if layer.name not in acc:
            raise PrunevizError(f"layer {layer.name} is not used in the forward pass; cannot score it by {kind}")
        a, c = acc[layer.name], max(count[layer.name], 1)
        out[layer.name] = a.sqrt() if kind == "wanda" else a / c
    return out


def weight_scores(method: str, model: nn.Module, layers: list[LayerInfo], params: dict[str, torch.Tensor], data=None, opts: ScoreOptions = ScoreOptions()) -> dict[str, torch.Tensor]:
    """Score every weight of ``layers`` by ``method``; returns ``{layer name: scores like weight}``."""
    check_method(method, "weight", data is not None)
    ws = {layer.name: params[layer.weight].detach() for layer in layers}
    if method == "magnitude":
        return {n: w.abs() for n, w in ws.items()}
    if method == "random":
        return {n: _seeded(opts.seed, n, w.shape, w.device) for n, w in ws.items()}
    if method == "taylor":
        return _taylor_terms(model, layers, params, data, opts, per_neuron=False)
    if method in ("taylor-mean", "obd"):
        stats = _gradient_stats(model, layers, params, data, opts, squares=method == "obd")
        if method == "taylor-mean":
            return {n: (ws[n] * stats[n][0]).abs() for n in ws}
        return {n: 0.5 * ws[n] * ws[n] * stats[n][1] for n in ws}
    if method in ("wanda", "wanda-layer"):  # one score; ROW_METHODS says how it is compared
        norms = _hook_stats(model, layers, data, opts, "wanda")
        out = {}
        for layer in layers:
            w = ws[layer.name]
            norm = norms[layer.name].to(w.dtype)
            if layer.kind == "Conv1D":  # weight [in, out]: inputs are rows
                out[layer.name] = w.abs() * norm.view(-1, 1)
            elif w.dim() == 2:
                out[layer.name] = w.abs() * norm.view(1, -1)
            else:
                groups = norm.numel() // w.shape[1]  # grouped convs: each group sees its own slice
                if groups == 1:
                    out[layer.name] = w.abs() * norm.view(1, -1, *([1] * (w.dim() - 2)))
                else:
                    per = norm.view(groups, w.shape[1]).repeat_interleave(w.shape[0] // groups, 0)
                    out[layer.name] = w.abs() * per.view(w.shape[0], w.shape[1], *([1] * (w.dim() - 2)))
        return out
    raise AssertionError(method)  # check_method guards this


def neuron_scores(method: str, model: nn.Module, layers: list[LayerInfo], params: dict[str, torch.Tensor], data=None, opts: ScoreOptions = ScoreOptions()) -> dict[str, torch.Tensor]:
    """Score every output neuron of ``layers``; returns ``{layer name: scores [out]}``."""
    check_method(method, "neuron", data is not None)
    if method == "magnitude":
        return {layer.name: by_neuron(layer, params[layer.weight].detach()).norm(p=2, dim=1) for layer in layers}
    if method == "random":
        return {layer.name: _seeded(opts.seed, layer.name, (layer.out_channels,), params[layer.weight].device) for layer in layers}
    if method in ("activation", "apoz"):
        stats = _hook_stats(model, layers, data, opts, method)
        return {n: (v if method == "activation" else 1.0 - v) for n, v in stats.items()}
    if method == "taylor":
        return _taylor_terms(model, layers, params, data, opts, per_neuron=True)
    by_name = {layer.name: layer for layer in layers}
    return {n: by_neuron(by_name[n], s).sum(1) for n, s in weight_scores(method, model, layers, params, data, opts).items()}


def by_neuron(layer: LayerInfo, t: torch.Tensor) -> torch.Tensor:
    """``t`` (shaped like the weight) as [out neurons, everything else]: a Conv1D's weight is [in, out]."""
    return t.t() if layer.kind == "Conv1D" else t.flatten(1)


SCORERS: dict[str, Callable] = {"weight": weight_scores, "neuron": neuron_scores}
