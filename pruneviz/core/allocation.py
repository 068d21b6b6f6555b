"""Budget allocation: per-layer sparsities for a target overall sparsity, from sensitivity curves.

Each layer's curve (loss vs the layer's sparsity, from :func:`pruneviz.core.analysis.sensitivity`,
starting at the layer's current sparsity and loss) is linearly interpolated and replaced by its
lower convex hull, so cost per pruned weight only grows along it (the knee is where it turns up).
A greedy pass then takes hull segments of all layers in order of increasing loss per pruned
weight until the target is met, the last one in part. For convex piecewise-linear curves this
greedy choice is optimal (it is the fractional knapsack), so the predicted loss increase
(the sum of each layer's own increase) is the smallest any interpolated allocation reaches.
No layer goes past the highest level measured, and none is ever emptied.
"""

from __future__ import annotations

import torch

from . import ranking as rk
from .errors import PrunevizError


def lower_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lower convex hull of points sorted by x (Andrew's monotone chain, lower half)."""
    hull: list[tuple[float, float]] = []
    for p in sorted(points):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        if hull and p[0] == hull[-1][0]:
            continue  # same x: the lower point came first
        hull.append(p)
    return hull


def allocate(session, target: float, sensitivity: dict) -> dict[str, float]:
    """Per-layer sparsities ``{layer: fraction}`` reaching ``target`` sparsity of all prunable
    weights (within rounding), the layers not in ``sensitivity`` kept as they are.

    ``sensitivity``: a weight-granularity :func:`~pruneviz.core.analysis.sensitivity` result."""
    if not isinstance(target, (int, float)) or isinstance(target, bool) or not 0.0 <= target < 1.0:
        raise PrunevizError(f"target sparsity must be a fraction from 0 to below 1, got {target!r}")
    if sensitivity.get("granularity") != "weight":
        raise PrunevizError("allocation needs a sensitivity analysis of weights (granularity weight)")
    sizes = {layer.name: layer.numel for layer in session.layers}
    total = sum(sizes.values())
    current = {n: session.masks.pruned_count(n) for n in sizes}
    need = target * total - sum(current.values())
    plan = {n: current[n] / sizes[n] for n in sizes}
    if need <= 0:
        return plan
    base_loss = sensitivity["baseline"]["loss"]
    segments = []  # (loss per weight, layer order, weights, layer)
    order = {n: i for i, n in enumerate(sizes)}
    for name, pts in sensitivity["layers"].items():
        if name not in sizes:
            raise PrunevizError(f"the sensitivity analysis names layer {name!r}, which this model does not have")
        n = sizes[name]
        cap = (n - 1) / n  # never empty a layer
        curve = [(current[name] / n, base_loss)] + [(min(p["sparsity"], cap), p["loss"]) for p in pts if p["sparsity"] * n > current[name]]
        hull = lower_hull(curve)
        for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
            w = (x2 - x1) * n
            segments.append(((y2 - y1) / w, order[name], w, name))
    segments.sort()  # per layer the hull's slopes increase, so each layer's segments stay in order
    reach = sum(s[2] for s in segments)
    if reach < need - 1e-9:
        top = (sum(current.values()) + reach) / total
        raise PrunevizError(f"target sparsity {target:.1%} is beyond what the sensitivity curves cover (at most {top:.1%}): measure higher levels")
    for _, _, w, name in segments:
        take = min(w, need)
        plan[name] += take / sizes[name]
        need -= take
        if need <= 1e-9:
            break
    return plan


def allocation_flips(session, plan: dict[str, float], method: str = "magnitude") -> dict[str, torch.Tensor]:
    """What applying ``plan`` prunes: per layer, the lowest-``method`` kept weights that bring it to
    its planned sparsity (bool tensors like the weights; never a restore, never a whole layer)."""
    sizes = {layer.name: layer.numel for layer in session.layers}
    for name, frac in plan.items():
        if name not in sizes:
            raise PrunevizError(f"the plan names layer {name!r}, which this model does not have")
        if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0.0 <= frac < 1.0:
            raise PrunevizError(f"the plan's sparsity for layer {name} must be from 0 to below 1, got {frac!r}")
    scores = session.scores(None, method, "weight")
    out = {}
    for name, frac in plan.items():
        kept = session.mask(name)
        n_kept = rk.count(kept)
        k = min(round(frac * sizes[name]) - (sizes[name] - n_kept), n_kept - 1)
        if k > 0:
            out[name] = rk.lowest(scores[name], kept, k)
    return out


def apply_allocation(session, plan: dict[str, float], method: str = "magnitude") -> int:
    """Prune to ``plan`` as one undo step; returns the number of weights pruned."""
    chosen = allocation_flips(session, plan, method)  # validated and computed before any edit
    n = 0
    with session.group(f"prune to a sensitivity plan ({method})"):
        for name, m in chosen.items():
            n += session.prune_weights(name, m)
    return n
