"""Whole attention heads: find them, score them, prune them (as one undoable step), remove them.

A head ``h`` of an attention module with ``H`` heads of width ``d`` owns rows ``h*d .. h*d+d-1``
of the query, key and value projections (three such blocks in a fused ``qkv``: at offsets 0, E
and 2E) and the same input columns of the output projection. Pruning a head masks all of them,
so the head adds exactly nothing to the output; the masked model equals a copy with those slices
zeroed by hand, and equals one with the head removed (``--shrink``).

Families found (an attention module is recognised by its parts, not by its class; the finding
is :mod:`pruneviz.core.attention_find`):

* timm-style: a fused ``qkv`` Linear, a ``proj`` Linear, ``num_heads`` (or ``heads``);
* separate ``query``/``key``/``value`` Linears (BERT's self-attention, whose output projection is
  the parent's ``output.dense``; or a ``proj``/``out_proj``/``o_proj`` of the same module);
* GPT-2: a fused ``c_attn`` and a ``c_proj`` (Hugging Face ``Conv1D``: weight ``[in, out]``);
* ``nn.MultiheadAttention``: its q/k/v live in one ``in_proj_weight`` that is no layer of its own,
  so a head is masked through its ``out_proj`` columns (which alone remove the head exactly); it
  cannot be shrunk, as the module requires ``num_heads * head_dim == embed_dim``.

The masks are weight masks (the same flips as weight pruning), so undo, redo, session files and
atomicity come with them. A head counts as pruned when every slice it owns is pruned.

Removal uses Torch-Pruning's Linear pruning functions (and :mod:`pruneviz.core.conv1d` for GPT-2)
with the head's indices, then sets the module's head count (and ``all_head_size`` /
``split_size``) so that its forward reshapes into the heads that are left.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention_find import HeadUnit, find_heads
from .errors import PrunevizError
from .inventory import is_conv1d

__all__ = ["HeadUnit", "check_head_shrink", "find_heads", "head_flat", "head_mask", "head_unit", "preview", "prune", "prune_heads", "pruned_heads",
           "restore_heads", "scores", "select_units", "shrink_heads", "shrinkable_units"]  # fmt: skip

def _flat(shape, dim: int, idx: torch.Tensor) -> torch.Tensor:
    """Flat indices of the rows (dim 0) or columns (dim 1) ``idx`` of a 2-D weight."""
    rows, cols = shape[0], shape[1] if len(shape) > 1 else 1
    if dim == 0:
        return (idx.view(-1, 1) * cols + torch.arange(cols).view(1, -1)).reshape(-1)
    return (torch.arange(rows).view(-1, 1) * cols + idx.view(1, -1)).reshape(-1)


def _head_idx(unit: HeadUnit, offset: int, heads, width: int | None = None) -> torch.Tensor:
    w = unit.head_dim if width is None else width
    h = torch.as_tensor(sorted(set(int(i) for i in heads)), dtype=torch.long)
    return (offset + h.view(-1, 1) * w + torch.arange(w).view(1, -1)).reshape(-1)


def head_flat(session, unit: HeadUnit, heads) -> dict[str, torch.Tensor]:
    """``{layer: flat weight indices}`` that heads ``heads`` of ``unit`` own."""
    out: dict[str, list[torch.Tensor]] = {}
    for k, (layer, dim, offset) in enumerate(unit.slices):
        out.setdefault(layer, []).append(_flat(session.layer(layer).shape, dim, _head_idx(unit, offset, heads, unit.width(k))))
    return {k: torch.unique(torch.cat(v)) for k, v in out.items()}


def head_mask(session, unit: HeadUnit) -> torch.Tensor:
    """Bool [heads], True = kept: a head is pruned when every slice it owns is pruned."""
    kept = torch.zeros(unit.num_heads, dtype=torch.bool)
    for k, (layer, dim, offset) in enumerate(unit.slices):
        m = session.mask(layer)
        w = unit.width(k)
        idx = _head_idx(unit, offset, range(unit.num_heads), w)
        part = m.index_select(dim, idx)
        part = part.reshape(unit.num_heads, w, -1) if dim == 0 else part.reshape(-1, unit.num_heads, w).transpose(0, 1)
        kept |= part.reshape(unit.num_heads, -1).any(1)
    return kept


def head_unit(session, name: str) -> HeadUnit:
    units = find_heads(session)
    if not units:
        raise PrunevizError("this model has no attention heads pruneviz can find (nn.MultiheadAttention, a fused qkv + proj with num_heads, query/key/value, GPT-2 c_attn); prune weights or neurons instead")
    if name in units:
        return units[name]
    for u in units.values():  # a projection's name stands for its attention module
        if name in {s[0] for s in u.slices}:
            return u
    raise PrunevizError(f"no attention module named {name!r}; attention modules are: {', '.join(units)}")


def select_units(session, patterns) -> list[HeadUnit]:
    """Attention modules whose name, or one of whose projections' names, matches the globs."""
    import fnmatch

    units = find_heads(session)
    if not units:
        head_unit(session, "")  # raises the "no attention" error
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    if not patterns:
        return list(units.values())
    chosen = [u for u in units.values() if any(fnmatch.fnmatchcase(n, p) for p in patterns for n in (u.name, *(s[0] for s in u.slices)))]
    if not chosen:
        raise PrunevizError(f"the layer patterns {','.join(patterns)} match no attention module; attention modules are: {', '.join(units)}")
    return chosen


