"""Coupled channels: which parameter slices go to zero when a neuron is pruned.

Pruning output channel ``i`` of a layer must also zero whatever only exists for that channel
(its bias, the BatchNorm scale and shift of the channel), the input columns of the layers that
consume it, and, through residual additions, the same channel of every layer added to it.
Torch-Pruning's ``DependencyGraph`` already knows this from an autograd trace; we ask it once per
layer for the full-index group and turn the answer into plain index maps ("root channel r ->
row t of parameter p along dim d"), so that masking is a cheap vector operation and the same
group drives the physical shrink in :mod:`pruneviz.core.export`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .conv1d import customized_pruners
from .errors import PrunevizError
from .inventory import is_conv1d
from .outputs import logits

# Modules whose channel parameters we know how to mask along dim 0 when their channels go.
_CHANNEL_WISE = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.PReLU,
)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def is_transposed(module: nn.Module) -> bool:
    """A transposed conv keeps its weight as [in, out / groups, *kernel] (``_ConvNd.transposed``)."""
    return isinstance(module, nn.modules.conv._ConvNd) and bool(getattr(module, "transposed", False))


@dataclass(frozen=True)
class Effect:
    """Root channel ``root_idx[k]`` zeroes index ``target_idx[k]`` of ``param`` along ``dim``."""

    param: str
    dim: int
    target_idx: torch.Tensor
    root_idx: torch.Tensor


@dataclass
class LayerCoupling:
    """What pruning the output channels of one layer touches."""

    effects: list[Effect] = field(default_factory=list)
    #: other prunable layers whose output channels move with this one (name -> (their idx, root idx))
    coupled: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    #: why neuron pruning is refused for this layer, if it is
    refused: str | None = None
    #: True when no other weighted layer reads this layer's output (it is a model output)
    is_output: bool = False
    #: True when the traced forward never reached the layer (a branch taken only for other data,
    #: or an unused layer): the trace cannot be trusted to shrink the model
    untraced: bool = False
    #: why the layer's neurons can be masked but not removed by ``--shrink``, if so
    no_shrink: str | None = None


@contextmanager
def no_kv_cache(model: nn.Module):
    """Hugging Face models return a key/value cache by default; its concatenations confuse the
    tracer (no channel count), and pruning does not need it: trace with ``use_cache`` off."""
    config = getattr(model, "config", None)
    old = getattr(config, "use_cache", None)
    if old:
        config.use_cache = False
    try:
        yield
    finally:
        if old:
            config.use_cache = old


def shared_params(model: nn.Module) -> dict[str, list[str]]:
    """Parameters owned by more than one module (tied weights): name -> every owner's attribute."""
    owners: dict[int, list[str]] = {}
    for mname, module in model.named_modules(remove_duplicate=False):
        for attr, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append(f"{mname}.{attr}" if mname else attr)
    pnames = {id(p): n for n, p in model.named_parameters()}
    return {pnames[i]: sorted(set(o)) for i, o in owners.items() if len(set(o)) > 1 and i in pnames}


def _traced_ancestor(name: str, modules: dict[str, nn.Module], dg) -> str | None:
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:k])
        if parent in modules and modules[parent] in dg.module2node:
            return parent
    return None


def untraced_layers(coupling: dict[str, LayerCoupling] | None) -> list[str]:
    """Layers the trace never reached (see :attr:`LayerCoupling.untraced`)."""
    return [n for n, lc in (coupling or {}).items() if lc.untraced]


def _tensor(idx) -> torch.Tensor:
    return torch.as_tensor([int(i) for i in idx], dtype=torch.long)


#: a group with more items than this is a tracer loop (Torch-Pruning follows index maps through
#: grouped-query attention's ``repeat_kv`` without end): the layer is refused, not waited for.
#: Real groups are far smaller (a ResNet-152 stage or a DenseNet block: a few hundred).
MAX_GROUP_ITEMS = 2000
#: seconds the whole coupling build may take before it gives up with a message
TIME_LIMIT_S = 120.0


class _GroupTooLarge(Exception):
    pass


@contextmanager
def _bounded_groups(limit: int, deadline: float):
    """Stop Torch-Pruning's group search past ``limit`` items, or past ``deadline`` (perf_counter)."""
    import time

    from torch_pruning.dependency import group as tp_group

    add = tp_group.Group.add_dep

    def bounded(self, dep, idxs):
        if len(self._group) >= limit:
            raise _GroupTooLarge("items")
        if time.perf_counter() > deadline:
            raise _GroupTooLarge("time")
        add(self, dep, idxs)

    tp_group.Group.add_dep = bounded
    try:
        yield
    finally:
        tp_group.Group.add_dep = add


