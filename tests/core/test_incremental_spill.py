"""Cut values kept in host memory (pruneviz.core.spill): the seam a GPU evaluation uses, driven on
the CPU by setting a host budget on purpose. The budgets hold, the cuts that do not fit the
device budget are kept on the host instead of dropped, evaluations start from them, and every
result equals a full pass exactly."""

from __future__ import annotations

import pytest
import torch

from pruneviz.core import spill
from pruneviz.core.evaluate import ActivationCache

from . import zoo
from .test_incremental import _session, check_exact

RESNET = zoo.Family("resnet18", lambda: zoo.resnet18(4), (3, 16, 16), "layer4.1.conv1", (0,))


def test_the_host_budget_is_automatic_on_a_gpu_only_and_counts_what_is_held(monkeypatch):
    cache = ActivationCache(budget_bytes=1000)
    assert spill.host_budget(cache, torch.device("cpu")) == 0  # the host is the device
    monkeypatch.setattr(spill, "host_available", lambda: 10_000)
    assert spill.host_budget(cache, torch.device("cuda")) == 4000  # 4 x the device budget
    monkeypatch.setattr(spill, "host_available", lambda: 6000)
    assert spill.host_budget(cache, torch.device("cuda")) == 3000  # half the host memory
    cache.host_budget_bytes = 0
    assert spill.host_budget(cache, torch.device("cuda")) == 0  # never
    cache.host_budget_bytes = 500
    cache.points[3] = spill.Spilled([(torch.zeros(25),)])  # 100 bytes held on the host
    cache.points[5] = [(torch.zeros(50),)]  # 200 on the device
    assert spill.host_budget(cache, torch.device("cpu")) == 400
    assert (cache.nbytes, spill.host_nbytes(cache)) == (200, 100)


def test_stash_copies_with_the_same_layout_and_fetch_on_the_cpu_is_the_value_itself():
    t = torch.randn(3, 4).t()  # a transposed view: another layout can round differently
    (s, flag) = spill.stash((t, 7))
    assert s is not t and torch.equal(s, t) and s.stride() == t.stride() and flag == 7
    t.add_(1)  # a write after the cut does not reach what was stashed
    assert not torch.equal(s, t)
    vals, fresh = spill.fetch((s,), torch.device("cpu"))
    assert vals[0] is s and not fresh


def _spilling_session(device_budget: int, host_budget: int):
    s = _session(RESNET, n=48, batch=16)
    s.set_cache_budget(device_budget)
    s.cache.host_budget_bytes = host_budget
    s.evaluate()
    return s


@pytest.mark.slow
def test_cuts_that_do_not_fit_the_device_budget_are_kept_on_the_host_and_stay_exact():
    s = _spilling_session(1, 64 * 2**20)  # nothing fits on the device, everything on the host
    spilled = [k for k, ts in s.cache.points.items() if isinstance(ts, spill.Spilled)]
    assert spilled and len(spilled) == len(s.cache.points)
    assert s.cache.nbytes == 0 and 0 < spill.host_nbytes(s.cache) <= 64 * 2**20
    assert "in host memory" in s.evaluation.cache_info()
    s.prune_neurons("layer4.1.conv1", [1, 5])
    late = check_exact(s)
    assert late > 0 and isinstance(s.cache.points.get(late), spill.Spilled)
    s.prune_weights("layer2.0.conv1", torch.arange(0, 100, 3))
    early = check_exact(s)
    s.undo()
    check_exact(s)
    assert late > early > 0


@pytest.mark.slow
def test_the_host_budget_holds_and_zero_spills_nothing():
    s = _spilling_session(1, 0)
    assert not s.cache.points
    one = spill.host_nbytes(_spilling_session(1, 64 * 2**20).cache) // 3  # about a third of what all cuts need
    s = _spilling_session(1, one)
    assert s.cache.points and spill.host_nbytes(s.cache) <= one
    s.prune_weights("layer4.1.conv2", torch.arange(0, 100, 3))
    check_exact(s)
