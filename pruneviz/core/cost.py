"""What a model costs to run: multiply-accumulates (Torch-Pruning's counter) and measured latency.

* ``macs_before``: the unpruned model; ``macs_masked``: the masked model if its zeros were skipped
  (each Linear/Conv layer's MACs times its kept fraction of weights; masked models run dense, so
  this is what a sparse kernel could save, not what PyTorch spends); ``macs_shrunk``: the written
  shrunk model, counted again.
* ``latency_ms``: median (with min and max) of timed forward passes of the original and the
  shrunk model on the session's device, same batch, after a warm-up.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]] | None:
    """Total MACs of one forward pass on ``example`` and each module's share; None when the
    counter cannot run the model (opaque programs, exotic inputs)."""
    import contextlib
    import io

    try:
        import torch_pruning as tp

        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            total, _, per, _ = tp.utils.count_ops_and_params(model, example, layer_wise=True)
    except Exception:
        return None
    names = {m: n for n, m in model.named_modules()}
    return int(total), {names[m]: int(v) for m, v in per.items() if m in names and v}


def original_macs(session) -> tuple[int, dict[str, int]] | None:
    """MACs of the unpruned model for one sample and each module's share, or None (no example
    input, or the counter cannot run the model). Runs the model once: slow on a big model, and
    fixed for a session, so the app counts it once in a worker and keeps it."""
    example = session.example_input()
    if example is None:
        return None
    example = example[:1].cpu()
    with session.lock:
        model = session.original_model().cpu().eval()
    return count_macs(model, example)


def masked_macs(session, total: int, per: dict[str, int]) -> int:
    """MACs of the masked model from ``original_macs``'s count: each layer's MACs times its kept
    fraction (no model run: cheap enough after every edit)."""
    saved = sum(per.get(layer.name, 0) * session.sparsity(layer.name) for layer in session.layers)
    return int(round(total - saved))


def session_macs(session, shrunk: nn.Module | None = None) -> dict:
    """MACs of the original, the masked and (when given) the shrunk model, per one sample."""
    counted = original_macs(session)
    if counted is None:
        return {}
    total, per = counted
    example = session.example_input()[:1].cpu()
    out = {"macs_before": total, "macs_masked": masked_macs(session, total, per)}
    if shrunk is not None:
        again = count_macs(shrunk.cpu().eval(), example)
        if again is not None:
            out["macs_shrunk"] = again[0]
    return out


def latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 15, warmup: int = 2, budget_s: float = 0.5) -> dict:
    """Median, min and max milliseconds of ``model(x)`` (inference mode, device synchronised):
    ``repeats`` timed runs, fewer (at least 3) when they would take more than ``budget_s``; the
    warm-up stops at one run when a run alone takes longer than the budget."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times: list[float] = []
    began = time.perf_counter()
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i < warmup and time.perf_counter() - began > budget_s:
                warmup = i + 1  # slow model: one warm-up run is enough
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
                if len(times) >= 3 and time.perf_counter() - began > budget_s:
                    break
    times.sort()
    return {"median": times[len(times) // 2], "min": times[0], "max": times[-1]}


def compare_latency(session, shrunk: nn.Module, batch: int = 32) -> dict:
    """Latency of the original and the shrunk model on the session's device, same inputs."""
    example = session.example_input()
    if example is None:
        return {}
    original = session.original_model().to(session.device).eval()
    shrunk = shrunk.to(session.device).eval()
    # a batch whose forward takes about a tenth of a second: a ResNet-50 at 224×224 on a loaded
    # CPU takes seconds per sample, and 32 of them, ten times over, took minutes of an export
    one = example[:1].to(session.device)
    with torch.inference_mode():
        start = time.perf_counter()
        original(one)
        probe = time.perf_counter() - start
    batch = max(1, min(batch, int(0.1 / max(probe, 1e-6))))
    x = example[:1].repeat(batch, *([1] * (example.dim() - 1))).to(session.device)
    before, after = latency_ms(original, x), latency_ms(shrunk, x)
    shrunk.cpu()
    return {
        "device": session.device.type,
        "batch": batch,
        "original_ms": before,
        "shrunk_ms": after,
        "speedup": before["median"] / after["median"] if after["median"] > 0 else None,
    }