def grouped_query(model: nn.Module) -> bool:
    """True for grouped-query attention: fewer key/value heads than query heads (Llama, Mistral, Qwen)."""
    config = getattr(model, "config", None)
    kv, heads = getattr(config, "num_key_value_heads", None), getattr(config, "num_attention_heads", None)
    return isinstance(kv, int) and isinstance(heads, int) and 0 < kv < heads


def _block_of(name: str, modules: dict[str, nn.Module]) -> tuple[str, str] | None:
    """(container, block prefix) of the innermost numbered child of a ModuleList/Sequential that holds ``name``."""
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[: k - 1])
        if parts[k - 1].isdigit() and isinstance(modules.get(parent) if parent else None, (nn.ModuleList, nn.Sequential)):
            return parent, ".".join(parts[:k])
    return None


def _signature(module: nn.Module) -> tuple:
    return (type(module).__name__, tuple((n, type(m).__name__) for n, m in module.named_modules()), tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))


def _translate(lc: LayerCoupling, old: str, new: str) -> LayerCoupling | None:
    """``lc`` of a layer in block ``old``, moved to the same layer of block ``new``; None when the
    coupling leaves the block (then it must be traced for itself)."""
    o, n = old + ".", new + "."
    if lc.untraced or lc.is_output or any(not e.param.startswith(o) for e in lc.effects) or any(not c.startswith(o) for c in lc.coupled):
        return None
    return LayerCoupling(
        effects=[Effect(n + e.param[len(o) :], e.dim, e.target_idx, e.root_idx) for e in lc.effects],
        coupled={n + c[len(o) :]: v for c, v in lc.coupled.items()},
        refused=lc.refused.replace(o, n) if lc.refused else None,
        is_output=False,
    )


def build_coupling(model: nn.Module, example_input: torch.Tensor, layer_names: list[str], time_limit: float = TIME_LIMIT_S, progress=None) -> dict[str, LayerCoupling]:
    """Trace ``model`` once with Torch-Pruning and return the coupling of each named layer.

    ``example_input`` is one batch the model accepts. Raises :class:`PrunevizError` when the
    model cannot be traced, or when the build takes more than ``time_limit`` seconds (then only
    weight-level pruning is offered). Repeated blocks (the numbered children of a ModuleList or
    Sequential with the same structure, e.g. decoder layers) ask Torch-Pruning once, for the
    first block: a layer whose coupling stays inside its block takes the first block's, renamed,
    so the cost grows with one block. ``progress(done, total)`` is called after each layer.
    """
    import time

    import torch_pruning as tp

    from .heads import head_split_layers

    deadline = time.perf_counter() + time_limit
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    # a parameter's one qualified name (tied weights appear once, under their first owner)
    pnames = {id(p): n for n, p in model.named_parameters()}

    def pname(module: nn.Module, attr: str) -> str | None:
        p = getattr(module, attr, None)
        return pnames.get(id(p)) if isinstance(p, torch.Tensor) else None
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), no_kv_cache(model):
            dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False, output_transform=logits, customized_pruners=customized_pruners(model))
    except Exception as exc:  # the tracer raises anything from AssertionError to RuntimeError
        raise PrunevizError(f"cannot trace the model for neuron pruning ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); weight pruning still works") from exc
    finally:
        model.train(was_training)
    split = head_split_layers(model, example_input, layer_names)
    gqa = grouped_query(model)

    result: dict[str, LayerCoupling] = {}
    wanted = set(layer_names)
    first_block: dict[tuple[str, tuple], str] = {}
    for done, name in enumerate(layer_names):
        if progress is not None:
            progress(done, len(layer_names))
        module = modules[name]
        block = _block_of(name, modules)
        if block is not None:
            key = (block[0], _signature(modules[block[1]]))
            template = first_block.setdefault(key, block[1])
            if template != block[1]:
                old = template + name[len(block[1]) :]
                moved = _translate(result[old], template, block[1]) if old in result else None
                if moved is not None:
                    result[name] = moved
                    continue
        if module in dg.module2node and name in split and gqa:
            # grouped-query attention: the tracer's group search through repeat_kv never ends;
            # a projection split into heads couples to nothing but its own rows
            result[name] = _own_rows(module, name, pname)
            continue
        try:
            with _bounded_groups(MAX_GROUP_ITEMS, deadline):
                result[name] = _layer_coupling(name, module, modules, names, pname, dg, wanted)
        except _GroupTooLarge as stop:
            if str(stop) == "time":
                raise PrunevizError(
                    f"building the neuron coupling took more than {time_limit:.0f} s (stopped at {name}, "
                    f"layer {done + 1} of {len(layer_names)}); weight pruning still works"
                ) from None
            result[name] = _own_rows(module, name, pname) if name in split else LayerCoupling(
                refused=f"its channels reach more than {MAX_GROUP_ITEMS} places in the traced graph (a tracer loop); prune its weights instead"
            )
    for name in split:
        result[name].no_shrink = (
            "its outputs are split into attention heads, so removing single neurons would break the "
            "model's reshape (only whole attention heads could go); mask them, and export without shrinking"
        )
    return result


