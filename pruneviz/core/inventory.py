"""The prunable layers of a model, keyed by qualified module name.

A layer is a Linear or a ConvNd (its weight has one row per output neuron / filter), or a
Hugging Face ``Conv1D`` (GPT-2): a Linear whose weight is stored transposed, ``[in, out]``; it is
listed with that shape (rows are its inputs); its neurons are the weight's columns. Models that
arrive without their Python classes (a ``.pt2`` program, a TorchScript archive) are read by
parameter: every ``*.weight`` of rank 2 to 5 counts, its kind guessed from the rank; such layers
can be weight-pruned but not neuron-pruned, because their coupling cannot be traced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

_KINDS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerInfo:
    """One prunable layer.

    ``name`` is the qualified module name (``"features.0"``); ``weight`` / ``bias`` the qualified
    parameter names; ``shape`` the weight shape (out, in, *kernel); ``params`` weight + bias
    elements; ``is_output`` marks a layer whose outputs leave the model (never neuron-pruned unless
    named explicitly).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    weight: str
    bias: str | None
    is_output: bool = False

    @property
    def out_channels(self) -> int:
        """Output neurons: weight rows, except a Conv1D's columns (its weight is [in, out])."""
        return self.shape[1] if self.kind == "Conv1D" else self.shape[0]

    @property
    def numel(self) -> int:
        """Number of weight elements (what weight sparsity is counted over)."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def view_shape(self) -> tuple[int, int]:
        """Shape of the 2-D view: rows = output neurons, columns = inputs (× kernel positions)."""
        return self.shape[0], self.numel // max(self.shape[0], 1)

    def to_json(self, sparsity: float) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "params": self.params, "sparsity": sparsity}


def is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2 and relatives): ``y = x @ W + b`` with ``W`` of shape [in, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and isinstance(getattr(module, "weight", None), torch.Tensor)


def _kind_of(module: nn.Module) -> str | None:
    if isinstance(module, _KINDS):
        return type(module).__name__
    if is_conv1d(module):
        return "Conv1D"
    original = getattr(module, "original_name", None)  # TorchScript keeps the Python class name
    if original in {"Linear", "Conv1d", "Conv2d", "Conv3d"}:
        return original
    return None


def find_layers(model: nn.Module) -> list[LayerInfo]:
    """List the prunable layers of ``model`` in registration order."""
    layers: list[LayerInfo] = []
    seen: set[int] = set()
    # a parameter's one qualified name: a tied weight (lm_head.weight = embed.weight) is listed by
    # named_parameters() once, under its first owner, and every lookup by name must use that one
    pnames = {id(p): n for n, p in model.named_parameters()}
    for name, module in model.named_modules():
        kind = _kind_of(module)
        if kind is None:
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight.numel() == 0:
            continue
        if pnames and id(weight) not in pnames:
            continue  # computed (parametrized) or a buffer: nothing to mask in place
        if id(weight) in seen:
            # a tied weight (fc2.weight = fc1.weight): named_parameters() lists it once, under the
            # first owner's name; pruning that layer prunes this one too
            continue
        seen.add(id(weight))
        bias = getattr(module, "bias", None)
        has_bias = isinstance(bias, torch.Tensor)
        layers.append(
            LayerInfo(
                name=name,
                kind=kind,
                shape=tuple(weight.shape),
                params=weight.numel() + (bias.numel() if has_bias else 0),
                weight=pnames.get(id(weight), f"{name}.weight" if name else "weight"),
                bias=pnames.get(id(bias), f"{name}.bias" if name else "bias") if has_bias else None,
            )
        )
    if layers:
        return layers
    # Opaque programs (torch.export GraphModule): read layers off the parameter names.
    params = dict(model.named_parameters())
    for pname, p in params.items():
        # only a parameter called exactly "weight" is a layer's: "my_weight" and "other_weight" of one
        # module would both become a layer named "" (duplicates that confuse every lookup by name)
        if not (pname == "weight" or pname.endswith(".weight")) or not 2 <= p.dim() <= 5 or p.numel() == 0:
            continue
        name = pname[: -len(".weight")] if pname.endswith(".weight") else ""
        bname = f"{name}.bias" if name else "bias"
        has_bias = bname in params
        kind = "Linear" if p.dim() == 2 else f"Conv{p.dim() - 2}d"
        layers.append(LayerInfo(name, kind, tuple(p.shape), p.numel() + (params[bname].numel() if has_bias else 0), pname, bname if has_bias else None))
    return layers


def with_outputs(layers: list[LayerInfo], outputs: set[str]) -> list[LayerInfo]:
    """Return ``layers`` with ``is_output`` set for the names in ``outputs``."""
    from dataclasses import replace

    return [replace(layer, is_output=layer.name in outputs) for layer in layers]


def total_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_fraction(weight: torch.Tensor) -> float:
    """Fraction of exact zeros in ``weight``: the sparsity a pruned file arrives with."""
    return float((weight == 0).sum()) / weight.numel() if weight.numel() else 0.0
