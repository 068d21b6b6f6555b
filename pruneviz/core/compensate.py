"""Compensation: after a weight prune, update each layer's kept weights so that the layer still
computes what it did (Optimal Brain Surgeon, in the blockwise form of SparseGPT, Frantar &
Alistarh 2023, https://github.com/IST-DASLab/sparsegpt).

For a layer with dense weights W [out, cols] and calibration inputs X [cols, n], the mask is
chosen first (by the ordinary prune ranking), then the kept weights minimise ``‖W X − Ŵ X‖²``:
with ``H = X Xᵀ + λI`` (λ = 1 % of H's mean diagonal), columns are eliminated left to right and
each pruned weight's error ``w / [H⁻¹]ⱼⱼ`` is spread over the columns after it along the upper
Cholesky factor of ``H⁻¹``. Layers are done in forward order, and each layer's inputs come from
the already pruned and compensated layers before it, as in SparseGPT's sequential mode.

Cost: per layer, ``cols²`` floats for H (twice that while it is inverted) and a pass of the
calibration data through the model; a layer whose H does not fit in free memory is refused
before anything changes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import deltas
from .errors import PrunevizError
from .history import Change, Flip, Step
from .masks import available_bytes

#: calibration samples used at most
MAX_SAMPLES = 1024
DAMP = 0.01
BLOCK = 128


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def columns(module: nn.Module) -> int:
    """Width of the layer's input as OBS sees it (in_features, or in_channels·kh·kw)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    return module.weight[0].numel()


def check_layer(name: str, module: nn.Module, device: torch.device, limit: int | None = None) -> int:
    """Refuse a layer that cannot be compensated; returns the bytes its H needs."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise PrunevizError(f"cannot compensate {name}: only Linear layers and plain Conv2d layers (groups 1, zero padding given as numbers) are supported; prune it without compensation")
    elif not isinstance(module, nn.Linear):
        raise PrunevizError(f"cannot compensate {name}: only Linear and Conv2d layers are supported, not {type(module).__name__}; prune it without compensation")
    cols = columns(module)
    need = 3 * cols * cols * 8  # H, its Cholesky factor and inverse, in float64
    free = available_bytes(device) if limit is None else limit
    if free is not None and need > free:
        raise PrunevizError(f"cannot compensate {name}: its {cols:,}×{cols:,} Hessian needs {_gib(need)} but only {_gib(free)} is free on {device.type}; prune it without compensation")
    return need


def calibration_inputs(session, data) -> torch.Tensor:
    """Up to :data:`MAX_SAMPLES` inputs: ``data``, else the training data of a demo model, else the evaluation data."""
    from .training import training_data

    if data is None and not session.spec.startswith("demo:") and session.data is not None:
        x = session.data.x
    elif data is None and not session.spec.startswith("demo:"):
        raise PrunevizError("compensation needs calibration inputs: pass --train-data DATA (or --data)")
    else:
        x = training_data(session, data)[0].x
    return x[:MAX_SAMPLES].to(session.device)


def forward_order(session, names: list[str], x: torch.Tensor) -> list[str]:
    """``names`` in the order the model calls them."""
    modules = dict(session.model.named_modules())
    seen: list[str] = []
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.append(n) if n not in seen else None) for n in names]
    try:
        with torch.no_grad():
            session.model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    return seen + [n for n in names if n not in seen]


def layer_inputs(module: nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """A layer's input as rows of OBS columns: [samples (× positions), cols]."""
    if isinstance(module, nn.Linear):
        return inp.reshape(-1, inp.shape[-1])
    cols = F.unfold(inp, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def hessian(session, name: str, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``X Xᵀ`` (float64, [cols, cols]) of the inputs reaching ``name`` when the model runs ``x``."""
    module = dict(session.model.named_modules())[name]
    cols = columns(module)
    h = torch.zeros(cols, cols, dtype=torch.float64, device=x.device)

    def hook(m, i, o):
        rows = layer_inputs(m, i[0].detach()).to(torch.float64)
        h.addmm_(rows.t(), rows)

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for s in range(0, len(x), batch):
                session.model(x[s : s + batch])
    finally:
        handle.remove()
    return h


def obs(w: torch.Tensor, h: torch.Tensor, pruned: torch.Tensor, damp: float = DAMP, block: int = BLOCK) -> torch.Tensor:
    """SparseGPT's blockwise OBS update with a given mask: ``w`` [rows, cols] with the ``pruned``
    entries set to 0 and the kept ones adjusted to keep ``w @ X`` (float64 throughout)."""
    w = w.to(torch.float64).clone()
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1  # an input that is always 0: nothing to preserve through it
    h.diagonal().add_(damp * torch.mean(torch.diag(h)))
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    cols = w.shape[1]
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        m1 = pruned[:, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i]
            q = torch.where(m1[:, i], torch.zeros_like(col), col)
            q1[:, i] = q
            e = (col - q) / hinv1[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            err1[:, i] = e
        w[:, i1:i2] = q1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w


def prune(session, amount: float, scope: str, method: str, layers, calibration=None, limit: int | None = None) -> int:
    """A weight prune whose kept weights are compensated (see the module docstring); one undo step.
    ``limit``: bytes H may take (default: the device's free memory)."""
    from .session import PruneSpec

    chosen = session.preview(amount, scope, "weight", method, layers)
    modules = dict(session.model.named_modules())
    for n in chosen:
        check_layer(n, modules[n], session.device, limit)
    x = calibration_inputs(session, calibration)
    names = forward_order(session, [n for n, m in chosen.items() if m.any()], x)
    masks = session.masks
    flips = [Flip.make("elem", n, m.reshape(-1).nonzero().flatten(), m.numel()) for n, m in chosen.items()]
    flips = [f for f in flips if f.idx.numel()]
    snap = deltas.Snapshot(session)
    applied = False
    try:
        with session.lock:
            dense = {n: session.weight(n) for n in names}  # before this prune (earlier cuts already 0)
            session.apply_flips(flips)
            applied = True
            for n in names:
                wname = session.layer(n).weight
                kept = masks.mask(n)
                w2 = obs(dense[n].reshape(len(kept), -1).to(session.device), hessian(session, n, x), ~kept.reshape(len(kept), -1))
                new = w2.reshape(kept.shape).to(masks.orig[wname].dtype)
                with torch.no_grad():
                    masks.orig[wname].copy_(torch.where(kept, new, masks.orig[wname]))
                deltas.refresh(session, [wname])
                deltas.invalidate(session)
            delta = snap.delta(session)
    except BaseException:
        with session.lock:
            if applied:
                session.apply_flips(list(reversed(flips)))
            snap.restore(session)
        raise
    session.last_prune = PruneSpec(amount, scope, "weight", method, tuple(chosen))
    if not flips:
        return 0
    label = f"prune {amount:.0%} weights by {method} ({scope}), compensated"
    deltas.record(session, Step(label, flips, weights=delta))
    session.changed.emit(Change(label, frozenset(layer.name for layer in session.layers)))
    return sum(f.idx.numel() for f in flips)