def _own_rows(module: nn.Module, name: str, pname) -> LayerCoupling:
    """A layer's neurons as its own output rows (columns of a Conv1D) and bias entries only."""
    n = module.weight.shape[1] if is_conv1d(module) else module.weight.shape[0]
    idx = torch.arange(n)
    effects = [Effect(pname(module, "weight"), 1 if is_conv1d(module) else 0, idx, idx)]
    if getattr(module, "bias", None) is not None:
        effects.append(Effect(pname(module, "bias"), 0, idx, idx))
    return LayerCoupling(effects=[e for e in effects if e.param is not None])


def _layer_coupling(name, module, modules, names, pname, dg, wanted) -> LayerCoupling:
    """One layer's coupling from Torch-Pruning's full-index group."""
    lc = LayerCoupling()
    if module not in dg.module2node:
        parent = _traced_ancestor(name, modules, dg)
        if parent is not None:
            lc.refused = f"it is used inside {parent} ({type(modules[parent]).__name__}), not called as a layer"
        else:
            lc.untraced = True
            lc.refused = (
                "the traced forward pass does not reach it: it is unused, or on a branch the forward "
                "takes only for other inputs (data-dependent control flow)"
            )
        return lc
    pruner = dg.get_pruner_of_module(module)
    n_out = pruner.get_out_channels(module)
    group = dg.get_pruning_group(module, pruner.prune_out_channels, list(range(n_out)))
    consumers = 0
    for item in group:
        dep = item.dep
        target = dep.target.module
        tname = names.get(id(target))
        is_out = dg.is_out_channel_pruning_fn(dep.handler)
        is_in = dg.is_in_channel_pruning_fn(dep.handler)
        tidx, ridx = _tensor(item.idxs), _tensor(item.root_idxs)
        if not isinstance(target, nn.Module) or tname is None:
            if isinstance(target, nn.Parameter):
                lc.refused = "its channels are coupled to a bare nn.Parameter"
            continue  # tracer-internal ops (add, cat, reshape) own no parameters
        if is_conv1d(target):  # a Linear with its weight [in, out]: outputs are columns
            if is_out:
                lc.effects.append(Effect(pname(target, "weight"), 1, tidx, ridx))
                if target.bias is not None:
                    lc.effects.append(Effect(pname(target, "bias"), 0, tidx, ridx))
                if tname != name and tname in wanted:
                    lc.coupled[tname] = (tidx, ridx)
            elif is_in:
                consumers += 1
                lc.effects.append(Effect(pname(target, "weight"), 0, tidx, ridx))
        elif isinstance(target, _WEIGHTED):
            # a depthwise conv's channel is both its input and its output: it goes whole
            depthwise = isinstance(target, nn.modules.conv._ConvNd) and target.groups > 1 and target.groups == target.in_channels == target.out_channels
            if is_out and (not is_in or depthwise):
                odim = 1 if is_transposed(target) else 0
                lc.effects.append(Effect(pname(target, "weight"), odim, tidx, ridx))
                if target.bias is not None:
                    lc.effects.append(Effect(pname(target, "bias"), 0, tidx, ridx))
                if tname != name and tname in wanted:
                    lc.coupled[tname] = (tidx, ridx)
                if depthwise and target is not module:
                    consumers += 1
            elif is_in:
                consumers += 1
                if isinstance(target, nn.modules.conv._ConvNd) and target.groups != 1:
                    continue  # grouped input slices: the group's out-channel effect zeroes them
                idim = 0 if is_transposed(target) else 1
                lc.effects.append(Effect(pname(target, "weight"), idim, tidx, ridx))
        elif isinstance(target, (nn.GroupNorm, nn.LayerNorm)):
            # they normalise across channels: a zeroed channel still shifts the statistics of
            # the others, so the masked model would not equal the shrunk one
            lc.refused = f"its channels feed a {type(target).__name__} ({tname}), which normalises across channels"
        elif isinstance(target, _CHANNEL_WISE):
            for attr, p in target.named_parameters(recurse=False):
                if p.dim() >= 1 and p.shape[0] > 1:
                    lc.effects.append(Effect(pname(target, attr), 0, tidx, ridx))
        elif any(True for _ in target.parameters(recurse=False)):
            lc.refused = f"its channels are coupled to a {type(target).__name__} ({tname}), which pruneviz cannot mask"
    # drop effects on parameters without a name of their own, and repeats (tied weights)
    seen: set[tuple[str, int, bytes]] = set()
    unique = []
    for e in lc.effects:
        key = (e.param, e.dim, e.target_idx.numpy().tobytes())
        if e.param is not None and key not in seen:
            seen.add(key)
            unique.append(e)
    lc.effects = unique
    lc.is_output = consumers == 0
    return lc
