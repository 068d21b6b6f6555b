"""What a prune takes: layer selection, previews, one-shot prunes and the node-pruning loop of a
:class:`~pruneviz.core.session.Session` (its verbs of the same names are these functions).

Functions over a session's public seams: its scores, its :class:`~pruneviz.core.editable.EditableModel`
(masks, coupled channel groups) and its :class:`~pruneviz.core.session_edit.Editor` (flips and
undo steps). The selection itself is the unit's (:mod:`pruneviz.core.units`); coupled neurons
are ranked here as one unit each.
"""

from __future__ import annotations

import fnmatch
from typing import Sequence

import torch

from . import ranking as rk
from . import units as units_
from .errors import PrunevizError
from .history import Flip
from .prune_spec import PruneSpec


def select_layers(s, patterns: str | Sequence[str] | None, granularity: str = "weight") -> list[str]:
    """Layer names matching comma-separated globs. Output layers join a neuron selection only when named exactly."""
    unit = units_.get(granularity)
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    names = [layer.name for layer in s.layers]
    if not patterns:
        chosen = names
    else:
        chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        if not chosen:
            raise PrunevizError(f"the layer patterns {','.join(patterns)} match no layer; layers are: {', '.join(names)}")
    if unit.edits == "chan":
        s.build_coupling()  # which layers are outputs is known from the coupling
        explicit = set(patterns or [])
        chosen = [n for n in chosen if not s.layer(n).is_output or n in explicit]
        if s.coupling is not None:  # prune what can be pruned; say once why a layer is skipped
            skipped = [n for n in chosen if s.coupling[n].refused and n not in explicit]
            for n in skipped:
                note = f"skipped {n}: {s.coupling[n].refused}"
                if note not in s.notices:
                    s.notices.append(note)
            chosen = [n for n in chosen if n not in skipped]
        if not chosen:
            raise PrunevizError("no layer left to neuron-prune: output layers are pruned only when named exactly among the layers")
    return chosen


def kept(s, unit, layer: str) -> torch.Tensor:
    """What ``unit`` selects from in ``layer``: its kept weights, or its kept neurons (CPU)."""
    return (s.masks.chan[layer] if unit.edits == "chan" else s.masks.mask(layer)).cpu()


