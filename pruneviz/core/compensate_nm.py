"""SparseGPT choosing N:M masks, as its paper does (Frantar & Alistarh 2023, section 3.4;
IST-DASLab/sparsegpt ``fasterprune(prunen, prunem)``): columns are eliminated left to right, and
at the first column of each group of M the group's mask is chosen from the *current* (already
updated) weights by the OBS error ``w² / [H⁻¹]ᵢᵢ²``: the N largest of each row stay.

Kept apart from :mod:`pruneviz.core.compensate_solve` (whose unstructured solver picks a count per
block instead). The groups are those of :mod:`pruneviz.core.nm`: a convolution's columns, stored
in (input channel, kernel position) order, are visited kernel position by kernel position so that
each group's M input channels are adjacent; the result is put back in the stored order.
"""

from __future__ import annotations

import torch

from .compensate_solve import BLOCK, DAMP, damped, obs_column


def _order(cols: int, positions: int) -> torch.Tensor:
    """Column permutation: new column ``p·C + c`` is stored column ``c·K + p`` (C channels, K positions)."""
    channels = cols // positions
    return torch.arange(cols).view(channels, positions).t().reshape(-1)


def _groups(cols: int, positions: int, m: int) -> list[tuple[int, int]]:
    """The N:M groups as column ranges of the permuted order; none crosses a kernel position."""
    channels = cols // positions
    return [(p * channels + a, p * channels + min(a + m, channels)) for p in range(positions) for a in range(0, channels, m)]


def sparsegpt_nm(w: torch.Tensor, h: torch.Tensor, kept: torch.Tensor, n: int, m: int, positions: int = 1, damp: float = DAMP, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT with an N:M mask for ``w`` [G, r, c] and ``h`` [G, c, c] (columns stored as
    (channel, kernel position), ``positions`` per channel). Entries already pruned stay pruned.
    Returns (float64 weights, kept mask), both [G, r, c]."""
    G, r, c = w.shape
    perm = _order(c, positions).to(w.device)
    back = torch.argsort(perm)
    w = w.to(torch.float64)[:, :, perm].clone()
    kept = kept[:, :, perm]
    h = h[:, perm][:, :, perm]
    dead = h.diagonal(dim1=1, dim2=2) == 0
    w.masked_fill_(dead[:, None, :], 0)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(damped(h, damp))), upper=True)
    keep = kept.clone()
    spans: list[list[tuple[int, int]]] = [[]]  # column blocks made of whole groups
    for g in _groups(c, positions, m):
        if spans[-1] and g[1] - spans[-1][0][0] > block:
            spans.append([])
        spans[-1].append(g)
    for groups in spans:
        i1, i2 = groups[0][0], groups[-1][1]
        w1 = w[:, :, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[:, i1:i2, i1:i2]
        d = hinv1.diagonal(dim1=1, dim2=2)
        cand = kept[:, :, i1:i2]
        prune1 = ~cand
        ends = {a - i1: b - i1 for a, b in groups}
        for i in range(i2 - i1):
            if i in ends:  # the group's mask, from the weights as they are now
                j = ends[i]
                sal = (w1[:, :, i:j] ** 2 / d[:, None, i:j] ** 2).masked_fill(~cand[:, :, i:j], -float("inf"))
                order = torch.argsort(-sal, dim=2, stable=True)
                rank = torch.empty_like(order)
                rank.scatter_(2, order, torch.arange(j - i, device=w.device).expand_as(order).contiguous())
                prune1[:, :, i:j] |= rank >= n
            obs_column(w1, hinv1, prune1, q1, err1, i)
        w[:, :, i1:i2] = q1
        w[:, :, i2:] -= torch.bmm(err1, hinv[:, i1:i2, i2:])
        keep[:, :, i1:i2] = ~prune1
    return w[:, :, back], keep[:, :, back]
