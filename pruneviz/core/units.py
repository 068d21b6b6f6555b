"""What is pruned: one small object per pruning unit, in one registry.

Each unit says what it selects (:meth:`Unit.select`, in the shape of ``torch.nn.utils.prune``'s
``compute_mask``: scores and the kept mask in, what goes out), what it is counted in, which
importance methods and scopes it accepts, whether a pruned model can shrink by it, and how the
heatmap pools a layer pruned by it. The CLI's choices, the app's combos and the lessons'
settings read this registry; an unknown unit is an error (:func:`get`), never another unit's path.

=========  ====================  ==========================================================
unit       counted in            selection
=========  ====================  ==========================================================
weight     weights               the lowest-scored kept weights (per layer, per output row
                                 for :data:`~pruneviz.core.importance.ROW_METHODS`, or global)
neuron     neurons               whole output rows / conv filters, with their coupled channels
head       attention heads       whole attention heads (:mod:`pruneviz.core.attention_heads`)
N:M        weights               in every group of M consecutive inputs of each output row, all
                                 but the N highest-scored weights (:mod:`pruneviz.core.nm`)
=========  ====================  ==========================================================

Example::

    from pruneviz.core import units
    u = units.get("2:4")          # any N:M with N < M
    u.counted_in, u.shrinks       # ('weights', False)
    chosen = u.select(scores, kept, 0.5, "layer", units.Context("magnitude", kinds))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import display, nm
from . import importance as imp
from . import ranking as rk
from .errors import PrunevizError


@dataclass(frozen=True)
class Context:
    """What a selection may need beyond scores and masks: the method (row-wise methods compare
    within each output row), each layer's kind (GPT-2's Conv1D stores its weight transposed),
    and for neurons the session's coupled-channel selection."""

    method: str = "magnitude"
    kinds: dict[str, str] = field(default_factory=dict)
    #: ``coupled(amount, scope, scores, kept) -> {layer: bool}``: neurons go with their partners
    coupled: Callable | None = None


class Unit:
    """A pruning unit. Subclasses set the attributes and override :meth:`select`."""

    #: the name users type (``--granularity``, ``granularity=``)
    name: str = ""
    #: what a count of this unit is, plural ("pruned 12 neurons")
    counted_in: str = "weights"
    #: one line for ``--help`` and tooltips
    summary: str = ""
    #: scopes :meth:`select` accepts
    scopes: tuple[str, ...] = ("layer", "global")
    #: whether ``--shrink`` can remove the pruned units physically
    shrinks: bool = False
    #: which importance scorer feeds :meth:`select`: a key of ``importance.SCORERS``, or "head"
    scored_as: str = "weight"
    #: which mask an edit flips: ``"elem"`` (single weights), ``"chan"`` (neurons), ``"head"``
    edits: str = "elem"
    #: whether the selection is over layers (False: over attention modules)
    picks_layers: bool = True
    #: whether ``amount`` is used (False: the unit's pattern fixes how much goes)
    uses_amount: bool = True

    def methods(self, has_data: bool = True) -> tuple[str, ...]:
        """Importance methods this unit accepts (without data-driven ones unless ``has_data``)."""
        ms = imp.NEURON_METHODS if self.scored_as == "neuron" else imp.WEIGHT_METHODS
        return tuple(m for m in ms if has_data or m not in imp.DATA_METHODS)

    def check(self, method: str, scope: str | None = None, has_data: bool = True) -> None:
        """Raise a :class:`PrunevizError` for a method or scope this unit does not accept."""
        if scope is not None and scope not in self.scopes:
            raise PrunevizError(f"unknown scope {scope!r} for {self.name} pruning: use {' or '.join(self.scopes)}")
        if method not in self.methods(True):
            raise PrunevizError(f"unknown {self.name} importance method {method!r}: use one of {', '.join(self.methods(True))}")
        if method in imp.DATA_METHODS and not has_data:
            raise PrunevizError(f"importance method {method!r} needs calibration data", hint="calib_data")

    def available(self, session) -> bool:
        """Whether this unit applies to ``session``'s model (reading this never builds anything slow)."""
        return True

    def select(self, scores: dict, kept: dict, amount: float, scope: str, ctx: Context | None = None) -> dict[str, torch.Tensor]:
        """``{layer: bool tensor like kept[layer]}``: the kept entries to prune (True = goes),
        ``amount`` of them by ``scope``; ``ctx`` (default: magnitude, no layer kinds) says the rest."""
        raise NotImplementedError

    def pool_pruned(self, pruned2d: np.ndarray, block: tuple[int, int], shape=None, kind: str = "") -> np.ndarray:
        """The heatmap's pruned overlay of a layer's 2-D view pooled into ``block``s (0..1).
        Default: 1 where any entry of the block is pruned (a single pruned weight stays visible)."""
        return display.pool_any(pruned2d, block)

    def conforms(self, kept: torch.Tensor, kind: str = "") -> bool | None:
        """Whether a layer's kept-mask follows this unit's pattern (None: the unit has none)."""
        return None

    def __repr__(self) -> str:
        return f"<unit {self.name}>"


