"""Benchmark of the allocator thresholds (:mod:`pruneviz.core.allocator`), registered in run.py.

``allocator_eval_ratio``: a demo:cnn evaluation with the activation cache filled (as in the app
after its first evaluation), full pass and an edit plus its undo, in a process that set the
thresholds / in one that kept glibc's defaults (``PRUNEVIZ_MALLOC=system``). The two kinds of
process alternate, three of each (one with --quick); every figure is the median over the processes' medians. The
thresholds are per process, so the two cannot share one.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, statistics, sys, time
from pruneviz.core.allocator import tune_allocator
applied = tune_allocator()
import torch
torch.set_num_threads(int(sys.argv[2]))
from pruneviz.core.session import Session
s = Session.open("demo:cnn", data="demo:digits", device=sys.argv[1])
s.evaluate()
def med(fn, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
def edit():
    s.prune_neurons("4", [1]); s.evaluate(); s.undo(); s.evaluate()
n = int(sys.argv[3])
med(lambda: s.evaluate(incremental=False), 3)
print(json.dumps({"applied": applied, "full_ms": med(lambda: s.evaluate(incremental=False), n), "edit_ms": med(edit, n)}))
"""


def _child(system: bool, device: str, n: int) -> dict:
    env = dict(os.environ)
    for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"):
        env.pop(k, None)
    env["PRUNEVIZ_MALLOC"] = "system" if system else ""
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    threads = str(max(1, min(os.cpu_count() or 1, 16)))
    out = subprocess.run([sys.executable, "-c", CHILD, device, threads, str(n)], env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def figures(quick: bool, device: str = "cpu") -> dict:
    if device != "cpu":
        return {"allocator_eval_ratio": "cpu only (the CUDA caching allocator keeps its blocks)"}
    if quick:  # two fresh processes that each start torch (~5 s): over the quick pass's budget
        return {"allocator_eval_ratio": "not run in --quick (python tests/benchmarks/allocator.py)"}
    n = 30
    tuned, system = [], []
    for _ in range(3):  # alternating processes (each starts torch: ~3 CPU-s)
        tuned.append(_child(False, device, n))
        system.append(_child(True, device, n))
    if not all(r["applied"] for r in tuned):
        return {"allocator_eval_ratio": "not applied here (not Linux with glibc, or tuned by the environment)"}

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    return {
        "allocator_eval_ratio": med(tuned, "full_ms") / med(system, "full_ms"),
        "allocator_edit_ratio": med(tuned, "edit_ms") / med(system, "edit_ms"),
        "allocator_full_ms": f"{med(tuned, 'full_ms'):.2f} ms tuned vs {med(system, 'full_ms'):.2f} ms glibc defaults "
                             f"(per-process medians {[round(r['full_ms'], 2) for r in tuned]} vs {[round(r['full_ms'], 2) for r in system]})",
        "allocator_edit_ms": f"{med(tuned, 'edit_ms'):.2f} ms tuned vs {med(system, 'edit_ms'):.2f} ms glibc defaults",
    }


if __name__ == "__main__":
    print(json.dumps(figures("--quick" in sys.argv), indent=1))
