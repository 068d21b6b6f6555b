"""Cached cut values held in host memory when the evaluation runs on a GPU.

The activation cache's byte budget is device memory. When an evaluation on a GPU collects a cut
that does not fit what that budget has left, the cut can still be kept in host memory (pinned,
so copying it back is asynchronous) within a second budget: :func:`host_budget`. A cut kept
there is a :class:`Spilled` list of per-batch values; :func:`stash` copies a batch's values
to the host as they are collected, and :func:`fetch` copies them back to the device before the
graph runs from them. A copy to the host and back is the same bits, so an evaluation from a
spilled cut still equals a full pass exactly.

On the CPU the host is the device: nothing is spilled unless a budget is set on purpose (which
is how the tests drive this seam without a GPU: :func:`stash` then still makes a copy).
"""

from __future__ import annotations

import os

import torch

#: the automatic host budget is at most this many times the device budget
HOST_PER_DEVICE = 4
#: ... and at most this fraction of the host memory available when the evaluation starts
HOST_FRACTION = 0.5


class Spilled(list):
    """A cut's per-batch values (tuples of tensors) held in host memory."""


def host_available() -> int:
    """Bytes of host memory available now (0 when the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 0


def host_budget(cache, device: torch.device) -> int:
    """Bytes of cut values an evaluation on ``device`` may keep in host memory, beyond what the
    cache holds there already: the cache's ``host_budget_bytes`` when set (0: never spill);
    else on a GPU the smaller of :data:`HOST_PER_DEVICE` times the device budget and
    :data:`HOST_FRACTION` of the host memory available; else (the CPU) 0."""
    chosen = getattr(cache, "host_budget_bytes", None)
    if chosen is None:
        if device.type == "cpu" or cache.budget_bytes <= 0:
            return 0
        chosen = min(HOST_PER_DEVICE * cache.budget_bytes, int(HOST_FRACTION * host_available()))
    return max(0, chosen - host_nbytes(cache))


def host_nbytes(cache) -> int:
    """Bytes of the cache's cuts held in host memory."""
    with cache.lock:
        return sum(_nbytes(ts) for ts in cache.points.values() if isinstance(ts, Spilled))


def stash(values: tuple) -> tuple:
    """A batch's values at a cut, copied to host memory (pinned when a GPU can read it back
    asynchronously); always a copy, so later in-place writes on the device cannot reach it."""
    pin = torch.cuda.is_available()
    return tuple(_to_host(v, pin) if isinstance(v, torch.Tensor) else v for v in values)


def fetch(values: tuple, device: torch.device) -> tuple[tuple, bool]:
    """A spilled batch's values back on ``device``; and whether they are fresh copies (a node
    may then write them in place without reaching the cache)."""
    if device.type == "cpu":
        return values, False
    return tuple(v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for v in values), True


def _to_host(v: torch.Tensor, pin: bool) -> torch.Tensor:
    if v.device.type == "cpu":
        return v.clone()
    # the same strides (an operation after the cut may take another kernel path for another
    # layout, and round differently)
    out = torch.empty_like(v, device="cpu", pin_memory=pin)
    out.copy_(v)  # (blocking: the values are complete before the cache commits them)
    return out


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return sum(_nbytes(v) for v in value) if isinstance(value, (tuple, list)) else 0
