"""Hugging Face's ``Conv1D`` (GPT-2): a Linear whose weight is stored transposed, ``[in, out]``.

Torch-Pruning 1.6 does not know the class, so its tracer would look inside it (an ``addmm`` with a
bare parameter) and find no layer. :func:`customized_pruners` registers a pruner for it through
Torch-Pruning's ``customized_pruners``: the module becomes one node of the dependency graph whose
output channels are its weight's columns and whose input channels are its weight's rows, so the
coupling (what a pruned neuron zeroes) and the physical removal come from Torch-Pruning as for a
Linear.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .inventory import is_conv1d


_PRUNER = None


def conv1d_pruner():
    """The Torch-Pruning pruner for Conv1D (built on first use: torch_pruning loads lazily)."""
    global _PRUNER
    if _PRUNER is None:
        import torch_pruning as tp

        class Conv1DPruner(tp.pruner.function.BasePruningFunc):
            """Output channels are columns of ``weight`` (and entries of ``bias``); inputs are rows."""

            def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
                keep = sorted(set(range(layer.weight.shape[1])) - {int(i) for i in idxs})
                layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
                if getattr(layer, "bias", None) is not None:
                    layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
                layer.nf = len(keep)
                return layer

            def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
                keep = sorted(set(range(layer.weight.shape[0])) - {int(i) for i in idxs})
                layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
                if hasattr(layer, "nx"):
                    layer.nx = len(keep)
                return layer

            def get_out_channels(self, layer: nn.Module) -> int:
                return layer.weight.shape[1]

            def get_in_channels(self, layer: nn.Module) -> int:
                return layer.weight.shape[0]

        _PRUNER = Conv1DPruner()
    return _PRUNER


def customized_pruners(model: nn.Module) -> dict:
    """``{Conv1D class: pruner}`` for the Conv1D classes in ``model`` (empty when there are none)."""
    return {type(m): conv1d_pruner() for m in model.modules() if is_conv1d(m)}
