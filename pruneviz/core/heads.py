"""Which layers' outputs a model splits into attention heads.

``q = self.query(x).view(b, n, heads, head_dim)`` (BERT), ``self.qkv(x).reshape(b, n, 3, heads,
head_dim)`` (timm), ``self.c_attn(x).split(d, 2)`` then ``.view(...)`` (GPT-2): removing one output
neuron of such a layer leaves a width the reshape cannot split, so the shrunk model fails inside
its own forward. One forward pass under a :class:`~torch.overrides.TorchFunctionMode` follows each
layer's output through splits, chunks and indexing and records the layers whose output is reshaped
so that its last dimension is split into smaller ones.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

_RESHAPES = {"view", "reshape", "unflatten"}
_PASS_THROUGH = {"split", "chunk", "unbind", "__getitem__", "narrow", "contiguous", "tensor_split", "split_with_sizes"}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)


def head_split_layers(model: nn.Module, example: torch.Tensor, layer_names: list[str]) -> set[str]:
    """Names in ``layer_names`` whose output is reshaped into heads in ``model(example)``."""
    modules = dict(model.named_modules())
    origin: dict[int, str] = {}
    alive: list[torch.Tensor] = []  # ids stay unique while the tensors live
    found: set[str] = set()

    def hook(name):
        def record(module, inputs, output):
            for t in _tensors(output):
                origin[id(t)] = name
                alive.append(t)

        return record

    class Follow(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            src = args[0] if args else None
            if isinstance(src, torch.Tensor) and id(src) in origin:
                name = origin[id(src)]
                fname = getattr(func, "__name__", "")
                if fname in _RESHAPES and isinstance(out, torch.Tensor) and src.dim() >= 1 and out.dim() > src.dim() and 0 < out.shape[-1] < src.shape[-1]:
                    found.add(name)
                elif fname in _PASS_THROUGH:
                    for t in _tensors(out):
                        origin[id(t)] = name
                        alive.append(t)
            return out

    handles = [modules[n].register_forward_hook(hook(n)) for n in layer_names if n in modules]
    try:
        with torch.no_grad(), Follow():
            model(example)
    except Exception:
        return set()  # the trace itself worked; a probe that fails only loses this refinement
    finally:
        for h in handles:
            h.remove()
    return found