def scores(session, method: str = "magnitude", units=None) -> dict[str, torch.Tensor]:
    """One score per head: the L2 norm of its q/k/v rows (magnitude), or the sum of the weight
    scores of those rows (taylor, obd, wanda, random). ``nn.MultiheadAttention``, whose q/k/v are
    no layer, is scored on its output projection's columns."""
    from . import importance as imp

    if method not in imp.WEIGHT_METHODS:
        raise PrunevizError(f"unknown head importance method {method!r}: use one of {', '.join(imp.WEIGHT_METHODS)}")
    units = list(find_heads(session).values()) if units is None else units
    if not units:
        head_unit(session, "")
    model_params = dict(session.model.named_parameters())
    weight_scores = None if method == "magnitude" else session.scores(None, method, "weight")
    out = {}
    for u in units:
        total = torch.zeros(u.num_heads)
        if u.kind == "mha" and method == "magnitude":
            w = model_params[f"{u.name}.in_proj_weight" if u.name else "in_proj_weight"].detach().cpu()
            E = u.num_heads * u.head_dim
            for off in (0, E, 2 * E):
                total += (w[off : off + E] ** 2).reshape(u.num_heads, -1).sum(1)
            out[u.name] = total.sqrt()
            continue
        for k, (layer, dim, offset) in enumerate(u.qkv or (u.proj,)):
            s = session.weight(layer) ** 2 if method == "magnitude" else weight_scores[layer].float()
            w = u.width(k) if u.qkv else u.width(len(u.slices) - 1)
            part = s.index_select(dim, _head_idx(u, offset, range(u.num_heads), w))
            part = part.reshape(u.num_heads, -1) if dim == 0 else part.reshape(-1, u.num_heads, w).transpose(0, 1).reshape(u.num_heads, -1)
            total += part.sum(1)
        out[u.name] = total.sqrt() if method == "magnitude" else total
    return out


def _edit_heads(session, unit: HeadUnit, heads, prune: bool, label: str) -> int:
    heads = [int(h) for h in heads]
    bad = [h for h in heads if not 0 <= h < unit.num_heads]
    if bad:
        raise PrunevizError(f"head index {bad[0]} out of range for {unit.name} with {unit.num_heads} heads")
    kept = head_mask(session, unit)
    todo = [h for h in sorted(set(heads)) if bool(kept[h]) == prune]
    if not todo:
        return 0
    with session.group(label):
        for layer, flat in head_flat(session, unit, todo).items():
            (session.prune_weights if prune else session.restore_weights)(layer, flat)
    return len(todo)


def prune_heads(session, name: str, heads, label: str | None = None) -> int:
    unit = head_unit(session, name)
    return _edit_heads(session, unit, heads, True, label or f"prune head{'s' if len(list(heads)) != 1 else ''} {', '.join(map(str, heads))} of {unit.name}")


def restore_heads(session, name: str, heads, label: str | None = None) -> int:
    unit = head_unit(session, name)
    return _edit_heads(session, unit, heads, False, label or f"restore head{'s' if len(list(heads)) != 1 else ''} {', '.join(map(str, heads))} of {unit.name}")


def preview(session, amount: float, scope: str = "layer", method: str = "magnitude", layers=None) -> dict[str, torch.Tensor]:
    """What :func:`prune` would prune: ``{attention module: bool [heads]}`` (True = would go)."""
    from . import ranking as rk
    from .units import HEAD, Context

    rk.check_amount(amount)
    HEAD.check(method, scope)
    units = select_units(session, layers)
    s = scores(session, method, units)
    kept = {u.name: head_mask(session, u) for u in units}
    return HEAD.select(s, kept, amount, scope, Context(method))


