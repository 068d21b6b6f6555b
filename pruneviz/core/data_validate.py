"""Evaluation data checked and converted: arrays or tensors in, contiguous CPU tensors out.

:func:`validate` turns what a reader found (:mod:`pruneviz.core.data_read`) into the inputs,
int64 labels and extra keyword arrays of :class:`pruneviz.core.data.EvalData`, refusing with a
one-line :class:`~pruneviz.core.errors.PrunevizError` anything that is not numeric, does not line
up sample by sample, holds NaN inputs or negative labels, or is over the size limit. The small
helpers the readers share (:func:`error`, :func:`shape_text`, :func:`gib`) live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from pruneviz.core.errors import PrunevizError, one_line

__all__ = ["EXTRA_KEYS", "validate", "token_header", "native", "error", "shape_text", "gib"]

#: per-sample arrays a .npz / .pt may hold besides x and y; passed to the model as keywords
EXTRA_KEYS = ("decoder_input_ids", "attention_mask", "decoder_attention_mask")


def error(message: str) -> PrunevizError:
    """A PrunevizError whose message is ``message`` on one line."""
    return PrunevizError(one_line(message))


def shape_text(shape: Iterable[int]) -> str:
    """``[2, 64]``: a shape as the messages write it."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def gib(n: int) -> str:
    """A byte count in GiB (or MiB below one GiB), for the size-limit messages."""
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in native byte order and C-contiguous (what ``torch.from_numpy`` takes)."""
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _to_tensor(spec: str, name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise error(f"{spec}: {name} has dtype {value.dtype}, which is not numeric")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            value = value.astype(np.int64)
        return torch.from_numpy(native(value))
    raise error(f"{spec}: {name} is a {type(value).__name__}, not an array or tensor")


def token_header(shape: tuple, dtype) -> bool:
    """Integer ids of shape [N, T] with T >= 2: language-model data."""
    kind = getattr(dtype, "kind", None)
    integer = kind in ("i", "u") if kind is not None else (isinstance(dtype, torch.dtype) and not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool)
    return integer and len(shape) == 2 and shape[1] >= 2


def validate(spec: str, x_in: object, y_in: object, max_bytes: int, extra_in: Mapping | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(x, y, extra)`` as contiguous tensors: x float32 (or its own non-float dtype), y and the
    extra arrays int64; token ids without labels become next-token pairs. Raises PrunevizError
    (one line, naming ``spec``) on anything that cannot be evaluated."""
    x = _to_tensor(spec, "x", x_in)
    extra = {k: _to_tensor(spec, k, v) for k, v in (extra_in or {}).items()}
    if y_in is None:  # token ids alone: predict each next token
        if extra:
            raise error(f"{spec} holds {', '.join(extra)} but no labels; add labels (or y), one per decoder token")
        x, y_in = x[:, :-1], x[:, 1:]
    y = _to_tensor(spec, "y", y_in)
    if x.is_complex():
        raise error(f"{spec}: inputs x are complex ({x.dtype}); expected real numbers")
    if x.dim() < 2:
        raise error(
            f"{spec}: inputs x have shape {shape_text(x.shape)}; expected a sample axis and at least one "
            "feature axis, e.g. [N, 64]"
        )
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    decoder = extra.get("decoder_input_ids")
    for name, v in extra.items():  # every extra array goes with x, sample by sample
        if v.dim() == 0 or v.shape[0] != x.shape[0]:
            raise error(f"{spec}: {name} has shape {shape_text(v.shape)} but x has {x.shape[0]} samples; its first axis must be the samples too")
        if v.is_floating_point() or v.is_complex():
            raise error(f"{spec}: {name} is {str(v.dtype).replace('torch.', '')}; expected integers")
    if decoder is not None:  # encoder-decoder: one label per decoder token
        tokens = y.dim() == 2 and y.shape == decoder.shape
        if not tokens:
            raise error(f"{spec}: labels have shape {shape_text(y.shape)} but decoder_input_ids {shape_text(decoder.shape)}; expected one label per decoder token")
    else:
        tokens = y.dim() == 2 and x.dim() == 2 and y.shape == x.shape and not x.is_floating_point()
    if y.dim() != 1 and not tokens:
        raise error(f"{spec}: labels y have shape {shape_text(y.shape)}; expected one integer per sample, [N] (or per token, [N, T], for token ids x)")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise error(f"{spec}: labels y are {str(y.dtype).replace('torch.', '')}; expected integer class indices")
    if x.shape[0] != y.shape[0]:
        raise error(f"{spec}: x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise error(f"{spec} holds no samples")
    if x.numel() * x.element_size() + (y.numel() + sum(v.numel() for v in extra.values())) * 8 > max_bytes:
        raise error(f"{spec} is larger than the {gib(max_bytes)} limit for evaluation data")
    y = y.to(torch.int64)
    extra = {k: v.to(torch.int64).contiguous() for k, v in extra.items()}
    scored = y[y != -100] if tokens else y  # -100: a padding token, not a prediction
    if tokens and scored.numel() == 0:
        raise error(f"{spec}: every label is -100 (padding); nothing to score")
    smallest = int(scored.min())
    if smallest < 0:
        raise error(f"{spec}: labels must be class indices >= 0{' (or -100 for padding)' if tokens else ''}, but one is {smallest}")
    if x.dtype == torch.float64:
        x = x.to(torch.float32)
    if x.is_floating_point():
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise error(f"{spec}: inputs x contain NaN or infinite values (first in sample {first})")
    return x.contiguous(), y.contiguous(), extra

