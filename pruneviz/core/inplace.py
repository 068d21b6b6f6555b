"""Which modules cannot change their input tensor: a cached activation may be fed to them without
a copy (the Sequential evaluator and the traced-graph evaluator both ask)."""

from __future__ import annotations

import torch.nn as nn
from torch.nn.modules import module as _mm  # the global hook registries

#: modules whose forward never writes its input and returns a new tensor (not a view of it)
_LEAVE_INPUT = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)


def leaves_input_alone(module: nn.Module) -> bool:
    """True when running ``module`` cannot change its input tensor, so a cached activation can be
    fed to it without a copy: exactly one of the torch modules above (a subclass may override
    ``forward``) with no hooks that could write the input."""
    hooks = (module._forward_pre_hooks, module._forward_hooks, _mm._global_forward_pre_hooks, _mm._global_forward_hooks)
    return type(module) in _LEAVE_INPUT and not any(hooks)
