"""Physical removal of pruned neurons (``--shrink``), through Torch-Pruning's dependency groups.

Torch-Pruning removes channels group by group (a layer's outputs, the BatchNorm behind it, the
inputs of its consumers, everything added to it). Two cases it gets wrong are handled here:

* **Grouped convolutions** (``groups`` > 1, not depthwise). Its in-channel pruner keeps the first
  ``len(keep) // groups`` columns for every group, which builds a malformed layer. Ours removes,
  group by group, the columns of that group's own channels; a grouped conv stays a grouped conv
  only if every group loses as many channels as the others, so when the pruned channels are
  unbalanced the surplus is kept (as zeros, exactly as masked) and the report says so.
* **Tied weights** are refused before any work (see :func:`pruneviz.core.export.check_shrinkable`).
"""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
import torch.nn as nn

from .errors import PrunevizError
from .outputs import logits


def _grouped(module: nn.Module) -> bool:
    """A grouped conv that is not depthwise (depthwise ones Torch-Pruning handles itself)."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.groups > 1
        and not module.groups == module.in_channels == module.out_channels
    )


def _select(weight: torch.Tensor, idx: list[int], dim: int) -> nn.Parameter:
    return nn.Parameter(weight.detach().index_select(dim, torch.as_tensor(idx, dtype=torch.long, device=weight.device)).clone())


def _per_group(idxs, n: int, groups: int) -> list[list[int]]:
    per = n // groups
    out: list[list[int]] = [[] for _ in range(groups)]
    for i in sorted(set(int(i) for i in idxs)):
        out[i // per].append(i)
    return out


def _grouped_pruner():
    import torch_pruning as tp

    class GroupedConvPruner(tp.pruner.function.ConvPruner):
        """Torch-Pruning's conv pruner, except that grouped convs lose channels group by group."""

        def prune_out_channels(self, layer: nn.Module, idxs) -> nn.Module:
            if not _grouped(layer):
                return super().prune_out_channels(layer, idxs)
            counts = {len(g) for g in _per_group(idxs, layer.out_channels, layer.groups)}
            if len(counts) != 1:
                raise PrunevizError(f"internal: unbalanced removal from a grouped conv ({sorted(counts)})")
            keep = sorted(set(range(layer.out_channels)) - {int(i) for i in idxs})
            layer.out_channels = len(keep)
            layer.weight = _select(layer.weight, keep, 0)
            if layer.bias is not None:
                layer.bias = _select(layer.bias, keep, 0)
            return layer

        def prune_in_channels(self, layer: nn.Module, idxs) -> nn.Module:
            if not _grouped(layer):
                return super().prune_in_channels(layer, idxs)
            groups = layer.groups
            drop = _per_group(idxs, layer.in_channels, groups)
            if len({len(g) for g in drop}) != 1:
                raise PrunevizError("internal: unbalanced removal from a grouped conv")
            per_in, per_out = layer.in_channels // groups, layer.out_channels // groups
            w = layer.weight.detach()
            blocks = []
            for g in range(groups):
                local = sorted(set(range(per_in)) - {i - g * per_in for i in drop[g]})
                block = w[g * per_out : (g + 1) * per_out]
                blocks.append(block.index_select(1, torch.as_tensor(local, dtype=torch.long, device=w.device)))
            layer.weight = nn.Parameter(torch.cat(blocks, 0).clone())
            layer.in_channels -= sum(len(g) for g in drop)
            return layer

    return GroupedConvPruner()


def _balance(dg, module: nn.Module, pruner, idxs: list[int]) -> tuple[list[int], object]:
    """Drop root channels whose removal would leave a grouped conv with unequal groups.

    Returns the channels to remove and their pruning group; the dropped ones stay (zeroed)."""
    for _ in range(8):
        group = dg.get_pruning_group(module, pruner.prune_out_channels, idxs)
        drop: set[int] = set()
        for item in group:
            target = item.dep.target.module
            if not (isinstance(target, nn.Module) and _grouped(target)):
                continue
            if dg.is_out_channel_pruning_fn(item.dep.handler):
                n = target.out_channels
            elif dg.is_in_channel_pruning_fn(item.dep.handler):
                n = target.in_channels
            else:
                continue
            per = n // target.groups
            by_group: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for t, r in zip(item.idxs, item.root_idxs):
                by_group[int(t) // per].append((int(t), int(r)))
            k = min(len(by_group.get(g, [])) for g in range(target.groups))
            for members in by_group.values():
                drop |= {r for _, r in sorted(members)[k:]}
        if not drop:
            return idxs, group
        idxs = [i for i in idxs if i not in drop]
        if not idxs:
            return [], None
    raise PrunevizError("cannot shrink: the grouped convolutions' channels cannot be balanced", hint="no_shrink")


def shrink_model(model: nn.Module, example_input: torch.Tensor, pruned: dict[str, torch.Tensor], keep: set[str] = frozenset()) -> tuple[nn.Module, dict[str, int]]:
    """A copy of ``model`` with the listed output channels removed (``pruned``: layer -> bool [out],
    True = pruned). Coupled channels go with them; layers in ``keep`` are left whole.

    Returns the model and, per layer, how many pruned channels stayed in it as zeros (channels
    of grouped convolutions that could not be removed evenly from every group)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).cpu().eval()
    example_input = example_input[:1].repeat(2, *([1] * (example_input.dim() - 1))).cpu()  # batch 1 confuses the trace
    modules = dict(model.named_modules())
    dg = tp.DependencyGraph()
    if any(_grouped(m) for m in model.modules()):
        # per-instance customized pruners break Torch-Pruning 1.6's tracer; replace the conv one
        from torch_pruning import ops

        dg.REGISTERED_PRUNERS[ops.OPTYPE.CONV] = _grouped_pruner()
        dg._in_channel_pruning_fn = {p.prune_in_channels for p in dg.REGISTERED_PRUNERS.values() if p is not None}
        dg._out_channel_pruning_fn = {p.prune_out_channels for p in dg.REGISTERED_PRUNERS.values() if p is not None}
    from .groups import no_kv_cache

    with torch.enable_grad(), no_kv_cache(model):
        from .conv1d import customized_pruners

        dg.build_dependency(model, example_inputs=example_input, verbose=False, output_transform=logits, customized_pruners=customized_pruners(model))
    done: set[int] = set()
    kept_zero: dict[str, int] = {}
    for name, mask in pruned.items():
        if name in keep or not bool(mask.any()):
            continue
        module = modules[name]
        if id(module) in done:
            continue
        idxs = mask.nonzero().flatten().tolist()
        pruner = dg.get_pruner_of_module(module)
        wanted = len(idxs)
        idxs, group = _balance(dg, module, pruner, idxs)
        if len(idxs) < wanted:
            kept_zero[name] = wanted - len(idxs)
        if group is None:
            continue
        for item in group:
            if dg.is_out_channel_pruning_fn(item.dep.handler) and isinstance(item.dep.target.module, nn.Module):
                done.add(id(item.dep.target.module))
        if not dg.check_pruning_group(group):
            raise PrunevizError(f"cannot shrink {name}: every neuron of a layer would be removed; restore at least one")
        group.prune()
    return model, kept_zero
