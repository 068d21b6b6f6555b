"""Benchmark of evaluation on a Ray replica (issue 19), on a local Ray instance started here.

    python tests/benchmarks/remote.py [--quick] [--json]

- ``remote_edit_roundtrip_ms``: one neuron edit of demo:cnn (digits, 360 samples) -> the replica's
  exact accuracy back in the session (``session.evaluate()``: the journal message, the replica's
  incremental evaluation, the progress and result coming back), minus the same evaluation done
  locally right after the same edit (each side from its own warm activation cache), interleaved
  pairs: the median overhead in ms with the 25th-75th percentile spread, and both medians;
- ``remote_edit_bytes``: bytes of the pickled journal message that one neuron edit ships (the
  flips as int32 indices, the sequence number, the masks checksum), against the goal of 64 + 4 per
  flipped index; also for a 100-weight edit. Ray's own framing of the call is not counted.
- ``remote_exact``: every remote figure equals the local one (accuracy, loss, per class).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the replica's Ray worker runs with one thread too

from pruneviz.core.session import Session  # noqa: E402


def _quantile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def remote_figures(quick: bool) -> dict:
    import ray

    t0 = time.perf_counter()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    t_ray = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    t_attach = time.perf_counter() - t0
    remote, local = s.evaluation.remote, s.evaluation.local
    layer = "12"  # the last hidden conv: an edit re-runs the tail from the cached input
    s.evaluate(), local.evaluate()  # warm both caches
    s.prune_neurons(layer, [0]), s.evaluate(), local.evaluate(), s.undo(), s.evaluate(), local.evaluate()
    n = 8 if quick else 30
    t_remote, t_local, over = [], [], []
    exact = True
    for i in range(n):
        s.prune_neurons(layer, [1 + i % 60])
        pair = {}
        for side in (("remote", "local") if i % 2 == 0 else ("local", "remote")):  # alternate who goes first
            t = time.perf_counter()
            r = s.evaluate() if side == "remote" else local.evaluate()
            pair[side] = ((time.perf_counter() - t) * 1000, r)
        (rm, rr), (lm, lr) = pair["remote"], pair["local"]
        exact &= (rr.accuracy, rr.loss, rr.correct) == (lr.accuracy, lr.loss, lr.correct)
        t_remote.append(rm), t_local.append(lm), over.append(rm - lm)
        s.undo()
        s.evaluate(), local.evaluate()  # back to the start on both sides (not timed)
    s.prune_neurons(layer, [5])
    s.evaluate()
    neuron_bytes = len(remote.last_payload)
    neuron_flipped = sum(f.idx.numel() for f in s.history.steps[-1].flips)
    s.prune_weights(layer, list(range(0, 1000, 10)))
    s.evaluate()
    weights_bytes = len(remote.last_payload)
    return {
        "remote_edit_roundtrip_ms": statistics.median(over),
        "remote_edit_roundtrip_ms_p25": _quantile(over, 0.25),
        "remote_edit_roundtrip_ms_p75": _quantile(over, 0.75),
        "remote_eval_ms": statistics.median(t_remote),
        "local_eval_ms": statistics.median(t_local),
        "remote_edit_bytes": neuron_bytes,
        "remote_edit_flipped": neuron_flipped,
        "remote_edit_bytes_goal": 64 + 4 * neuron_flipped,
        "remote_100_weights_bytes": weights_bytes,
        "remote_exact": bool(exact) and remote.resyncs == 0 and remote.down is None,
        "ray_init_s": t_ray,
        "replica_start_s": t_attach,
        "pairs": n,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    fig = remote_figures(args.quick)
    for k, v in fig.items():
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    if args.json:
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
