"""Whole attention heads: find them, score them, prune them (as one undoable step), remove them.

A head ``h`` of an attention module with ``H`` heads of width ``d`` owns rows ``h*d .. h*d+d-1``
of the query, key and value projections (three such blocks in a fused ``qkv``: at offsets 0, E
and 2E) and the same input columns of the output projection. Pruning a head masks all of them,
so the head adds exactly nothing to the output; the masked model equals a copy with those slices
zeroed by hand, and equals one with the head removed (``--shrink``).

Families found (an attention module is recognised by its parts, not by its class):

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

import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

from .errors import PrunevizError
from .inventory import is_conv1d

#: the heads found in each session's model (found once; kept here, not written onto the session)
_FOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads", "heads")


@dataclass(frozen=True)
class HeadUnit:
    """One attention module's heads: where each head's slices are."""

    name: str
    kind: str  # "fused", "separate", "gpt2", "mha"
    num_heads: int
    head_dim: int
    #: (layer, weight dim, offset): head h covers offset + h*head_dim + [0, head_dim) along dim
    qkv: tuple[tuple[str, int, int], ...]
    proj: tuple[str, int, int]
    #: module holding the head count, and the attribute names to update on removal
    owner: str
    count_attr: str
    size_attrs: tuple[str, ...] = ()
    #: why the heads cannot be removed physically, if so
    no_shrink: str | None = None
    #: per slice (same order as :attr:`slices`), how many rows a unit owns when not ``head_dim``:
    #: with grouped-query attention a unit is one key/value head and the ``G`` query heads that
    #: share it, so its query rows and output columns are ``G * head_dim`` wide
    widths: tuple[int, ...] = ()

    def width(self, k: int) -> int:
        """Rows (or columns) unit ``h`` owns in slice ``k``."""
        return self.widths[k] if self.widths else self.head_dim

    @property
    def slices(self) -> tuple[tuple[str, int, int], ...]:
        return (*self.qkv, self.proj)


def _head_count(module: nn.Module) -> tuple[str, int] | None:
    for attr in _HEAD_ATTRS:
        v = getattr(module, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return attr, v
    return None


def _linear(m) -> bool:
    return isinstance(m, nn.Linear)


def _find(model: nn.Module) -> list[HeadUnit]:
    modules = dict(model.named_modules())
    units: list[HeadUnit] = []

    def q(prefix: str, child: str) -> str:
        return f"{prefix}.{child}" if prefix else child

    for name, m in modules.items():
        if isinstance(m, nn.MultiheadAttention):
            E, H = m.embed_dim, m.num_heads
            if E % H == 0 and _linear(m.out_proj):
                units.append(HeadUnit(name, "mha", H, E // H, (), (q(name, "out_proj"), 1, 0), name, "num_heads",
                                      no_shrink="nn.MultiheadAttention requires num_heads × head_dim = embed_dim, so its heads can be masked but not removed"))  # fmt: skip
            continue
        gqa = _grouped_query(name, m)
        if gqa is not None:
            units.append(gqa)
            continue
        count = _head_count(m)
        if count is None:
            continue
        attr, H = count
        qkv, proj = getattr(m, "qkv", None), getattr(m, "proj", None)
        if _linear(qkv) and _linear(proj) and qkv.out_features % (3 * H) == 0:
            d = qkv.out_features // (3 * H)
            E = H * d
            if proj.in_features == E:
                units.append(HeadUnit(name, "fused", H, d, ((q(name, "qkv"), 0, 0), (q(name, "qkv"), 0, E), (q(name, "qkv"), 0, 2 * E)),
                                      (q(name, "proj"), 1, 0), name, attr, tuple(a for a in ("all_head_size", "attn_dim") if isinstance(getattr(m, a, None), int))))  # fmt: skip
            continue
        t5 = all(_linear(getattr(m, k, None)) for k in ("q", "k", "v", "o")) and isinstance(getattr(m, "inner_dim", None), int)
        if t5 and m.q.out_features % H == 0 and m.o.in_features == m.q.out_features:
            d = m.q.out_features // H
            units.append(HeadUnit(name, "separate", H, d, tuple((q(name, k), 0, 0) for k in ("q", "k", "v")), (q(name, "o"), 1, 0), name, attr, ("inner_dim",),
                                  no_shrink="T5 adds one relative position bias, computed for all heads in the first layer, to every layer: its heads can be masked but not removed"))  # fmt: skip
            continue
        parts = [getattr(m, k, None) for k in ("query", "key", "value")]
        if all(_linear(p) for p in parts) and len({p.out_features for p in parts}) == 1 and parts[0].out_features % H == 0:
            E = parts[0].out_features
            pname = next((k for k in ("proj", "out_proj", "o_proj", "dense") if _linear(getattr(m, k, None))), None)
            if pname is not None:
                proj_name = q(name, pname)
            else:  # BERT: the projection is the parent's output.dense
                parent = name.rsplit(".", 1)[0] if "." in name else ""
                proj_name = q(parent, "output.dense")
            if _linear(modules.get(proj_name)) and modules[proj_name].in_features == E:
                size = tuple(a for a in ("all_head_size",) if isinstance(getattr(m, a, None), int))
                units.append(HeadUnit(name, "separate", H, E // H, tuple((q(name, k), 0, 0) for k in ("query", "key", "value")), (proj_name, 1, 0), name, attr, size))
            continue
        c_attn, c_proj = getattr(m, "c_attn", None), getattr(m, "c_proj", None)
        if c_attn is not None and is_conv1d(c_attn) and c_proj is not None and is_conv1d(c_proj) and c_attn.weight.shape[1] % (3 * H) == 0:
            d = c_attn.weight.shape[1] // (3 * H)
            E = H * d
            if c_proj.weight.shape[0] == E and getattr(m, "q_attn", None) is None:
                units.append(HeadUnit(name, "gpt2", H, d, ((q(name, "c_attn"), 1, 0), (q(name, "c_attn"), 1, E), (q(name, "c_attn"), 1, 2 * E)),
                                      (q(name, "c_proj"), 0, 0), name, attr, ("split_size",)))  # fmt: skip
    return units


def _grouped_query(name: str, m: nn.Module) -> HeadUnit | None:
    """Llama / Mistral / Qwen attention: ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` and a
    ``head_dim``, head counts in ``config``. With fewer key/value heads than query heads (grouped-
    query attention) each key/value head serves ``G`` consecutive query heads, so the unit pruned
    is a key/value head with its query group: removing it keeps ``G`` (the forward repeats each
    key/value head ``G`` times and infers the head counts from the widths)."""
    parts = [getattr(m, k, None) for k in ("q_proj", "k_proj", "v_proj", "o_proj")]
    if not _linear(parts[3]):
        parts[3] = getattr(m, "out_proj", None)  # Whisper, BART
    d = getattr(m, "head_dim", None)
    config = getattr(m, "config", None)
    H, kv = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None) or getattr(config, "num_attention_heads", None)
    if not (all(_linear(p) for p in parts) and isinstance(d, int) and isinstance(H, int) and isinstance(kv, int) and 0 < kv and H % kv == 0):
        return None
    q, k, v, o = parts
    G = H // kv
    if isinstance(getattr(m, "num_heads", None), int) and G == 1 and m.num_heads != H:
        H = kv = m.num_heads  # Whisper: encoder and decoder head counts differ, the module knows its own
    if not (q.out_features == H * d and k.out_features == v.out_features == kv * d and o.in_features == H * d):
        return None
    p = (lambda c: f"{name}.{c}" if name else c)
    own = _head_count(m)  # a module that keeps its own count (and G = 1) has it updated on removal
    attr = own[0] if own is not None and G == 1 and own[1] == H else ""
    o_name = p("o_proj") if _linear(getattr(m, "o_proj", None)) else p("out_proj")
    return HeadUnit(name, "gqa", kv, d, ((p("q_proj"), 0, 0), (p("k_proj"), 0, 0), (p("v_proj"), 0, 0)), (o_name, 1, 0), name, attr, (), widths=(G * d, d, d, G * d))


def find_heads(session) -> dict[str, HeadUnit]:
    """The attention modules of the session's model whose every slice is a prunable layer."""
    cached = _FOUND.get(session)
    if cached is not None:
        return cached
    names = {layer.name for layer in session.layers}
    units = {u.name: u for u in _find(session.model) if all(s[0] in names for s in u.slices)}
    _FOUND[session] = units
    return units


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
        raise PrunevizError("this model has no attention heads pruneviz can find (nn.MultiheadAttention, a fused qkv + proj with num_heads, query/key/value, GPT-2 c_attn); use --granularity weight or neuron")
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
        raise PrunevizError(f"--layers {','.join(patterns)} matches no attention module; attention modules are: {', '.join(units)}")
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
    session.last_prune = PruneSpec(amount, scope, "head", method, tuple(chosen))
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
            note = f"skipped {u.name} (--shrink): {u.no_shrink}"
            if note not in session.notices:
                session.notices.append(note)
        else:
            keep.append(u.name)
    if not keep:
        raise PrunevizError(f"no selected attention module can lose heads physically ({units[0].name}: {units[0].no_shrink})", hint="no_shrink")
    return keep
