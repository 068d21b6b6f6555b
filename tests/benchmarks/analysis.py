"""Benchmarks of the analyses (issue "Decide what to prune"), registered in run.py.

- ``sensitivity_incremental_ratio``: the default sensitivity analysis of demo:cnn (5 layers × 9
  levels) with the activation cache / the same analysis with full evaluations (cache budget 0);
- ``knockout_ms_per_neuron_mlp``: the knockout map of demo:mlp layer 0 (128 neurons), per neuron;
- ``ray_local_overhead_ratio``: that sensitivity analysis on a local 2-CPU Ray / the local worker
  (Ray started beforehand, its start reported as ``ray_init_s``). On one 2-core machine Ray only
  adds serialisation and scheduling; it pays off when the tasks go to more machines.
"""

from __future__ import annotations

import statistics
import time

import torch

from pruneviz.core.analysis import collect
from pruneviz.core.session import Session


def _times(fn, repeat: int) -> tuple[list[float], object]:
    out, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        out.append(time.perf_counter() - t0)
    return out, value


def _spread(ts: list[float]) -> str:
    return f"{statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f})"


def analysis_figures(quick: bool, device: str = "cpu", ray: bool = True) -> dict:
    repeat = 2 if quick else 7  # quick: two interleaved pairs (the ratio wanders more than with 7; the full pass's is the figure)
    cnn = Session.open("demo:cnn", data="demo:digits", device=device)
    full = Session.open("demo:cnn", data="demo:digits", device=device)
    full.set_cache_budget(0)
    collect(cnn.sensitivity()), collect(full.sensitivity())  # warm-up
    t_cached, t_full = [], []
    for _ in range(repeat):  # interleaved: load from other processes hits both alike
        t, r_cached = _times(lambda: collect(cnn.sensitivity()), 1)
        t_cached += t
        t, r_full = _times(lambda: collect(full.sensitivity()), 1)
        t_full += t
    out = {
        "sensitivity_incremental_ratio": statistics.median(t_cached) / statistics.median(t_full),
        "sensitivity_incremental_ratio_of_mins": min(t_cached) / min(t_full),
        "sensitivity_cached_s": _spread(t_cached),
        "sensitivity_full_s": _spread(t_full),
        "sensitivity_incremental_exact": r_cached == r_full,
    }
    mlp = Session.open("demo:mlp", data="demo:digits", device=device)
    collect(mlp.knockout("0", methods=[]))
    ko_repeat = 2 if quick else repeat  # a knockout map is 128 evaluations: two are a median already
    t_ko, res = _times(lambda: collect(mlp.knockout("0", methods=[])), ko_repeat)
    out["knockout_ms_per_neuron_mlp"] = statistics.median(t_ko) * 1000 / len(res["neurons"])
    out["knockout_ms_per_neuron_mlp_spread"] = f"min {min(t_ko) * 1000 / 128:.2f}, max {max(t_ko) * 1000 / 128:.2f}"
    if quick:  # the one-thread figure is the full pass's
        out["knockout_ms_per_neuron_mlp_1thread"] = "not run in --quick"
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a 64-128-64-10 MLP is too small for intra-op threads to help
        try:
            t_ko1, _ = _times(lambda: collect(mlp.knockout("0", methods=[])), ko_repeat)
        finally:
            torch.set_num_threads(threads)
        out["knockout_ms_per_neuron_mlp_1thread"] = statistics.median(t_ko1) * 1000 / 128
    out["ray_local_overhead_ratio"] = None
    if ray and quick:
        out["ray_local_overhead_ratio"] = "not run in --quick"  # starting Ray and its workers alone takes tens of seconds
    elif ray:
        try:
            import ray as ray_mod
        except ImportError:
            out["ray_local_overhead_ratio"] = "ray not installed"
            return out
        t0 = time.perf_counter()
        ray_mod.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        out["ray_init_s"] = time.perf_counter() - t0
        try:
            collect(cnn.sensitivity(ray=True))  # warm-up: worker processes import torch
            t_ray, r_ray = _times(lambda: collect(cnn.sensitivity(ray=True)), repeat)
        finally:
            ray_mod.shutdown()
        out["ray_local_overhead_ratio"] = statistics.median(t_ray) / statistics.median(t_cached)
        out["sensitivity_ray_s"] = _spread(t_ray)
        out["ray_equals_local"] = r_ray == r_cached
    return out