def preview(s, amount: float, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", layers=None) -> dict[str, torch.Tensor]:
    """What :meth:`prune` would prune, without pruning: ``{layer: bool tensor}`` (True = would go)."""
    rk.check_amount(amount)
    unit = units_.get(granularity)
    if scope not in unit.scopes:
        raise PrunevizError(f"unknown scope {scope!r}: use {' or '.join(unit.scopes)}")
    if not unit.picks_layers:  # attention heads: keyed by attention module
        from . import attention_heads

        return attention_heads.preview(s, amount, scope, method, layers)
    names = select_layers(s, layers, unit)
    if unit.edits == "chan":
        for n in names:
            s.editor.require_neurons(n)
    scores = s.scores(None, method, unit)
    keep = {n: kept(s, unit, n) for n in names}

    def coupled(amount, scope, scores, keep) -> dict[str, torch.Tensor]:
        pick = _neurons_by_layer if scope == "layer" else _neurons_global
        return pick(s, amount, list(keep), scores, keep)

    ctx = units_.Context(method, {n: s.layer(n).kind for n in names}, coupled)
    return unit.select(scores, keep, amount, scope, ctx)


def _neurons_by_layer(s, amount, names, scores, kept) -> dict[str, torch.Tensor]:
    # coupled channels go together: what a layer already loses through its partners counts
    groups, n_units = s.editable.groups
    taken = torch.zeros(n_units, dtype=torch.bool)
    for n in names:
        g = groups[n]
        already = kept[n] & taken[g]
        k = round(amount * rk.count(kept[n])) - rk.count(already)
        taken[g[rk.lowest(scores[n], kept[n] & ~already, k)]] = True
    return {n: kept[n] & taken[groups[n]] for n in names}


def unit_scores(s, names: list[str], scores: dict[str, torch.Tensor]):
    """Coupled channels ranked as one unit: (unit score, units alive, guarded units).

    A unit's score is the mean of its members' scores, each divided by the mean score of its
    layer's kept neurons. Guarded: the unit holding each touched layer's best kept neuron."""
    groups, n_units = s.editable.groups
    ssum = torch.zeros(n_units)
    cnt = torch.zeros(n_units)
    alive = torch.zeros(n_units, dtype=torch.bool)
    guard = torch.zeros(n_units, dtype=torch.bool)
    touched = set(names)
    for n in names:
        touched |= set(s.coupling[n].coupled)
    for n in touched:
        kept = s.masks.chan[n].cpu()
        norm = scores[n].float() / rk.mean_kept(scores[n], kept)
        if n in names:
            g = groups[n][kept]
            ssum.index_add_(0, g, norm[kept])
            cnt.index_add_(0, g, torch.ones(len(g)))
            alive[g] = True
        if kept.any():
            guard[groups[n][rk.best_kept(norm, kept)]] = True
    return ssum / cnt.clamp(min=1), alive, guard


def _neurons_global(s, amount, names, scores, kept) -> dict[str, torch.Tensor]:
    groups = s.editable.groups[0]
    unit, alive, guard = unit_scores(s, names, scores)
    cand = alive & ~guard
    sel = rk.lowest(unit, cand, min(round(amount * rk.count(alive)), rk.count(cand)))
    return {n: kept[n] & sel[groups[n]] for n in names}


def prune(s, amount: float, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", layers=None, compensate: bool | str = False, calib=None) -> int:
    """Prune ``amount`` (0..1) of the still-kept weights or neurons of the selected layers,
    lowest ``method`` score first, per layer (``scope="layer"``; :data:`~pruneviz.core.importance.ROW_METHODS`
    per output row), in one ranking (``"global"``), or with per-layer amounts allocated from a
    sensitivity analysis on the calibration split (``"sensitivity"``, weights only; see
    :func:`pruneviz.core.allocation.prune_by_sensitivity`). Scores come from the model as it was
    before the call. One undo step.
    ``compensate`` (weights only): ``"exact"`` (or True) also sets the kept weights to the
    least-squares optimum of each layer's outputs for this mask; ``"sparsegpt"`` lets SparseGPT
    choose the mask and update the weights (:mod:`pruneviz.core.compensate`). ``calib``: the
    calibration data (a DATA spec, EvalData, tensor or batches; default: the session's
    calibration split, :attr:`calibration`). Returns the number of weights or neurons pruned."""
    from . import compensate as comp
    from .edit_labels import prune_label

    unit = units_.get(granularity)
    mode = comp.mode_of(compensate)
    if scope == "sensitivity":
        if unit is not units_.WEIGHT or mode is not None:
            raise PrunevizError("the sensitivity scope allocates weights per layer: use it with weight pruning and without compensation")
        from . import allocation

        return allocation.prune_by_sensitivity(s, amount, method, layers)
    if mode is not None:
        if unit.edits != "elem":
            raise PrunevizError("compensation updates the weights that stay after a weight prune: use it with weight or N:M pruning")
        with s.writing():  # its snapshot, flips and new values: no job may begin in between
            return comp.prune(s, amount, scope, method, layers, s.calib.use() if calib is None else calib, mode=mode, granularity=unit.name)
    if not unit.picks_layers:
        from . import attention_heads

        return attention_heads.prune(s, amount, scope, method, layers)
    chosen = preview(s, amount, scope, unit, method, layers)
    label = prune_label(amount, scope, unit.name, method, chosen) if unit.uses_amount else f"prune to {unit.name} by {method}"  # names the layers
    if unit.edits == "elem":
        # preview only offers kept weights, so every index flips kept -> pruned
        flips = [Flip.make("elem", n, m.reshape(-1).nonzero().flatten(), m.numel()) for n, m in chosen.items()]
    else:
        flips = s.editor.chan_flips({n: m.nonzero().flatten() for n, m in chosen.items() if m.any()}, True)
    s.remember_prune(PruneSpec(amount, scope, unit.name, method, tuple(chosen)))
    return s.editor.edit(label, flips)


def preview_below(s, layer: str, threshold: float, method: str = "magnitude", granularity: str = "weight") -> torch.Tensor:
    """Bool tensor of what :meth:`prune_below` would newly prune in ``layer``."""
    unit = units_.get(granularity)
    if unit.edits == "chan":
        s.editor.require_neurons(layer)
    elif unit.edits != "elem" or not unit.uses_amount:
        raise PrunevizError(f"pruning below a threshold works on weights or neurons, not {unit.counted_in} ({unit.name})")
    return rk.below(s.scores(layer, method, unit), kept(s, unit, layer), threshold)


def prune_below(s, layer: str, threshold: float, method: str = "magnitude", granularity: str = "weight") -> int:
    """Prune the weights (or neurons) of ``layer`` whose score is below ``threshold``."""
    m = preview_below(s, layer, threshold, method, granularity)
    label = f"prune {granularity}s of {layer} with {method} < {threshold:.4g}"
    if units_.get(granularity).edits == "elem":
        return s.editor.edit(label, [s.editor.elem_flips(layer, m.reshape(-1).nonzero().flatten(), True)])
    return s.editor.edit(label, s.editor.chan_flips({layer: m.nonzero().flatten()}, True))


def least_important_neuron(s, method: str = "magnitude", layers=None) -> tuple[str, int] | None:
    """The (layer, neuron) whose coupled unit has the lowest normalised score; never a layer's last neuron."""
    names = list(preview(s, 0.0, "global", "neuron", method, layers))  # validates, selects layers
    scores = s.scores(None, method, "neuron")
    groups = s.editable.groups[0]
    unit, alive, _ = unit_scores(s, names, scores)
    last = torch.zeros_like(alive)  # units holding some layer's only kept neuron
    for n, g in groups.items():
        kept = s.masks.chan[n].cpu()
        if rk.count(kept) == 1:
            last[g[kept]] = True
    cand = alive & ~last
    if not bool(cand.any()):
        return None
    u = int(torch.where(cand, unit, torch.full_like(unit, float("inf"))).argmin())
    for n in names:
        hit = ((groups[n] == u) & s.masks.chan[n].cpu()).nonzero().flatten()
        if hit.numel():
            return n, int(hit[0])
    return None


def step(s, method: str = "magnitude", layers=None) -> tuple[str, int] | None:
    """One step of the node-pruning loop: score, rank, prune the least important neuron."""
    target = least_important_neuron(s, method, layers)
    if target is not None:
        s.prune_neurons(target[0], [target[1]], label=f"step: prune neuron {target[1]} of {target[0]} ({method})")
    return target
