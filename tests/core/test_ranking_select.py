"""kth_smallest equals torch.kthvalue exactly (ties, infinities, every position), and lowest()
over large inputs equals a plain kthvalue mask."""

from __future__ import annotations

import pytest
import torch

from pruneviz.core import ranking as rk


@pytest.mark.parametrize("seed", range(4))
def test_kth_smallest_equals_kthvalue(seed):
    g = torch.Generator().manual_seed(seed)
    n = 8 * rk.SAMPLE + 12345
    s = torch.randn(n, generator=g).abs()
    s[:5000] = 0.25  # a block of ties
    s[5000:5010] = float("inf")
    s[5010:5020] = -float("inf")
    for k in (1, 7, n // 3, n // 2, n - 11, n - 1, n, int(torch.randint(1, n, (1,), generator=g))):
        assert rk.kth_smallest(s, k) == torch.kthvalue(s, k).values, k


def test_kth_smallest_falls_back_when_the_bracket_misses(monkeypatch):
    s = torch.cat([torch.zeros(9 * rk.SAMPLE), torch.arange(10.0)])  # the sample sees only zeros
    k = s.numel() - 3
    assert rk.kth_smallest(s, k) == torch.kthvalue(s, k).values == 6.0


def test_lowest_on_large_inputs_is_the_kthvalue_mask():
    g = torch.Generator().manual_seed(9)
    s = torch.rand(3 * rk.SELECT_THRESHOLD, generator=g)
    kept = torch.rand(s.shape, generator=g) > 0.2
    k = rk.count(kept) // 2
    out = rk.lowest(s, kept, k)
    masked = torch.where(kept, s, torch.full_like(s, float("inf")))
    thr = torch.kthvalue(masked, k).values
    assert rk.count(masked == thr) == 1  # no tie at the threshold in this draw: one exact answer
    assert torch.equal(out, masked <= thr) and rk.count(out) == k
