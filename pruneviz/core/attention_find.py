"""Finding the attention modules of a model whose heads can be pruned (:class:`HeadUnit`): which
rows and columns of which layers each head owns. An attention module is recognised by its
parts, not by its class; the families are listed in :mod:`pruneviz.core.attention_heads`, which
scores, prunes and removes the heads found here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch.nn as nn

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
