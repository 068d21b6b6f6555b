"""N:M semi-structured sparsity, in pure torch: keep the N highest-scored of every M consecutive
weights along each output row's inputs.

The groups lie where NVIDIA's sparse tensor cores and ``torch.sparse.to_sparse_semi_structured``
want them: a Linear's weight ``[out, in]`` along ``in``; a convolution's ``[out, in, kh, kw]``
along the input channels at each kernel position; GPT-2's ``Conv1D`` (weight ``[in, out]``) along
its stored input dimension. :func:`grouped` turns a weight-shaped tensor into ``[rows, groups, M]``
in that order; an input dimension that is not a multiple of M ends in a shorter last group, which
also keeps at most N.
"""

from __future__ import annotations

import re

import torch

from .errors import PrunevizError

_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse(text: str) -> tuple[int, int] | None:
    """``"2:4"`` -> ``(2, 4)``; None when ``text`` is not of the form N:M. Raises on N:M with
    N < 1 or N >= M (nothing pruned, or everything)."""
    hit = _PATTERN.match(str(text))
    if hit is None:
        return None
    n, m = int(hit.group(1)), int(hit.group(2))
    if not 1 <= n < m or m > 1024:
        raise PrunevizError(f"N:M sparsity needs 1 <= N < M <= 1024, got {text!r} (e.g. 2:4)")
    return n, m


def _rows_last(t: torch.Tensor, kind: str) -> torch.Tensor:
    """``t`` (weight-shaped) as ``[out, ..., in]``: the input dimension last, outputs first."""
    if kind == "Conv1D":  # [in, out]
        return t.t()
    if t.dim() == 2:
        return t
    return t.movedim(1, -1)  # [out, in, *k] -> [out, *k, in]


def grouped(t: torch.Tensor, m: int, kind: str, fill=0) -> torch.Tensor:
    """``t`` (weight-shaped) as ``[rows, groups, m]``: each row one output (and kernel position),
    each group ``m`` consecutive inputs; a short last group is padded with ``fill``."""
    r = _rows_last(t, kind)
    width = r.shape[-1]
    r = r.reshape(-1, width)
    pad = (-width) % m
    if pad:
        r = torch.cat([r, torch.full((r.shape[0], pad), fill, dtype=r.dtype, device=r.device)], dim=1)
    return r.reshape(r.shape[0], -1, m)


def ungrouped(g: torch.Tensor, shape, kind: str) -> torch.Tensor:
    """The inverse of :func:`grouped` for a tensor of weight shape ``shape``."""
    shape = tuple(shape)
    if kind == "Conv1D":
        rows_shape = (shape[1], shape[0])
    elif len(shape) == 2:
        rows_shape = shape
    else:
        rows_shape = (shape[0], *shape[2:], shape[1])
    width = rows_shape[-1]
    flat = g.reshape(g.shape[0], -1)[:, :width].reshape(rows_shape)
    if kind == "Conv1D":
        return flat.t()
    if len(shape) == 2:
        return flat
    return flat.movedim(-1, 1)


def select(scores: torch.Tensor, kept: torch.Tensor, n: int, m: int, kind: str) -> torch.Tensor:
    """Bool tensor like ``kept``: the kept weights to prune so that every group of ``m`` keeps
    at most its ``n`` highest-scored kept weights (ties: the lower index stays). NaN scores rank
    lowest (a NaN weight breaks the model)."""
    s = grouped(torch.nan_to_num(scores.detach().float().cpu(), nan=-float("inf")), m, kind, fill=-float("inf"))
    k = grouped(kept.cpu(), m, kind, fill=False)
    s = torch.where(k, s, torch.full_like(s, -float("inf")))
    # rank within each group, highest first; a stable sort keeps the lower index ahead on ties
    order = torch.argsort(-s, dim=2, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(2, order, torch.arange(m).expand_as(order).contiguous())
    go = k & (rank >= n)
    return ungrouped(go, kept.shape, kind).to(kept.device)


def violations(kept: torch.Tensor, n: int, m: int, kind: str) -> torch.Tensor:
    """Bool tensor like ``kept``: True on every weight of a group that keeps more than ``n``."""
    k = grouped(kept.cpu(), m, kind, fill=False)
    bad = (k.sum(2, keepdim=True) > n).expand_as(k)
    return ungrouped(bad, kept.shape, kind)


def conforms(kept: torch.Tensor, n: int, m: int, kind: str) -> bool:
    """True when every group of ``m`` consecutive inputs keeps at most ``n`` weights."""
    return bool((grouped(kept.cpu(), m, kind, fill=False).sum(2) <= n).all())
