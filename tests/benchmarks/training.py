"""Training benchmarks: fine-tuning against a plain torch loop, undo memory, compensation cost.

    python tests/benchmarks/training.py [--quick] [--json] [--device cpu|cuda]

(also run by run.py). ``finetune_overhead_ratio``: one epoch of ``Session.finetune`` over a plain
torch loop with the same model, data, optimizer (Adam) and batch size that multiplies the
parameters by fixed masks after each step; the two alternate, and the ratio is of medians.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import run as bench  # noqa: E402
from pruneviz.core.data import EvalData  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402
from pruneviz.core.training import complete  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _plain_epoch(model, masks, x, y, opt, batch: int, gen) -> None:
    model.train()
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    for i in range(0, len(x), batch):
        idx = perm[i : i + batch]
        if len(idx) < 2:
            continue
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, m in masks:
                p.mul_(m)
        float(loss.detach())  # the loop reads its loss, as any training loop that reports it does
    model.eval()


def finetune_overhead(quick: bool, device: str, smoke: bool = False) -> dict:
    n = 64 if smoke else (512 if quick else 2048)
    x, y = bench.synthetic(n, seed=5)
    s = bench.session_for(bench.bench_cnn(4 if smoke else (12 if quick else 16)), x, y, device)
    s.data = None  # no held-out evaluation at epoch ends: the plain loop has none either
    s.prune(0.5)
    train = EvalData(x=x, y=y, spec="bench-train")
    batch = 64
    plain_model = copy.deepcopy(s.model)
    named = dict(plain_model.named_parameters())
    masks = []
    for layer in s.layers:
        masks.append((named[layer.weight], s.mask(layer.name).to(device).float()))
    opt = torch.optim.Adam(plain_model.parameters(), lr=1e-3)
    xd, yd = x.to(device), y.to(device)
    gen = torch.Generator().manual_seed(0)
    history_before = s.memory()["history"]
    ours, plain = [], []
    reps = 1 if smoke else (2 if quick else 5)
    # warm-up both (allocator, cudnn)
    _plain_epoch(plain_model, masks, xd, yd, opt, batch, gen)
    complete(s.finetune(1, lr=1e-3, data=train, batch_size=batch))
    first = s.memory()["history"] - history_before
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        _plain_epoch(plain_model, masks, xd, yd, opt, batch, gen)
        _sync(device)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        complete(s.finetune(1, lr=1e-3, data=train, batch_size=batch))
        _sync(device)
        ours.append(time.perf_counter() - t0)
    trained = sum(p.numel() for p in s.model.parameters())
    return {
        "finetune_epoch_ms": statistics.median(ours) * 1000,
        "finetune_epoch_ms_min": min(ours) * 1000,
        "finetune_epoch_ms_max": max(ours) * 1000,
        "plain_masked_epoch_ms": statistics.median(plain) * 1000,
        "plain_masked_epoch_ms_min": min(plain) * 1000,
        "plain_masked_epoch_ms_max": max(plain) * 1000,
        "finetune_overhead_ratio": statistics.median(ours) / statistics.median(plain),
        "finetune_undo_bytes_per_param": first / trained,
    }


def compensation(quick: bool, device: str, smoke: bool = False) -> dict:
    reps = 1 if smoke else (2 if quick else 7)
    plain_t, comp_t = [], []
    for _ in range(reps):
        a = Session.open("demo:mlp", data="demo:digits", device=device)
        b = Session.open("demo:mlp", data="demo:digits", device=device)
        t0 = time.perf_counter()
        a.prune(0.7)
        _sync(device)
        plain_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b.prune(0.7, compensate=True)
        _sync(device)
        comp_t.append(time.perf_counter() - t0)
    acc_plain, acc_comp = a.evaluate().accuracy, b.evaluate().accuracy
    return {
        "prune_70_ms": statistics.median(plain_t) * 1000,
        "compensated_prune_70_ms": statistics.median(comp_t) * 1000,
        "compensate_vs_prune_ratio": statistics.median(comp_t) / statistics.median(plain_t),
        "compensate_accuracy_plain_70": acc_plain,
        "compensate_accuracy_70": acc_comp,
        "compensate_accuracy_gain_pp": 100 * (acc_comp - acc_plain),
    }


def recovery(device: str) -> dict:
    """The README's figures on demo:mlp: 90 % per-layer magnitude + 3 epochs; gradual to 90 %."""
    s = Session.open("demo:mlp", data="demo:digits", device=device)
    s.prune(0.9)
    pruned = s.evaluate().accuracy
    tuned = complete(s.finetune(3)).curve[-1]["accuracy"]
    g = Session.open("demo:mlp", data="demo:digits", device=device)
    gradual = complete(g.train("during", 0.9, 3))
    return {
        "demo_mlp_90_pruned_accuracy": pruned,
        "demo_mlp_90_finetune3_accuracy": tuned,
        "demo_mlp_gradual90_accuracy": gradual.curve[-1]["accuracy"],
        "demo_mlp_gradual90_sparsity": g.sparsity(),
    }


GOALS = {"finetune_overhead_ratio": ("<=", 1.15), "finetune_undo_bytes_per_param": ("<=", 4.5)}


def figures(quick: bool, device: str, smoke: bool = False) -> dict:
    out = finetune_overhead(quick, device, smoke)
    out.update(compensation(quick, device, smoke))
    if not smoke:
        out.update(recovery(device))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    device = argv[argv.index("--device") + 1] if "--device" in argv else "cpu"
    results = figures("--quick" in argv, device)
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if "--json" in argv:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
