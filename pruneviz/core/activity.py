"""Where a layer's activity is read: after the normalisation and the non-linearity that follow it.

Hu et al. 2016 ("Network Trimming: A Data-Driven Neuron Pruning Approach towards Efficient Deep
Architectures") count the zeros a neuron outputs *after its ReLU*; for a conv followed by
BatchNorm and ReLU that is the ReLU's output, not the conv's. :func:`activity_chains` finds, for
each layer, the modules that apply to its output directly: a BatchNorm whose input is the
layer's output tensor, then an activation module (ReLU, GELU, SiLU, Tanh, …) whose input is the
output of the layer or of that BatchNorm. It runs the model once on a two-sample example with
forward hooks and follows the tensors themselves (``input is output``), so it sees the order the
model really calls its modules in, also outside ``nn.Sequential``, and a module used twice (a
ResNet block's one ``self.relu``) only where it takes this layer's output.

When no such module follows (the output layer, a functional ``F.relu`` that is not a module, a
residual addition before the ReLU), the activity is read at the last point found: the
BatchNorm's output, else the layer's own output.
"""

from __future__ import annotations

import torch
import torch.nn as nn

NORMS: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm,)
ACTIVATIONS: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
)  # fmt: skip


def activity_chains(model: nn.Module, names: list[str], example: torch.Tensor) -> dict[str, tuple[str, ...]]:
    """For each layer in ``names``: the module names whose output its activity is read from, in
    call order, starting with the layer itself, e.g. ``{"0": ("0", "1", "2")}`` for
    Conv2d → BatchNorm2d → ReLU and ``("4",)`` for an output layer.

    ``example``: a batch of inputs the model accepts (two samples are used)."""
    mods = dict(model.named_modules())
    watched = {n: mods[n] for n in names}
    for n, m in mods.items():
        if isinstance(m, NORMS + ACTIVATIONS):
            watched.setdefault(n, m)
    calls: list[tuple[str, object, object]] = []  # (module, its first input, its output): kept alive
    handles = []
    try:
        for n, m in watched.items():
            handles.append(m.register_forward_hook(lambda mod, inp, out, n=n: calls.append((n, inp[0] if inp else None, out))))
        with torch.inference_mode():
            model(example[:2])
    except Exception:  # an opaque program, a model that needs more than one input: the layer alone
        return {n: (n,) for n in names}
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name in names:
        first = next((c for c in calls if c[0] == name), None)
        chain = [name]
        if first is not None and isinstance(first[2], torch.Tensor):
            t = first[2]
            for kinds in (NORMS, ACTIVATIONS):
                step = next((c for c in calls if c[1] is t and isinstance(mods[c[0]], kinds) and c[0] not in chain), None)
                if step is not None and isinstance(step[2], torch.Tensor) and step[2].shape == t.shape:
                    chain.append(step[0])
                    t = step[2]
        out[name] = tuple(chain)
    return out


class ChainReader:
    """Forward hooks that hand ``fn(layer, tensor)`` each layer's activity once per forward pass:
    the output of the last module of its chain, reached through the chain's own tensors (a
    module shared by several chains, or called again on another tensor, is told apart by its
    input). Use as a context manager; the hooks are removed on exit."""

    def __init__(self, model: nn.Module, chains: dict[str, tuple[str, ...]], fn):
        self.fn = fn
        self.chains = chains
        self.cur: dict[str, tuple[int, torch.Tensor]] = {}  # layer -> (position reached, tensor)
        mods = dict(model.named_modules())
        self.users: dict[str, list[tuple[str, int]]] = {}
        for layer, chain in chains.items():
            for pos, m in enumerate(chain):
                self.users.setdefault(m, []).append((layer, pos))
        self.handles = [mods[m].register_forward_hook(self._hook(m)) for m in self.users]

    def _hook(self, module_name: str):
        def fn(mod, inp, out):
            if not isinstance(out, torch.Tensor):
                return
            for layer, pos in self.users[module_name]:
                if pos == 0:
                    self.cur[layer] = (0, out)
                else:
                    reached = self.cur.get(layer)
                    if reached is None or reached[0] != pos - 1 or not inp or inp[0] is not reached[1]:
                        continue
                    self.cur[layer] = (pos, out)
                if self.cur[layer][0] == len(self.chains[layer]) - 1:
                    self.fn(layer, self.cur.pop(layer)[1])

        return fn

    def flush(self) -> None:
        """After a forward pass: chains that stopped early (data-dependent flow) are read where they stopped."""
        for layer, (_, t) in list(self.cur.items()):
            self.fn(layer, t)
        self.cur.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.cur.clear()