def prune(session, amount: float, scope: str = "layer", method: str = "magnitude", layers=None) -> int:
    """Prune ``amount`` of the kept heads of each attention module (``scope="layer"``) or of all
    of them in one ranking (``"global"``, each score divided by its module's mean kept score);
    every module keeps at least one head (:meth:`pruneviz.core.units.Head.select`). One undo
    step; returns the number of heads pruned."""
    from .prune_spec import PruneSpec

    chosen = preview(session, amount, scope, method, layers)
    units = {u.name: u for u in select_units(session, layers)}
    n = 0
    with session.group(f"prune {amount:.0%} heads by {method} ({scope})"):
        for name, sel in chosen.items():
            if bool(sel.any()):
                n += _edit_heads(session, units[name], sel.nonzero().flatten().tolist(), True, "")
    session.remember_prune(PruneSpec(amount, scope, "head", method, tuple(chosen)))
    return n


# ------------------------------------------------------------------ removal
def pruned_heads(session) -> dict[str, list[int]]:
    """``{attention module: [pruned heads]}`` for modules with at least one pruned head."""
    out = {}
    for u in find_heads(session).values():
        kept = head_mask(session, u)
        if not bool(kept.all()):
            out[u.name] = (~kept).nonzero().flatten().tolist()
    return out


def check_head_shrink(session, pruned: dict[str, list[int]]) -> None:
    """Refuse, before any work, heads that cannot be removed physically."""
    units = find_heads(session)
    for name in sorted(pruned):
        u = units[name]
        if u.no_shrink:
            raise PrunevizError(f"cannot shrink the heads of {name}: {u.no_shrink}", hint="no_shrink")
        if len(pruned[name]) >= u.num_heads:
            raise PrunevizError(f"cannot shrink {name}: every attention head would be removed; restore at least one")


def _drop_out(module: nn.Module, idx: list[int]) -> None:
    import torch_pruning as tp

    if is_conv1d(module):
        from .conv1d import conv1d_pruner

        conv1d_pruner().prune_out_channels(module, idx)
    else:
        tp.prune_linear_out_channels(module, idx)


def _drop_in(module: nn.Module, idx: list[int]) -> None:
    import torch_pruning as tp

    if is_conv1d(module):
        from .conv1d import conv1d_pruner

        conv1d_pruner().prune_in_channels(module, idx)
    else:
        tp.prune_linear_in_channels(module, idx)


def shrink_heads(model: nn.Module, units: dict[str, HeadUnit], pruned: dict[str, list[int]], example: torch.Tensor) -> nn.Module:
    """Remove the pruned heads from ``model`` (a copy, changed in place) and check it still runs."""
    modules = dict(model.named_modules())
    for name, heads in pruned.items():
        u = units[name]
        by_layer: dict[str, list[int]] = {}
        for k, (layer, dim, offset) in enumerate(u.qkv):
            by_layer.setdefault(layer, []).extend(_head_idx(u, offset, heads, u.width(k)).tolist())
        for layer, idx in by_layer.items():
            _drop_out(modules[layer], sorted(idx))
        _drop_in(modules[u.proj[0]], _head_idx(u, 0, heads, u.width(len(u.slices) - 1)).tolist())
        owner = modules[u.owner]
        left = u.num_heads - len(heads)
        if u.count_attr:  # grouped-query attention infers its head counts from the widths
            setattr(owner, u.count_attr, left)
        for attr in u.size_attrs:
            setattr(owner, attr, left * u.head_dim)
    try:
        with torch.inference_mode():
            model(example)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PrunevizError(
            f"cannot shrink the attention heads of {', '.join(sorted(pruned))}: the model's forward fails with fewer heads "
            f"({first}; a forward that reshapes the attention output to the input width cannot lose heads)", hint="no_shrink"
        ) from exc
    return model


def shrinkable_units(session, patterns) -> list[str]:
    """For ``prune --granularity head --shrink``: the selected attention modules whose heads can be
    removed, each other one skipped with a notice; refuses when none is left."""
    keep = []
    units = select_units(session, patterns)
    for u in units:
        if u.no_shrink:
            note = f"skipped {u.name} (shrinking): {u.no_shrink}"
            if note not in session.notices:
                session.notices.append(note)
        else:
            keep.append(u.name)
    if not keep:
        raise PrunevizError(f"no selected attention module can lose heads physically ({units[0].name}: {units[0].no_shrink})", hint="no_shrink")
    return keep
