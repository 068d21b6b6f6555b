"""Compensation: a weight prune that also updates the kept weights so each layer still computes
what it did on calibration inputs. Two modes (solvers in :mod:`pruneviz.core.compensate_solve`):

- ``exact`` (default where it fits): the mask is chosen as without compensation (the prune's own
  ranking); then each output row's kept weights are the least-squares optimum on ``H = X Xᵀ + λI``
  restricted to its kept inputs (Cholesky, float64; rows sharing a mask share one solve). A layer
  whose solves would cost over :data:`EXACT_FLOPS` (ResNet-50's widest convs) gets SparseGPT
  instead, named in a notice.
- ``sparsegpt``: Frantar & Alistarh 2023, Algorithm 1, with its own mask: OBS saliency in column
  blocks of 128 and lazy updates. The prune's ranking only sets how many weights each layer
  loses (all the same share with ``scope="layer"``); SparseGPT chooses which.

Both work layer by layer in forward order; each layer's H comes from calibration inputs run
through the already pruned and compensated layers before it (the model stops at the layer), one
batch at a time (:mod:`pruneviz.core.calibration`). Layers: Linear, Conv1d, Conv2d with any
``groups`` (each group its own problem: depthwise too), Hugging Face's Conv1D. A layer whose H
does not fit in free memory, or of another kind, is refused before anything changes.

Example::

    for p in compensate.steps(s, 0.7, mode="sparsegpt", calib="demo:digits-train"):
        print(p.text)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import layer_hessian as cal
from . import compensate_solve as solve
from .errors import PrunevizError
from .history import Flip
from .masks import available_bytes

#: calibration samples used at most (by default)
MAX_SAMPLES = 1024
MODES = ("exact", "sparsegpt")
#: a layer whose exact solves would take more (Σ over rows of k³/3 for k kept inputs) gets
#: SparseGPT instead, with a notice: about 10 s on the 2-core machine the figures come from
EXACT_FLOPS = 2e10
DAMP = solve.DAMP
DAMP_EXACT = solve.DAMP_EXACT
BLOCK = solve.BLOCK


@dataclass(frozen=True)
class CompensateProgress:
    """One stage of one layer: ``stage`` is ``"calibrate"`` (gathering H) or ``"solve"``."""

    layer: str
    index: int
    total: int
    stage: str

    @property
    def text(self) -> str:
        return f"compensate {self.index + 1}/{self.total} {self.layer}: {self.stage}"


def mode_of(compensate) -> str | None:
    """``True`` → ``"exact"``; ``False``/``None`` → ``None``; a mode name → itself; else refused."""
    if compensate is None or compensate is False:
        return None
    if compensate is True:
        return "exact"
    if compensate in MODES:
        return compensate
    raise PrunevizError(f"unknown compensation {compensate!r}: choose {' or '.join(MODES)}")


def columns(module) -> int:
    """Inputs per output row as compensation sees it (in_features; in_channels/groups·kernel)."""
    return cal.view_of("layer", module).cols


def check_layer(name: str, module, device: torch.device, limit: int | None = None, mode: str = "exact") -> int:
    """Refuse a layer that cannot be compensated; returns the bytes its solve needs."""
    view = cal.view_of(name, module)
    h = cal.hessian_bytes(view)
    need = 3 * h + (solve.SOLVE_BYTES if mode == "exact" else 0)  # H, its factor and inverse, float64
    free = available_bytes(device) if limit is None else limit
    if free is not None and need > free:
        size = f"{view.cols:,}×{view.cols:,}" + (f" (×{view.groups} groups)" if view.groups > 1 else "")
        raise PrunevizError(f"cannot compensate {name}: its {size} Hessian needs {cal.describe_bytes(need)} but only {cal.describe_bytes(free)} is free on {device.type}; prune it without compensation")
    return need


def calibration_inputs(session, data, samples: int = MAX_SAMPLES) -> torch.Tensor:
    """Up to ``samples`` calibration inputs on the session's device. ``data``: a DATA spec, an
    EvalData, a tensor of inputs, or an iterable of batches (tensors or (inputs, labels)); None:
    the training data of a demo model, else the evaluation data (with a notice: it inflates the
    figures measured on it)."""
    from .training import training_data

    if data is None and not session.spec.startswith("demo:"):
        if session.data is None:
            raise PrunevizError("compensation needs calibration inputs", hint="calib_data")
        note = f"calibrating on the evaluation data {session.data.spec}: accuracy measured on it is inflated"
        if note not in session.notices:
            session.notices.append(note)
        x = session.data.x
    elif data is None or isinstance(data, str) or hasattr(data, "spec"):
        x = training_data(session, data)[0].x
    elif isinstance(data, torch.Tensor):
        x = data
    else:
        parts, n = [], 0
        for b in data:
            b = b[0] if isinstance(b, (tuple, list)) else b
            if not isinstance(b, torch.Tensor):
                raise PrunevizError(f"calibration batches must be tensors or (inputs, labels), not {type(b).__name__}")
            parts.append(b[: samples - n])
            n += len(parts[-1])
            if n >= samples:
                break
        if not parts:
            raise PrunevizError("the calibration data is empty")
        x = torch.cat(parts)
    if len(x) == 0:
        raise PrunevizError("the calibration data is empty")
    return x[:samples].to(session.device)


def steps(session, amount: float, scope: str = "layer", method: str = "magnitude", layers=None, mode="exact", calib=None, limit: int | None = None, samples: int = MAX_SAMPLES, batch: int = 32, cancel=None, damp: float | None = None, exact_flops: float | None = None, granularity: str = "weight"):
    """Generator: a compensated weight prune (module docstring), yielding :class:`CompensateProgress`
    twice per layer; returns the number of weights pruned. One undo step. ``cancel`` (a
    threading.Event) or closing the generator puts the session back exactly as before (returns 0).
    ``limit``: bytes a layer's H may take (default: the device's free memory). ``damp``: λ as a
    fraction of H's mean diagonal (default 1e-6 for exact, SparseGPT's 1 % for sparsegpt).
    ``exact_flops``: in exact mode, a layer whose solves would cost more is done by SparseGPT
    (default :data:`EXACT_FLOPS`; the layers are named in ``session.notices``).
    ``granularity``: ``"weight"``, or an N:M unit (``"2:4"``): the mask follows the pattern, and
    SparseGPT chooses it per group of M (:mod:`pruneviz.core.compensate_nm`)."""
    from .prune_spec import PruneSpec

    mode = mode_of(mode) or "exact"
    if damp is None:
        damp = DAMP_EXACT if mode == "exact" else DAMP
    exact_flops = EXACT_FLOPS if exact_flops is None else exact_flops
    from .units import get as unit_of

    unit = unit_of(granularity)
    pattern = (unit.n, unit.m) if not unit.uses_amount else None  # N:M
    chosen = session.preview(amount, scope, unit, method, layers)
    modules = dict(session.model.named_modules())
    views = {n: cal.view_of(n, modules[n]) for n in chosen}
    for n in chosen:
        check_layer(n, modules[n], session.device, limit, mode)
    x = calibration_inputs(session, calib, samples)
    todo = {n: modules[n] for n, m in chosen.items() if m.any()}
    with session.lock:
        names, calls = cal.call_counts(session.model, modules, x[:2])
    names = [n for n in names if n in todo]
    feeder = cal.Feeder(session.model, x, batch, calls)
    big: list[str] = []  # layers whose exact solve is over budget: SparseGPT instead
    masks = session.masks
    edit = session.edit_weights()  # snapshot, flips and values: one undo step, or nothing
    try:
        for i, n in enumerate(names):
            yield CompensateProgress(n, i, len(names), "calibrate")
            view, info = views[n], session.layer(n)
            with session.lock:
                h = torch.zeros(view.groups, view.cols, view.cols, dtype=torch.float64, device=session.device)
                cal.accumulate(feeder, view, n, h, stop_early=calls.get(n, 1) == 1, cancel=cancel)
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            yield CompensateProgress(n, i, len(names), "solve")
            with session.lock:
                shape = masks.orig[info.weight].shape
                dense = view.split(masks.params[info.weight].detach()).to(session.device)
                kept = view.split(masks.mask(n)).to(session.device)
                keep = kept & ~view.split(chosen[n].to(session.device))
                if mode == "exact" and solve.exact_flops(keep) <= exact_flops:
                    new = solve.exact(dense, h, keep, damp)
                else:
                    if mode == "exact":
                        big.append(n)
                    if pattern is not None:
                        from .compensate_nm import sparsegpt_nm

                        new, keep = sparsegpt_nm(dense, h, kept, *pattern, torch.Size(shape[2:]).numel(), DAMP if mode == "exact" else damp)
                    else:
                        new, keep = solve.sparsegpt(dense, h, kept, int(chosen[n].sum()), DAMP if mode == "exact" else damp)
                del h
                newly = view.join(kept & ~keep, shape)
                flip = Flip.make("elem", n, newly.reshape(-1).nonzero().flatten().cpu(), newly.numel())
                edit.flip([flip])
                edit.write(info.weight, view.join(new, shape), where=view.join(keep, shape))
                edit.changed()
    except BaseException as e:
        edit.abort()
        if isinstance(e, _Cancelled):
            return 0
        raise
    session.remember_prune(PruneSpec(amount, scope, unit.name, method, tuple(chosen)))
    if big:
        session.notices.append(f"compensation: the exact solve of {', '.join(big)} would take over {exact_flops / 1e9:g} GFLOP: SparseGPT chose their masks and weights")
    if not edit.flips:  # nothing pruned: nothing recorded, and no value changed either
        edit.abort()
        return 0
    from .edit_labels import prune_label

    how = f"by {method}" if mode == "exact" else "by SparseGPT"
    edit.commit(prune_label(amount, scope, "weight", method, chosen, how) + ", compensated")
    return sum(f.idx.numel() for f in edit.flips)


class _Cancelled(Exception):
    pass


def prune(session, amount: float, scope: str, method: str, layers, calibration=None, limit: int | None = None, mode="exact", **kw) -> int:
    """:func:`steps` run to the end; returns the number of weights pruned."""
    gen = steps(session, amount, scope, method, layers, mode, calibration, limit, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
