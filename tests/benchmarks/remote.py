"""Benchmark of evaluation on a Ray replica (issue 19): on a local Ray instance started here
(``--eval-on local``) and through Ray's client on a cluster in a separate process (``ray start
--head`` on this machine, ``--eval-on ray://127.0.0.1:PORT``: the path to a GPU server; keys
ending ``_client``).

    python tests/benchmarks/remote.py [--quick] [--json] [--no-client]

``tests/benchmarks/run.py`` runs it in its full pass (not in ``--quick``: starting Ray twice takes
tens of seconds).

- ``remote_edit_roundtrip_ms``: one neuron edit of demo:cnn (digits, 360 samples) -> the replica's
  exact accuracy back in the session (``session.evaluate()``: the journal message, the replica's
  incremental evaluation, the progress and result coming back), minus the same evaluation done
  locally right after the same edit (each side from its own warm activation cache), interleaved
  pairs: the median overhead in ms with the 25th-75th percentile spread (and min, max), and both
  medians;
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

#: a one-neuron edit flips one index (``remote_edit_flipped``): 64 + 4 bytes
GOALS = {"remote_edit_bytes": ("<=", 68), "remote_exact": ("==", True), "remote_edit_bytes_client": ("<=", 68), "remote_exact_client": ("==", True)}


def _quantile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def remote_figures(quick: bool, address: str = "local") -> dict:
    """The figures on the Ray at ``address``: ``local`` starts its private head (or uses the Ray
    running), ``ray://…`` connects Ray's client."""
    import ray

    t0 = time.perf_counter()
    if address == "local" and not ray.is_initialized():
        from pruneviz.core import ray_local

        ray_local.acquire()  # the private head that ``local`` joins through Ray's client (``ray start --head``)
    t_ray = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator=address)
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
        "remote_edit_roundtrip_ms_min": min(over),
        "remote_edit_roundtrip_ms_max": max(over),
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


def client_figures(quick: bool) -> dict:
    """The same figures through Ray's client, on a cluster started here in a separate process
    (ended, every process of it, before this returns); keys end ``_client``."""
    import ray

    from tests.ray_head import RayHead  # the checkout's root is on the path (above)

    if ray.is_initialized():
        ray.shutdown()
    t0 = time.perf_counter()
    head = RayHead().start()
    t_head = time.perf_counter() - t0
    try:
        fig = remote_figures(quick, head.address)
    finally:
        ray.shutdown()
        left = not head.stop()
    fig["ray_init_s"] = t_head  # ``ray start --head`` until its client server answers
    out = {f"{k}_client" if not k.endswith(("_min", "_max")) else f"{k[:-4]}_client{k[-4:]}": v for k, v in fig.items()}
    out["ray_processes_left_client"] = left
    return out


def _end_local(ray) -> None:
    """Disconnect from ``local``'s Ray and stop its private head, if it started one."""
    from pruneviz.core import ray_local

    ray_local.shutdown()
    ray.shutdown()


def figures(quick: bool, device: str = "cpu", client: bool = True) -> dict:
    """What ``run.py`` prints: both Rays in its full pass, nothing in ``--quick``."""
    if quick:
        return {"remote_edit_roundtrip_ms": "not run in --quick (python tests/benchmarks/remote.py)"}
    try:
        import ray
    except ImportError:
        return {"remote_edit_roundtrip_ms": "ray not installed"}
    out = remote_figures(quick)
    _end_local(ray)
    if client:
        import importlib.util

        out.update(client_figures(quick) if importlib.util.find_spec("grpc") else {"remote_edit_roundtrip_ms_client": "Ray's client not installed"})
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-client", action="store_true", help="only the local Ray (no cluster through Ray's client)")
    args = p.parse_args()
    fig = remote_figures(args.quick)
    if not args.no_client:
        import ray

        _end_local(ray)
        fig.update(client_figures(args.quick))
    for k, v in fig.items():
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    if args.json:
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
