"""Rank statistics: the one copy of Spearman's rho (knockout faithfulness, lessons, the app).

A constant side has no ranking, so its correlation is not defined: :func:`spearman` returns
``None`` for it (shown as "n/a"); a caller that needs a number says what it makes of that.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ranks", "spearman", "top_overlap"]


def _tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().double().reshape(-1)
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1)


def ranks(x) -> torch.Tensor:
    """Ranks 1..n of ``x`` (a tensor, an array or a list), ties given their average rank."""
    x = _tensor(x)
    order = torch.argsort(x, stable=True)
    r = torch.empty_like(x)
    r[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    values, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, r)
    counts = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(r))
    return (sums / counts)[inverse]


def spearman(a, b) -> float | None:
    """Spearman's rank correlation of ``a`` and ``b`` (ties averaged); None when either side is
    constant (or empty), where the correlation is not defined."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) == 0:
        return None
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / den if den > 0 else None


def top_overlap(a, b, k: int) -> float:
    """Fraction of the ``k`` highest of ``a`` that are among the ``k`` highest of ``b``."""
    a, b = _tensor(a), _tensor(b)
    k = min(k, len(a))
    ta = set(torch.topk(a, k).indices.tolist())
    tb = set(torch.topk(b, k).indices.tolist())
    return len(ta & tb) / k if k else 0.0
