"""Budget allocation: per-layer sparsities for a target overall sparsity, from sensitivity curves.

Each layer's curve (loss vs the layer's sparsity, from :func:`pruneviz.core.analysis.sensitivity`,
starting at the layer's current sparsity and loss) is linearly interpolated and replaced by its
lower convex hull, so cost per pruned weight only grows along it (the knee is where it turns up).
A greedy pass then takes hull segments of all layers in order of increasing loss per pruned
weight until the target is met, the last one in part. For convex piecewise-linear curves this
greedy choice is optimal (it is the fractional knapsack), so the predicted loss increase
(the sum of each layer's own increase) is the smallest any interpolated allocation reaches.
No layer goes past the highest level measured, and none is ever emptied.

:func:`prune_by_sensitivity` (``prune --scope sensitivity``, ``Session.prune(scope="sensitivity")``)
measures the levels a target needs (the default ones, the target itself, two between it and 1,
and 1), allocates, and then scores three plans of the same size on the calibration split: the
allocation, a uniform prune per layer and one global ranking. It applies the best of the three
(accuracy, then loss), so its plan is never worse there than the better of uniform and global:
the hull's prediction adds up each layer's own loss increase and misses how they interact,
which at high sparsity can make the allocation worse than a plain ranking.
"""

from __future__ import annotations

import torch

from . import importance as imp
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
        if k > 0 and method in imp.ROW_METHODS:  # the layer's share, compared within each output row
            out[name] = rk.lowest_per_row(scores[name], kept, k / n_kept, session.layer(name).kind == "Conv1D")
        elif k > 0:
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


def levels_for(amount: float) -> list[float]:
    """Sensitivity levels that let an allocation reach ``amount`` of the kept weights: the
    default levels, ``amount`` itself, two levels between it and 1, and 1 (the hull caps every
    layer one weight short of empty)."""
    from .analysis import DEFAULT_LEVELS

    return sorted(set(DEFAULT_LEVELS) | {float(amount), 1 - (1 - amount) / 2, 1 - (1 - amount) / 4, 1.0})


def prune_by_sensitivity(session, amount: float, method: str = "magnitude", layers=None, sensitivity: dict | None = None, cancel=None) -> int:
    """Prune ``amount`` of the kept weights of the selected layers with per-layer sparsities
    allocated from a sensitivity analysis on the calibration split, or by a uniform or global
    prune when one of those scores better there (see the module docstring); one undo step.
    ``session.last_prune.detail`` holds the three plans' calibration figures and the choice.
    Returns the number of weights pruned."""
    from .analysis import collect, flips_for
    from .history import Flip
    from .prune_spec import PruneSpec
    from .workers import Probe, run_edits

    rk.check_amount(amount)
    amount = float(amount)
    names = session.select_layers(layers, "weight")
    imp.check_method(method, "weight", session.calibration is not None)
    if session.calibration is None:
        raise PrunevizError("pruning by sensitivity measures each layer on calibration data", hint="calib_data")
    kept = {n: rk.count(session.mask(n)) for n in names}
    need = amount * sum(kept.values())
    if need > sum(kept.values()) - len(names) + 0.5:
        raise PrunevizError(f"pruning {amount:g} of the weights would leave some layer without one: the sensitivity scope keeps at least one per layer; use a smaller amount")
    sizes = {layer.name: layer.numel for layer in session.layers}
    pruned = sum(session.masks.pruned_count(n) for n in sizes)
    levels = levels_for(amount)
    sens = sensitivity if sensitivity is not None else collect(session.sensitivity(names, levels, "weight", method, cancel=cancel))
    if sens is None:  # cancelled
        return 0
    target = min((pruned + need) / sum(sizes.values()), 1 - 1e-12)
    plan = allocate(session, target, sens)
    chosen = {
        "sensitivity": allocation_flips(session, plan, method),
        "layer": session.preview(amount, "layer", "weight", method, names),
        "global": session.preview(amount, "global", "weight", method, names),
    }
    probe = Probe(session, calibration=True)
    probe.prime()
    figures = {f["key"]: f for f in run_edits(probe, [(k, flips_for(session, c, "weight")) for k, c in chosen.items()], None, cancel)}
    if len(figures) < len(chosen):  # cancelled
        return 0
    order = list(chosen)  # on a tie the allocation wins, then uniform
    best = max(order, key=lambda k: (figures[k]["accuracy"], -figures[k]["loss"], -order.index(k)))
    detail = {
        "chosen": best,
        "levels": levels,
        "plan": {n: plan[n] for n in names},
        "calibration": session.calibration_info(),
        "candidates": {k: {"accuracy": f["accuracy"], "loss": f["loss"], "sparsity": f["sparsity"]} for k, f in figures.items()},
    }
    flips = [Flip.make("elem", n, m.reshape(-1).nonzero().flatten(), m.numel()) for n, m in chosen[best].items() if m.any()]
    label = f"prune to a sensitivity plan ({method})" if best == "sensitivity" else f"prune {amount:.0%} weights by {method} ({best}: it beat the sensitivity plan on the calibration data)"
    n = 0
    with session.group(label):
        for f in flips:
            n += session.prune_weights(f.layer, f.idx)
    session.remember_prune(PruneSpec(amount, "sensitivity", "weight", method, tuple(names), detail))
    return n
