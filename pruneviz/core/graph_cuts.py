"""A model's graph, captured once, and the cut points every path from the input to the output
passes through: where incremental evaluation can cache activations.

:func:`capture` traces the model with ``torch.fx`` (Hugging Face models with their own fx tracer,
``transformers.utils.fx``, when it knows the architecture) and returns a :class:`Graph`: the
nodes in execution order, and the *cuts*. A cut at position ``p`` is the set of values computed
before node ``p`` and read at or after it (parameters excluded: they are read live). Running
nodes ``p…`` from those values is the same computation as running the whole graph; the cuts
kept are the narrowest ones (one value, in a plain network: the outputs of residual blocks,
transformer blocks, stages — the graph's articulation points), not counting values that are
read across a fifth of the graph or more (an attention mask crosses every block boundary); of
cuts with no parameter read between them only the later one is kept.
When fx cannot trace the model, ``torch.export`` (with a dynamic batch) may: its graph is of
aten operations, run against the live model's parameters.

:meth:`Graph.position` says, for a set of edited modules, the earliest node that reads any of
their parameters (through every name a tied parameter has): a cut at or before it is still valid.

The graph holds no tensors and no modules: it runs against whichever copy of the model it is
given (a probe's deep copy has the same names), see :mod:`pruneviz.core.incremental`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import operator
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import fx


class CaptureError(Exception):
    """The model's graph cannot be captured (the message says why, in one line)."""


#: functions that read their tensor arguments and return new tensors (never a view, never in place)
_READ_ONLY_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.matmul, torch.add, torch.sub, torch.mul,
    torch.matmul, torch.cat, torch.stack, F.linear, F.conv1d, F.conv2d, F.conv3d, F.layer_norm, F.gelu, F.silu,
    F.softmax, torch.softmax, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d, torch.mean, torch.sum,
}
#: tensor methods that read and return a new tensor or a size
_READ_ONLY_METHODS = {"size", "dim", "mean", "sum", "softmax", "matmul", "add", "mul", "sub", "__add__", "__mul__"}


@dataclass
class Graph:
    """A captured graph: nodes in execution order and the cuts (see the module docstring)."""

    nodes: list[fx.Node]
    #: how it was captured ("torch.fx", "transformers.utils.fx")
    how: str
    #: cut position -> the nodes whose values cross it
    cuts: dict[int, tuple[fx.Node, ...]] = field(default_factory=dict)
    #: parameter or buffer name (every name of a tied one) -> earliest node position reading it
    reads: dict[str, int] = field(default_factory=dict)
    #: node -> its position
    index: dict[fx.Node, int] = field(default_factory=dict)
    #: node position -> nodes whose last reader it is (their values can be dropped after it)
    last_use: dict[int, list[fx.Node]] = field(default_factory=dict)
    #: torch.export graphs: the module holding constants the model has no name for, and the
    #: structure the flat outputs are put back into (the model's own output object)
    owner: nn.Module | None = None
    out_spec: object = None
    #: values of the graph's inputs after the first (torch.export: the flags it was exported with)
    flags: tuple = ()

    def position(self, modules: Iterable[str]) -> int:
        """Earliest node that reads a parameter or buffer of ``modules`` (0: the first node; the
        number of nodes when none does: such an edit cannot change the output)."""
        names = list(modules)
        first = len(self.nodes)
        for name, pos in self.reads.items():
            if pos < first and any(name == m or name.startswith(m + ".") or not m for m in names):
                first = pos
        return first

    def describe(self, pos: int) -> str:
        """Where a cut is, for people: the module or operation that produced its first value."""
        if pos <= 0:
            return "the input"
        node = self.nodes[pos - 1]
        what = node.target if node.op == "call_module" else node.name
        return f"after {what} (node {pos} of {len(self.nodes)})"

    def sharable(self, pos: int, model: nn.Module) -> bool:
        """True when no node after cut ``pos`` can write the values crossing it in place (or
        return a view of them that something could write), so they can be cached and fed back
        without a copy."""
        modules = dict(model.named_modules())
        for value in self.cuts[pos]:
            for user in value.users:
                if not _reads_only(user, value, modules):
                    return False
        return True


def _reads_only(user: fx.Node, value: fx.Node, modules: dict[str, nn.Module]) -> bool:
    from .inplace import leaves_input_alone

    if user.op == "call_module":
        return leaves_input_alone(modules[user.target])
    if user.kwargs.get("inplace"):
        return False
    if user.op == "call_function":
        if user.target is operator.iadd:
            return user.args[0] is not value
        return user.target in _READ_ONLY_FUNCTIONS
    if user.op == "call_method":
        return user.target in _READ_ONLY_METHODS
    return user.op == "output"  # the evaluator only reads the logits


def capture(model: nn.Module, example: torch.Tensor | None = None) -> Graph:
    """Trace ``model`` and find its cuts; raises :class:`CaptureError` saying why it cannot.
    ``example`` (a batch of two or more inputs): lets ``torch.export`` try when fx cannot."""
    gm, how, out_spec, flags = _trace(model, example)
    nodes = list(gm.graph.nodes)
    if not nodes or nodes[-1].op != "output":
        raise CaptureError("the traced graph has no output")
    graph = Graph(nodes=nodes, how=how, index={n: i for i, n in enumerate(nodes)})
    if how == "torch.export":
        graph.owner, graph.out_spec, graph.flags = gm, out_spec, flags
    _find_reads(graph, model)
    _find_cuts(graph)
    _drop_redundant_cuts(graph)
    return graph