class Weight(Unit):
    name, counted_in = "weight", "weights"
    summary = "single weights"

    def select(self, scores, kept, amount, scope, ctx=None):
        ctx = ctx or Context()
        self.check(ctx.method, scope)
        names = list(kept)
        if scope == "layer" and ctx.method in imp.ROW_METHODS:  # compared within each output row
            return {n: rk.lowest_per_row(scores[n], kept[n], amount, ctx.kinds.get(n) == "Conv1D") for n in names}
        if scope == "layer":
            return {n: rk.lowest(scores[n], kept[n], round(amount * rk.count(kept[n]))) for n in names}
        if not names:
            return {}
        flat_s = torch.cat([scores[n].reshape(-1).float() for n in names])
        flat_k = torch.cat([kept[n].reshape(-1) for n in names])
        sel = rk.lowest(flat_s, flat_k, round(amount * rk.count(flat_k)))
        out, offset = {}, 0
        for n in names:
            size = kept[n].numel()
            out[n] = sel[offset : offset + size].view(kept[n].shape)
            offset += size
        return out


class Neuron(Unit):
    name, counted_in = "neuron", "neurons"
    summary = "whole neurons (output rows / conv filters)"
    shrinks, scored_as, edits = True, "neuron", "chan"

    def available(self, session) -> bool:
        return bool(session.neuron_pruning)

    def select(self, scores, kept, amount, scope, ctx=None):
        ctx = ctx or Context()
        self.check(ctx.method, scope)
        if ctx.coupled is None:
            raise PrunevizError("neuron selection needs the model's channel coupling")
        return ctx.coupled(amount, scope, scores, kept)


class Head(Unit):
    name, counted_in = "head", "attention heads"
    summary = "whole attention heads"
    shrinks, scored_as, edits, picks_layers = True, "head", "head", False

    def methods(self, has_data: bool = True) -> tuple[str, ...]:
        return tuple(m for m in imp.WEIGHT_METHODS if has_data or m not in imp.DATA_METHODS)

    def available(self, session) -> bool:
        return bool(session.attention_heads())  # the session's verb: attention_heads uses this registry

    def select(self, scores, kept, amount, scope, ctx=None):
        """Per attention module (``kept``: its heads), the lowest-scored kept heads; every module
        keeps at least one (see :func:`pruneviz.core.attention_heads.prune`)."""
        ctx = ctx or Context()
        self.check(ctx.method, scope)
        if scope == "layer":
            return {n: rk.lowest(scores[n], k, min(round(amount * rk.count(k)), max(rk.count(k) - 1, 0))) for n, k in kept.items()}
        out = {n: torch.zeros_like(k) for n, k in kept.items()}
        cand = []
        for n, kv in kept.items():
            if not bool(kv.any()):
                continue
            norm = scores[n].float() / rk.mean_kept(scores[n], kv)
            best = int(torch.where(kv, norm, torch.full_like(norm, -float("inf"))).argmax())
            cand += [(float(norm[h]), n, h) for h in range(kv.numel()) if bool(kv[h]) and h != best]
        total = sum(rk.count(kv) for kv in kept.values())
        cand.sort()
        for _, n, h in cand[: min(round(amount * total), len(cand))]:
            out[n][h] = True
        return out


class NM(Unit):
    """N:M semi-structured sparsity: of every M consecutive inputs of an output row, keep the N
    highest-scored weights. ``amount`` is not used (the pattern prunes ``1 - N/M``); the scope is
    always per group."""

    counted_in, scopes, uses_amount = "weights", ("layer", "global"), False

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.name = f"{n}:{m}"
        self.summary = f"N:M sparsity: the {n} highest-scored of every {m} consecutive inputs"

    def select(self, scores, kept, amount, scope, ctx=None):
        ctx = ctx or Context()
        self.check(ctx.method, scope)
        return {n: nm.select(scores[n], kept[n], self.n, self.m, ctx.kinds.get(n, "")) for n in kept}

    def conforms(self, kept, kind=""):
        """True when something is pruned and every group keeps at most N (a dense layer whose
        inputs are fewer than N, such as a first conv on one channel, follows nothing)."""
        return not bool(kept.all()) and nm.conforms(kept, self.n, self.m, kind)

    def pool_pruned(self, pruned2d, block, shape=None, kind=""):
        """Per block, the pruned fraction where every group in it follows N:M (a conformant 2:4
        layer reads 0.5), and 1 where some group keeps more than N (it stands out)."""
        pruned2d = np.asarray(pruned2d, dtype=bool)
        if shape is None:
            shape = pruned2d.shape
        bad = nm.violations(torch.from_numpy(~pruned2d.reshape(shape)), self.n, self.m, kind).numpy()
        return display.pool_conformance(pruned2d, display.as_2d(bad), block)


