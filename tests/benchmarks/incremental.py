"""Benchmark of incremental evaluation on traced graphs (issue 19), registered in run.py.

Each ratio is an edit's exact re-evaluation (from the cached cut before the edited layer) over a
full evaluation of the same model and data, the two timed side by side after every edit; the
median over the edits is printed with its spread (min, max).

- ``incremental_resnet_last_stage_ratio``: the zoo's ResNet-18 shape (torchvision's forward, not a
  Sequential), 32×32 inputs, 2,000 samples; weights of the first conv of the last stage (layer4);
- ``incremental_resnet_first_stage_ratio``: the same for the first stage (layer1): about 1, reported;
- ``incremental_vit_last_block_ratio``: a 6-block ViT shape (dim 64, 65 tokens), the last block's MLP;
- ``incremental_cache_mb``: what the activation cache holds after the ResNet edits, and
  ``incremental_cache_budget_mb`` the budget it stays within;
- ``incremental_graph_exact``: every incremental result equalled its full evaluation (correct,
  loss, per-class); ``…_from_a_cut``: the fraction of edits that started after the input (the
  first edit of the first stage may find its cut was not kept: the budget went to later ones).

- ``window_click_to_exact_ms_resnet`` (``--window``): through the real window, prune a neuron of the
  ResNet's last stage → its exact accuracy painted; median of 10 after a warm-up, with min and max;
  ``…_cpu_ms_resnet``: the process's CPU time per click, all threads (a loaded machine stretches
  the wall clock, not this); ``window_click_cache_mb`` and ``…_host_mb``: what the cache held
  on the device and (a GPU run past the budget, :mod:`pruneviz.core.spill`) in host memory.

``--width`` sets the ResNet's first-stage channels (64 is ResNet-18; the CPU default is 16, so
one full pass takes seconds, not a minute). ``--quick``: small sizes, a few seconds in all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pruneviz.core import spill  # noqa: E402
from pruneviz.core.data import EvalData  # noqa: E402
from pruneviz.core.model_io import LoadedModel  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402
from tests.core import zoo  # noqa: E402

GOALS = {
    "incremental_resnet_last_stage_ratio": ("<=", 0.35),
    "incremental_vit_last_block_ratio": ("<=", 0.35),
    "incremental_graph_exact": ("==", True),
}


def _session(model, n: int, size: int, device: str, batch: int = 256) -> Session:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, n, 256)])
    # labels the model gets about half right: figures that edits move
    y = torch.where(torch.rand(n, generator=g) < 0.5, pred, torch.randint(0, 10, (n,), generator=g))
    return Session(LoadedModel(model, "bench", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="bench"), device=device, batch_size=batch)


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(u == v or (u != u and v != v) for u, v in zip(a, b))  # NaN: a class with no samples


def _ms(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def edit_ratio(s: Session, layer: str, reps: int) -> dict:
    """``reps`` weight edits of ``layer``: each one's incremental evaluation and a full evaluation,
    timed side by side. Returns the median ratio with its spread, the times, and exactness."""
    s.evaluate()  # traces the graph and fills the cache
    numel = s.layer(layer).numel
    ratios, inc_ms, full_ms, starts, exact = [], [], [], [], True
    for i in range(reps):
        s.prune_weights(layer, torch.arange(i, numel, 97))
        t_inc, inc = _ms(s.evaluate)
        t_full, full = _ms(lambda: s.evaluate(incremental=False))
        exact &= (inc.correct, inc.loss) == (full.correct, full.loss) and _same(inc.per_class, full.per_class)
        starts.append(inc.start)
        ratios.append(t_inc / t_full)
        inc_ms.append(t_inc)
        full_ms.append(t_full)
    return {"ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "inc_ms": statistics.median(inc_ms), "full_ms": statistics.median(full_ms), "exact": exact, "from_cut": sum(st > 0 for st in starts) / reps}


def figures(quick: bool, device: str = "cpu", width: int | None = None, reps: int | None = None) -> dict:
    if width is None:
        width = 8 if quick else (64 if device == "cuda" else 16)
    n, size, default_reps = (256, 16, 3) if quick else (2000, 32, 7)
    reps = reps or default_reps
    out: dict = {"incremental_resnet_width": width, "incremental_samples": n}
    s = _session(zoo.resnet18(width), n, size, device)
    last = edit_ratio(s, "layer4.0.conv1", reps)
    out["incremental_cache_mb"] = s.cache.nbytes / 2**20
    out["incremental_cache_budget_mb"] = s.cache.budget_bytes / 2**20
    first = edit_ratio(s, "layer1.0.conv1", max(2, reps // 2))
    vit = edit_ratio(_session(zoo.vit6(32 if quick else 64, size), n, size, device), "blocks.5.fc1", reps)
    for key, fig in (("incremental_resnet_last_stage", last), ("incremental_resnet_first_stage", first), ("incremental_vit_last_block", vit)):
        out[f"{key}_ratio"] = fig["ratio"]
        out[f"{key}_ratio_min"], out[f"{key}_ratio_max"] = fig["min"], fig["max"]
        out[f"{key}_ms"], out[f"{key}_full_ms"] = fig["inc_ms"], fig["full_ms"]
        out[f"{key}_from_a_cut"] = fig["from_cut"]  # fraction of the edits that started after the input
    out["incremental_graph_exact"] = last["exact"] and first["exact"] and vit["exact"]
    return out


def window_click_to_exact(width: int = 16, n: int = 2000, size: int = 32, repeat: int = 10, device: str = "cpu") -> dict:
    """``window_click_to_exact_ms_resnet``: through the real window (everything connected), select
    a neuron of the last stage's first conv, prune it with the window's own action, and wait for
    the exact accuracy of that step to be painted; undo, and again. Median of ``repeat`` after
    two warm-up clicks, with min and max."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from window import _close, _window, spread

    s = _session(zoo.resnet18(width), n, size, device)
    app, w = _window(s)

    def wait(cond, timeout_ms=120_000):
        loop, poll, clock = QEventLoop(), QTimer(), QElapsedTimer()
        poll.setInterval(0)
        poll.timeout.connect(lambda: loop.quit() if cond() else None)
        poll.start()
        clock.start()
        while not cond() and clock.elapsed() < timeout_ms:
            loop.exec()
        poll.stop()
        if not cond():
            raise RuntimeError("no exact result within the timeout")

    name = "layer4.0.conv1"
    times, cpu, starts = [], [], []
    try:
        wait(lambda: w.acc.current is not None and w.acc.baseline is not None and not w.runner.busy)
        w.tree.select(name)
        app.processEvents()
        rows = s.layer(name).out_channels
        for i in range(repeat + 2):
            done: list = []
            on_done = lambda req, r: done.append((req.step, r.start))  # noqa: E731
            w.runner.finished.connect(on_done)
            w.editing.select_neurons([i % rows])
            app.processEvents()
            t0, c0 = time.perf_counter(), time.process_time()
            w.actions["prune"].trigger()
            target = s.history.index
            wait(lambda: any(step == target for step, _ in done))
            w.grab()
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            starts.append(next(start for step, start in done if step == target))
            w.runner.finished.disconnect(on_done)
            w.actions["undo"].trigger()
            wait(lambda: not w.runner.busy)
    finally:
        _close(w)
    out = spread("window_click_to_exact_ms_resnet", times[2:])
    # CPU time of the whole process (every thread) per click: what the click costs when the
    # machine is shared and the wall-clock figure is not the app's
    out.update(spread("window_click_to_exact_cpu_ms_resnet", cpu[2:]))
    out["window_click_to_exact_started_from_a_cut"] = all(st > 0 for st in starts[2:])
    # what the activation cache held: on the device, and (on a GPU) cuts kept in host memory
    out["window_click_cache_mb"] = s.cache.nbytes / 2**20
    out["window_click_cache_host_mb"] = spill.host_nbytes(s.cache) / 2**20
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None, help="edits per ratio (default 7; --quick 3)")
    ap.add_argument("--window", action="store_true", help="only the click-to-exact figure through the real window")
    args = ap.parse_args(argv)
    if args.window:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        res = window_click_to_exact(args.width or 16, 256 if args.quick else 2000, 16 if args.quick else 32, 10, args.device)
    else:
        res = figures(args.quick, args.device, args.width, args.reps)
    for key, value in res.items():
        if key.endswith(("_min", "_max")):
            continue
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        if f"{key}_min" in res:
            shown += f" (min {res[key + '_min']:.3f}, max {res[key + '_max']:.3f})"
        goal = GOALS.get(key)
        if goal:
            op, target = goal
            ok = value <= target if op == "<=" else value == target
            shown += f"  goal {op} {target}: {'met' if ok else 'MISSED'}"
        print(f"{key:44s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