def _trace(model: nn.Module, example: torch.Tensor | None) -> tuple[fx.GraphModule, str, object, tuple]:
    errors = []
    if _is_hf(model):
        try:
            from transformers.utils import fx as hf_fx  # gone in transformers 5: torch.export then

            first = next(iter(inspect.signature(model.forward).parameters))
            return hf_fx.symbolic_trace(model, input_names=[first]), "transformers.utils.fx", None, ()
        except Exception as exc:  # an architecture their tracer does not know: try the others
            errors.append(f"Hugging Face tracer: {_one_line(exc)}")
    try:
        return fx.symbolic_trace(model), "torch.fx", None, ()
    except Exception as exc:
        errors.insert(0, _one_line(exc))
    if example is not None and len(example) >= 2:
        try:
            return _export(model, example)
        except Exception as exc:
            errors.append(f"torch.export: {_one_line(exc)}")
    raise CaptureError("; ".join(e[:200] for e in errors))


def _export(model: nn.Module, example: torch.Tensor) -> tuple[fx.GraphModule, str, object, tuple]:
    """``torch.export`` with a dynamic batch: its graph (parameters as attributes of the model's
    own names), the structure of the model's output and the flags it was exported with."""
    from torch.export import Dim, export

    # a Hugging Face model would also return its key/value cache, which export cannot flatten;
    # the logits are the same without it (capture's caller checks that they are, bit for bit)
    params = inspect.signature(model.forward).parameters
    kwargs = {"use_cache": False} if "use_cache" in params else {}
    # dynamic shapes name every input (the example's batch dimension, nothing in the flags)
    shapes = {next(iter(params)): {0: Dim("batch")}, **{k: None for k in kwargs}}
    # a failed export logs its whole graph (torch's loggers set their own levels): the notice says why
    quiet = [logging.getLogger(n) for n in ["torch", *logging.root.manager.loggerDict] if n.startswith("torch")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # (and prints it)
            ep = export(model, (example,), kwargs, dynamic_shapes=shapes, strict=False)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    gm = ep.module()
    return gm, "torch.export", ep.call_spec.out_spec, tuple(kwargs.values())


def _is_hf(model: nn.Module) -> bool:
    return any(c.__module__.startswith("transformers.") and c.__name__ == "PreTrainedModel" for c in type(model).__mro__)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _find_reads(graph: Graph, model: nn.Module) -> None:
    """``reads``: for every parameter and buffer name, the earliest node that reads it, through
    any of the names the same tensor has (tied weights: an edit under one name changes both)."""
    tensors: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        tensors.setdefault(id(t), []).append(name)
    first: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        if node.op in ("call_module", "get_attr"):
            # an attribute is read where it is used (torch.export lists them all at the top)
            at = min((graph.index[u] for u in node.users), default=i) if node.op == "get_attr" else i
            prefix = node.target + "."
            for names in tensors.values():
                for name in names:
                    if name == node.target or name.startswith(prefix):
                        first[name] = min(first.get(name, at), at)
    for names in tensors.values():
        pos = min((first[n] for n in names if n in first), default=len(graph.nodes))
        for name in names:
            graph.reads[name] = pos


def _find_cuts(graph: Graph) -> None:
    """Cuts: positions whose crossing set of values is as narrow as any in the graph."""
    nodes, index = graph.nodes, graph.index
    last = {}
    for i, node in enumerate(nodes):
        for inp in node.all_input_nodes:
            last[inp] = i
    for node, i in last.items():
        graph.last_use.setdefault(i, []).append(node)
    live: set[fx.Node] = set()
    crossing: dict[int, tuple[fx.Node, ...]] = {}
    for i, node in enumerate(nodes):
        live = {n for n in live if last.get(n, -1) >= i}
        if i > 0 and node.op not in ("placeholder", "get_attr") and live:
            crossing[i] = tuple(sorted(live, key=index.__getitem__))
        # (inputs, like parameters, are bound at every cut: they never cross one)
        if node.op not in ("placeholder", "get_attr", "output") and node in last:
            live.add(node)
    if not crossing:
        return
    # values read across a fifth of the graph or more (an attention mask, position ids) cross
    # every block boundary: a cut is as narrow as any when its *other* values are
    long = {n for n, i in last.items() if i - index[n] > len(nodes) / 5}
    width = {i: len([n for n in v if n not in long]) for i, v in crossing.items()}
    narrow = min(width.values())
    graph.cuts = {i: v for i, v in crossing.items() if width[i] <= max(narrow, 1)}


def _drop_redundant_cuts(graph: Graph) -> None:
    """Drop a cut when no node between it and the next cut reads a parameter or buffer: every
    edit that leaves it valid leaves the next one valid too, which starts later (the value
    before and after a ReLU, a dtype cast, a shape check: one is enough to cache)."""
    reads = sorted(set(graph.reads.values()))
    cuts = sorted(graph.cuts)
    for p, q in zip(cuts, cuts[1:]):
        if not any(p <= r < q for r in reads):
            del graph.cuts[p]
