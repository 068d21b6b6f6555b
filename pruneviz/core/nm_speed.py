"""What 2:4 sparsity buys on the hardware: ``torch.sparse.to_sparse_semi_structured`` against the
dense matmul, per conformant Linear layer, on a CUDA device (NVIDIA's sparse tensor cores run
2:4 only, in half precision). Anywhere else the report says "not measured".

Timing: CUDA events around ``REPEAT`` calls after a warm-up, median of ``ROUNDS`` rounds, for a
batch of ``TOKENS`` inputs in float16 (the sparse kernels' type; both sides use it).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn as nn

from . import nm

TOKENS = 4096
REPEAT = 20
ROUNDS = 5


def _time(fn, repeat: int = REPEAT, rounds: int = ROUNDS) -> float:
    """Median milliseconds per call of ``fn`` on the current CUDA stream."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeat):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / repeat)
    return statistics.median(times)


def measure(session, tokens: int = TOKENS) -> dict:
    """``{"measured": bool, "reason"?, "device"?, "layers": {name: {"dense_ms", "sparse_ms",
    "speedup"} or {"skipped": why}}}`` for the Linear layers whose kept weights follow 2:4."""
    if session.device.type != "cuda" or not torch.cuda.is_available():
        return {"measured": False, "reason": "not measured: the 2:4 speed-up needs a CUDA device (sparse tensor cores)", "layers": {}}
    try:
        from torch.sparse import to_sparse_semi_structured
    except ImportError:  # pragma: no cover - old torch
        return {"measured": False, "reason": "not measured: this torch has no to_sparse_semi_structured", "layers": {}}
    modules = dict(session.model.named_modules())
    out: dict = {"measured": True, "device": torch.cuda.get_device_name(session.device), "tokens": tokens, "layers": {}}
    for layer in session.layers:
        if not isinstance(modules.get(layer.name), nn.Linear):
            continue
        w = session.weight(layer.name)
        if not bool((w != 0).all()) and nm.conforms(w != 0, 2, 4, layer.kind):
            out["layers"][layer.name] = _one(w, tokens, to_sparse_semi_structured)
    if not out["layers"]:
        out["reason"] = "no Linear layer follows 2:4"
    return out


def _one(w: torch.Tensor, tokens: int, to_sparse) -> dict:
    dense = w.detach().to("cuda", torch.float16).contiguous()
    x = torch.randn(tokens, dense.shape[1], device="cuda", dtype=torch.float16)
    try:
        sparse = to_sparse(dense)
        with torch.inference_mode():
            got = torch.nn.functional.linear(x, sparse)
    except (RuntimeError, NotImplementedError, ValueError) as exc:  # shape or GPU not supported
        return {"skipped": str(exc).splitlines()[0][:200]}
    with torch.inference_mode():
        want = torch.nn.functional.linear(x, dense)
        dense_ms = _time(lambda: torch.nn.functional.linear(x, dense))
        sparse_ms = _time(lambda: torch.nn.functional.linear(x, sparse))
    err = float((got.float() - want.float()).abs().max())
    return {"shape": list(dense.shape), "dense_ms": dense_ms, "sparse_ms": sparse_ms, "speedup": dense_ms / sparse_ms if sparse_ms > 0 else None, "max_abs_diff": err}