WEIGHT, NEURON, HEAD = Weight(), Neuron(), Head()
#: the units offered by name (front ends list these); any other N:M is found by :func:`get`
UNITS: dict[str, Unit] = {u.name: u for u in (WEIGHT, NEURON, HEAD, NM(2, 4))}


def get(name) -> Unit:
    """The unit called ``name`` (a :class:`Unit` passes through); N:M for any ``"N:M"`` with
    N < M. Anything else raises :class:`PrunevizError` naming the choices."""
    if isinstance(name, Unit):
        return name
    unit = UNITS.get(name) if isinstance(name, str) else None
    if unit is not None:
        return unit
    pattern = nm.parse(name) if isinstance(name, str) else None
    if pattern is not None:
        return NM(*pattern)
    raise PrunevizError(f"unknown pruning unit {name!r}: use {', '.join(names())} (or any N:M with N < M)")


def names() -> list[str]:
    """The registered unit names, for choices and combos."""
    return list(UNITS)


def parse_arg(text: str) -> str:
    """An argparse ``type``: the unit's name, or a one-line error naming the choices."""
    return get(text).name


def offered(session) -> list[str]:
    """The units that apply to ``session``'s model, for the app's combos."""
    return [n for n, u in UNITS.items() if u.available(session)]


#: the scopes of a selection (``prune --scope`` adds "sensitivity", weights only)
SCOPES: tuple[str, ...] = ("layer", "global")


def leveled() -> list[str]:
    """Units pruned by an amount, layer by layer: what level sweeps and sensitivity analyses take."""
    return [n for n, u in UNITS.items() if u.uses_amount and u.picks_layers]


def all_methods() -> tuple[str, ...]:
    """Every importance method some unit accepts, in the registry's order."""
    return tuple(dict.fromkeys(m for u in UNITS.values() for m in u.methods(True)))


def patterns(extra=None) -> list[Unit]:
    """The units with a pattern a mask may follow (the registered N:M, plus ``extra`` if it has one)."""
    out = [u for u in UNITS.values() if not u.uses_amount]
    if extra is not None:
        u = get(extra)
        if not u.uses_amount and u.name not in {p.name for p in out}:
            out.append(u)
    return out


def pattern_of(kept: torch.Tensor, kind: str = "", extra=None, sparsity: float | None = None) -> str | None:
    """The name of the first pattern (:func:`patterns`) ``kept`` follows, or None. A layer with
    nothing pruned follows none. ``sparsity`` (the layer's, when known) skips the patterns it is
    far too low for without reading the mask."""
    cands = [u for u in patterns(extra) if sparsity is None or sparsity >= 0.5 * (1 - u.n / u.m)]
    if not cands or bool(kept.all()):
        return None
    return next((u.name for u in cands if u.conforms(kept, kind)), None)


def conformance(session, extra=None) -> dict[str, list[str]]:
    """``{pattern: [layers whose non-zero weights follow it]}`` for :func:`patterns`, e.g.
    ``{"2:4": ["0", "2"]}``: for the inspect and report JSON."""
    out: dict[str, list[str]] = {}
    for u in patterns(extra):
        out[u.name] = [layer.name for layer in session.layers if u.conforms(session.weight(layer.name) != 0, layer.kind)]
    return out


def shown_as(session, layer: str) -> Unit:
    """The unit whose pooling draws ``layer`` in the heatmap: the last prune's pattern when it
    covered the layer (so a block that breaks it stands out), else a registered pattern the
    layer follows, else :data:`WEIGHT` (any pruned)."""
    spec = getattr(session, "last_prune", None)
    if spec is not None and layer in spec.layers:
        unit = UNITS.get(spec.granularity) or (NM(*nm.parse(spec.granularity)) if nm.parse(spec.granularity) else None)
        if unit is not None and not unit.uses_amount:
            return unit
    info = session.layer(layer)
    sparsity = session.sparsity(layer)
    if not any(sparsity >= 0.5 * (1 - u.n / u.m) for u in patterns()):
        return WEIGHT  # far too sparse-free for any pattern: the mask (a copy) is not read
    name = pattern_of(session.mask(layer), info.kind, sparsity=sparsity)
    return get(name) if name else WEIGHT


def pooling(session, layer: str):
    """``f(pruned2d, block)`` pooling ``layer``'s pruned overlay by its unit (:func:`shown_as`),
    or None for the default "any pruned" pooling."""
    unit = shown_as(session, layer)
    if unit is WEIGHT:
        return None
    info = session.layer(layer)
    return functools.partial(unit.pool_pruned, shape=info.shape, kind=info.kind)
