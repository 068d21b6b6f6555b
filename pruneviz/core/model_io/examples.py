"""An example input for models whose files do not carry one (tracing needs one batch).

In order: ``--input-shape`` / ``--input-dtype`` as given; a ``.pt2``'s own sample input (read by
:mod:`.pt2`); else inferred where the weights determine it: a model whose first layer is a
``Linear`` takes ``[1, in_features]``, one that starts with an ``Embedding`` takes token ids. A
convolution's input size is not in its weights, so a CNN needs ``--input-shape`` (or ``--data``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .common import load_error, reason

DTYPES = {"float": torch.float32, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64, "long": torch.long, "int64": torch.long, "int": torch.long, "int32": torch.int32}  # fmt: skip
TOKENS = 16  # sequence length of an inferred token input


def parse_shape(text: object) -> tuple[int, ...]:
    """``"3,224,224"`` (or a sequence of ints) -> ``(3, 224, 224)``; every size 1 to 2**20."""
    parts = text.replace("x", ",").replace("×", ",").split(",") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(str(p).strip()) for p in parts if str(p).strip())
    except (TypeError, ValueError):
        raise load_error(f"the input shape must be sizes separated by commas, e.g. 3,224,224; got {text!r}") from None
    if not shape or len(shape) > 6 or any(not 1 <= s <= 2**20 for s in shape):
        raise load_error(f"the input shape must be 1 to 6 sizes from 1 to {2**20}, e.g. 3,224,224; got {text!r}")
    return shape


def parse_dtype(text: str | None) -> torch.dtype:
    if text is None:
        return torch.float32
    if text not in DTYPES:
        raise load_error(f"the input dtype must be one of {', '.join(DTYPES)}; got {text!r}")
    return DTYPES[text]


def make_example(shape, dtype: str | None = None) -> torch.Tensor:
    """A batch of one input of ``shape`` (per sample): seeded normal values, or token id 0."""
    sizes, kind = parse_shape(shape), parse_dtype(dtype)
    if kind.is_floating_point:
        return torch.randn((1, *sizes), generator=torch.Generator().manual_seed(0)).to(kind)
    return torch.zeros((1, *sizes), dtype=kind)


def _first_layer(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if any(True for _ in module.parameters(recurse=False)):
            return module
    return None


def infer_example(model: nn.Module) -> tuple[torch.Tensor, str] | None:
    """(example, how it was found) when the first layer determines the input, else None."""
    first = _first_layer(model)
    if isinstance(first, nn.Linear):
        x, how = torch.randn(1, first.in_features, generator=torch.Generator().manual_seed(0)), f"[1, {first.in_features}] from the first Linear layer"
    elif isinstance(first, nn.Embedding):
        x, how = torch.zeros(1, TOKENS, dtype=torch.long), f"{TOKENS} token ids from the first layer (an Embedding)"
    else:
        return None
    if not runs(model, x):
        return None
    return x, how


def runs(model: nn.Module, x: torch.Tensor) -> bool:
    try:
        with torch.inference_mode():
            model(x)
        return True
    except Exception:
        return False


def check_example(spec: str, model: nn.Module, x: torch.Tensor) -> None:
    try:
        with torch.inference_mode():
            model(x)
    except Exception as exc:
        raise load_error(f"{spec} does not run on an input of shape {','.join(map(str, x.shape[1:]))} ({x.dtype}): {reason(exc)}") from exc
