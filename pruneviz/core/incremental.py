"""Incremental evaluation for any traceable graph (models that are not a plain ``nn.Sequential``).

The model's graph is captured once per activation cache (:func:`graph_for`, with
:mod:`pruneviz.core.graph_cuts`) and checked: run on a few samples it must give exactly the
model's own logits, or the model keeps the full pass and the cache says why once (``note``).

:class:`GraphPass` runs one evaluation over the graph: from the values cached at the latest
valid cut (all cuts before the earliest edited module stay valid, see
:meth:`~pruneviz.core.evaluate.ActivationCache.invalidate_modules`), node by node to the output,
storing the values crossing later cuts for next time. Which cuts are stored is chosen after the
first batch by the byte budget: first the cut just before each recently edited layer (the next
edit there starts from it), then the cuts nearest the output. On a GPU a cut that does not fit
the (device) budget may be kept in host memory instead (:mod:`pruneviz.core.spill`). The nodes
run are the model's own operations on the same tensors, so the result equals a full pass bit
for bit.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn
from torch import fx

from . import spill
from .graph_cuts import CaptureError, Graph, capture
from .outputs import logits

#: how many recently edited positions keep the cut before them
RECENT = 4


def modules_touched(layers, coupling) -> dict[tuple[str, str], frozenset[str]]:
    """For each ``(store, layer)`` of a flip: the modules whose parameters it can change (the
    layer; for a neuron flip also every module whose parameters the coupling zeroes with it)."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for layer in layers:
        out[("elem", layer.name)] = frozenset({layer.name})
        effects = coupling[layer.name].effects if coupling and layer.name in coupling else ()
        out[("chan", layer.name)] = frozenset({layer.name, *(e.param.rpartition(".")[0] for e in effects)})
    return out


def graph_for(model: nn.Module, cache, example: torch.Tensor) -> Graph | None:
    """The cache's graph of ``model``, captured and checked on ``example`` the first time; None
    when the model cannot be evaluated incrementally (``cache.graph`` then holds the reason and
    ``cache.note`` a one-line notice)."""
    with cache.lock:
        found = cache.graph
    if isinstance(found, Graph):
        return found
    if isinstance(found, str):
        return None
    try:
        if model._forward_pre_hooks or model._forward_hooks:
            raise CaptureError("the model has forward hooks that a graph would skip")
        graph = capture(model, example)
        _check(graph, model, example)
    except CaptureError as exc:
        with cache.lock:
            cache.graph = str(exc)
            cache.note = f"incremental evaluation is off for this model (its graph cannot be traced: {exc}); every evaluation is a full pass"
        return None
    with cache.lock:
        cache.graph = graph
    return graph


def give_up(cache, exc: BaseException) -> None:
    """The graph failed while evaluating: drop it and everything cached; full passes from now on."""
    reason = f"the traced graph failed on a batch ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''})"
    with cache.lock:
        cache.graph = reason
        cache.note = f"incremental evaluation is off for this model ({reason}); every evaluation is a full pass"
        cache.invalidate(-1)


def _check(graph: Graph, model: nn.Module, example: torch.Tensor) -> None:
    """The graph must compute exactly the model's logits (a trace can miss what the model does)."""
    try:
        with torch.inference_mode():
            want = logits(model(example))
            got = logits(run(graph, model, example))
    except Exception as exc:  # a graph that cannot run is a graph we cannot use
        raise CaptureError(f"the traced graph does not run ({type(exc).__name__})") from None
    if got.shape != want.shape or got.dtype != want.dtype or not torch.equal(got, want):
        raise CaptureError("the traced graph does not compute exactly what the model does")


def run(graph: Graph, model: nn.Module, x: torch.Tensor) -> Any:
    """The whole graph on ``x``: the model's output."""
    return _Runner(graph, model).forward(x, 0, {}, {})


class _Runner:
    """Runs the graph's nodes against one model's live modules and parameters."""

    def __init__(self, graph: Graph, model: nn.Module):
        self.graph = graph
        # the live model's modules (an exported graph's own helpers, such as its guard check, from it)
        self.modules = {**(dict(graph.owner.named_modules()) if graph.owner is not None else {}), **dict(model.named_modules())}
        # the live model's parameters; constants only an exported graph has names for, from it
        self.attrs = {n: _attr(model, n.target, graph.owner) for n in graph.nodes if n.op == "get_attr"}
        self.placeholders = [n for n in graph.nodes if n.op == "placeholder"]

    def forward(self, x: torch.Tensor, start: int, values: dict[fx.Node, Any], store: dict[int, bool]) -> tuple[Any, dict[int, tuple]] | Any:
        """Nodes ``start…`` from ``values`` (the cut's); ``store``: cut -> share (else copy) to
        collect. Returns the output, and with ``store`` the collected values too."""
        g = self.graph
        # attributes and inputs can be read after any cut (an attention mask built late in the
        # graph from the token ids reads them there)
        env = {**self.attrs, **self._inputs(x), **values}
        got: dict[int, tuple] = {}
        for i in range(start, len(g.nodes)):
            if i in store:
                vals = tuple(env[n] for n in g.cuts[i])
                got[i] = vals if store[i] else tuple(_copy(v) for v in vals)
            node = g.nodes[i]
            op = node.op
            if op == "output":
                out = fx.node.map_arg(node.args[0], env.__getitem__)
                if g.out_spec is not None:  # torch.export: flat outputs back into the model's object
                    out = torch.utils._pytree.tree_unflatten(list(out), g.out_spec)
                return (out, got) if store else out
            if op in ("placeholder", "get_attr"):  # (bound above)
                continue
            args = fx.node.map_arg(node.args, env.__getitem__)
            kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
            if op == "call_module":
                env[node] = self.modules[node.target](*args, **kwargs)
            elif op == "call_function":
                env[node] = node.target(*args, **kwargs)
            else:  # call_method
                env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
            for dead in g.last_use.get(i, ()):
                env.pop(dead, None)
        raise CaptureError("the graph ended without an output")  # pragma: no cover

    def _inputs(self, x: torch.Tensor) -> dict[fx.Node, Any]:
        """The graph's inputs: ``x``, then its flags (torch.export) or their defaults."""
        flags, out = self.graph.flags, {}
        for k, node in enumerate(self.placeholders):
            out[node] = x if k == 0 else flags[k - 1] if k - 1 < len(flags) else (node.args[0] if node.args else None)
        return out


def _attr(model: nn.Module, target: str, owner: nn.Module | None = None):
    try:
        obj = model
        for part in target.split("."):
            obj = getattr(obj, part)
        return obj
    except AttributeError:
        if owner is None:
            raise
        return _attr(owner, target)


def _copy(v):
    return v.clone() if isinstance(v, torch.Tensor) else v


def nbytes(value) -> int:
    """Bytes of the tensors in a cached value (a tensor, or a tuple of values crossing a cut)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


class GraphPass:
    """One evaluation over a captured graph with an activation cache (see the module docstring).

    ``bounds``: the batches (cached values of other batches are dropped); ``start``: the cut it
    starts from (0: the input); :meth:`forward` runs batch ``b``;
    ``new_points``: the values it collected, for the caller to commit (a cut kept in host
    memory as a :class:`~pruneviz.core.spill.Spilled` list). ``device``: where the evaluation
    runs (default: where the model's first parameter is)."""

    def __init__(self, graph: Graph, model: nn.Module, cache, bounds: list[tuple[int, int]], device: torch.device | None = None):
        self.graph = graph
        self.runner = _Runner(graph, model)
        if device is None:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.device = device
        with cache.lock:
            if cache.bounds != bounds:  # made with another batch size or data: useless now
                cache.invalidate(-1)
            self.start = max(cache.points, default=0)
            self.generation = cache.generation
            self.cached = cache.points.get(self.start)
            recent = list(cache.recent)
        self.cache = cache
        self.recent = recent
        later = [p for p in graph.cuts if p > self.start] if cache.store else []
        self.share = {p: graph.sharable(p, model) for p in later + ([self.start] if self.start in graph.cuts else [])}
        self.new_points: dict[int, list] = {p: [] for p in later}

    def forward(self, b: int, xb: torch.Tensor):
        values = {}
        if self.start > 0:
            vals, fresh = self.cached[b], False
            if isinstance(self.cached, spill.Spilled):
                vals, fresh = spill.fetch(vals, self.device)
            if not self.share[self.start] and not fresh:  # a node after the cut may write them in place
                vals = tuple(_copy(v) for v in vals)
            values = dict(zip(self.graph.cuts[self.start], vals))
        store = {p: self.share[p] for p in self.new_points}
        if not store:
            return self.runner.forward(xb, self.start, values, {})
        out, got = self.runner.forward(xb, self.start, values, store)
        for p, vals in got.items():
            kept = self.new_points[p]
            kept.append(spill.stash(vals) if isinstance(kept, spill.Spilled) else vals)
        return out

    def fit_budget(self, first: int, n: int) -> None:
        """After the first batch: keep the cuts whose full size (estimated from it) fits in what
        the budget has left, the cut before each recently edited position first, then the
        cuts nearest the output; one that does not fit goes to host memory when that budget
        has room (:func:`~pruneviz.core.spill.host_budget`)."""
        left = self.cache.budget_bytes - self.cache.nbytes
        host_left = spill.host_budget(self.cache, self.device)
        cuts = sorted(self.new_points)
        wanted: list[int] = []
        for e in self.recent:
            before = [p for p in cuts if p <= e]
            if before and before[-1] not in wanted:
                wanted.append(before[-1])
        wanted += [p for p in reversed(cuts) if p not in wanted]
        kept = {}
        for p in wanted:
            size = nbytes(self.new_points[p][0]) * n // max(first, 1)
            if size <= left:
                kept[p] = self.new_points[p]
                left -= size
            elif size <= host_left:
                kept[p] = spill.Spilled(spill.stash(vals) for vals in self.new_points[p])
                host_left -= size
        self.new_points = kept


def position(cache, model: nn.Module, modules: Iterable[str]) -> int | None:
    """Earliest point of the cache's graph an edit of ``modules`` can change (None: unknown)."""
    graph = cache.graph
    return graph.position(modules) if isinstance(graph, Graph) else None
