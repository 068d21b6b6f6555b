"""Lesson actions that measure the model without keeping a change: accuracy-vs-sparsity sweeps,
layer vs global scopes (optionally after a function-preserving rescale), and per-layer
sensitivity. Each registers itself in :data:`pruneviz.core.lesson_registry.ACTIONS`.
"""

from __future__ import annotations

from typing import Iterator

from . import units
from .errors import PrunevizError
from .lesson_format import Setting
from .lesson_registry import METHODS, action, cancelled, pct

__all__: list[str] = []


# --------------------------------------------------------------------------- sweeps and scopes
def _sweep_label(step, method, scope) -> str:
    if len(step["scopes"]) == 1:
        return method
    if len(step["methods"]) == 1:
        return scope
    return f"{method}_{scope}"


def _sweep_figures(step):
    return [f"accuracy_{_sweep_label(step, m, sc)}_{pct(v)}" for m in step["methods"] for sc in step["scopes"] for v in step["levels"]]


def _sweep_points(s, levels, scope, granularity, method, cancel) -> Iterator:
    """(level, sparsity, accuracy, loss) of one-shot prunes from the current state, measured by
    :meth:`Session.sweep` on a copy (the state is kept)."""
    for p in s.sweep(levels=list(levels), scope=scope, granularity=granularity, method=method, cancel=cancel):
        yield p["level"], p["sparsity"], p["accuracy"], p["loss"]


@action(
    "sweep",
    {"methods": Setting(list, default=["magnitude"], items=str, choices=METHODS), "scopes": Setting(list, default=["layer"], items=str, choices=units.SCOPES), "levels": Setting(list, default=[0.3, 0.5, 0.7, 0.8, 0.9], items=float, low=0.0, high=1.0), "granularity": Setting(str, default="weight", choices=tuple(units.leveled()))},
    _sweep_figures,
)
def _sweep(run, step, cancel) -> Iterator:
    """Accuracy vs sparsity, one-shot from the current state, for each method × scope.

    Records accuracy_LABEL_PCT, LABEL = the method (one scope), the scope (one method) or
    METHOD_SCOPE; PCT = the level in percent. The model is left as it was."""
    s = run.session
    chart = {"kind": "lines", "title": "accuracy vs sparsity, one-shot", "xlabel": "sparsity (amount pruned)", "ylabel": "accuracy", "ylim": [0, 1], "series": [], "marks": []}
    for method in step["methods"]:
        for scope in step["scopes"]:
            label = _sweep_label(step, method, scope)
            series = {"name": label.replace("_", " "), "key": label, "x": [], "y": []}
            chart["series"].append(series)
            for lv, sp, acc, loss in _sweep_points(s, step["levels"], scope, step["granularity"], method, cancel):
                series["x"].append(lv)
                series["y"].append(acc)
                run.record(f"accuracy_{label}_{pct(lv)}", acc)
                yield {"text": f"{label.replace('_', ' ')} at {lv:.0%}: accuracy {acc:.1%}", "chart": chart}
            if cancelled(cancel):
                return
    run.chart(chart)


def _scopes_figures(step):
    p = pct(step["amount"])
    r = "rescaled_" if step.get("rescale") else ""
    # the layer names are known only once the model is open: a prefix ending in * stands for them
    extra = ["accuracy_rescaled", "loss_rescaled", "loss_unscaled"] if r else []
    return extra + [f"{r}accuracy_{sc}_{p}" for sc in step["scopes"]] + [f"{r}sparsity_{sc}_{p}_*" for sc in step["scopes"]] + [f"{r}kept_{sc}_{p}_*" for sc in step["scopes"]] + [f"{r}median_w_*"]


@action(
    "scopes",
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scopes": Setting(list, default=["layer", "global"], items=str, choices=units.SCOPES), "method": Setting(str, default="magnitude", choices=METHODS),
     # rescale = c, rescale_layers = [A, B]: first A's weight and bias times c and B's weight times 1/c (A feeds B through a ReLU: the same function)
     "rescale": Setting(float, low=1e-6, high=1e6), "rescale_layers": Setting(list, items=str)},
    _scopes_figures,
)
def _scopes(run, step, cancel) -> Iterator:
    """Prune the same amount per layer and globally; records accuracy_SCOPE_PCT, the sparsity
    each chose per layer (sparsity_SCOPE_PCT_LAYER), the weights it kept there
    (kept_SCOPE_PCT_LAYER) and each layer's median |w| (median_w_LAYER: the scale a global
    magnitude ranking compares across layers); bars per layer. Model left as it was."""
    s = run.session
    p = pct(step["amount"])
    names = [layer.name for layer in s.layers]
    r = ""
    if step.get("rescale"):
        from .rescale import preserving_factors, scale_layers

        pair = step.get("rescale_layers") or []
        if len(pair) != 2 or any(n not in names for n in pair):
            raise PrunevizError(f"rescale_layers must name two layers of the model ({', '.join(names)}), got {pair!r}")
        run.record("loss_unscaled", s.evaluate().loss)
        scale_layers(s, preserving_factors(pair[0], pair[1], step["rescale"]))
        ev = s.evaluate()
        run.record("accuracy_rescaled", ev.accuracy)
        run.record("loss_rescaled", ev.loss)
        r = "rescaled_"
    try:
        if r:  # inside the try: a lesson closed here still undoes the rescale
            yield {"text": f"layer {pair[0]} times {step['rescale']:g}, layer {pair[1]} times {1 / step['rescale']:g}: accuracy {ev.accuracy:.1%}, loss {ev.loss:.4f} (the same function)"}
        medians = {}
        for n in names:
            w = s.weight(n, original=True).detach().abs().flatten().float()
            medians[n] = float(w.median()) if w.numel() else float("nan")
            run.record(f"{r}median_w_{n}", medians[n])
        chart = {"kind": "bars", "title": f"per-layer sparsity at {p}% overall" + (" (rescaled)" if r else ""), "ylabel": "sparsity of the layer", "categories": [f"layer {n}\nmedian |w| {medians[n]:.3f}" for n in names], "series": []}
        for scope in step["scopes"]:
            s.prune(step["amount"], scope=scope, method=step["method"])
            acc = s.evaluate().accuracy
            per = [s.sparsity(n) for n in names]
            kept = [int(s.mask(n).sum()) for n in names]
            s.undo()
            run.record(f"{r}accuracy_{scope}_{p}", acc)
            for n, v, k in zip(names, per, kept):
                run.record(f"{r}sparsity_{scope}_{p}_{n}", v)
                run.record(f"{r}kept_{scope}_{p}_{n}", k)
            chart["series"].append({"name": f"{scope} (accuracy {acc:.1%})", "key": scope, "values": per})
            yield {"text": f"{scope}: accuracy {acc:.1%}; sparsity of each layer: " + ", ".join(f"layer {n} {v:.0%} ({k:,} weights kept)" for n, v, k in zip(names, per, kept)), "chart": chart}
        run.chart(chart)
    finally:
        if r:
            s.undo()  # the rescale: the model is left as it was


# ------------------------------------------------------- verbs from the analysis engine (later)
@action(
    "sensitivity",
    {"layers": Setting(str, default=None), "levels": Setting(list, default=[0.3, 0.5, 0.7, 0.9], items=float, low=0.0, high=1.0), "granularity": Setting(str, default="weight", choices=tuple(units.leveled())), "method": Setting(str, default="magnitude", choices=METHODS)},
    lambda step: ["sensitivity_*"],
    needs=("sensitivity",),
)
def _sensitivity(run, step, cancel) -> Iterator:
    """Session.sensitivity: each layer pruned alone at each level; one curve per layer.
    Records sensitivity_LAYER_PCT (accuracy). The model is left as it was."""
    chart = {"kind": "lines", "title": "sensitivity: each layer pruned alone", "xlabel": "sparsity of that layer", "ylabel": "accuracy", "ylim": [0, 1], "series": [], "marks": []}
    by_layer: dict[str, dict] = {}
    gen = run.session.sensitivity(layers=step["layers"], levels=step["levels"], granularity=step["granularity"], method=step["method"], cancel=cancel)
    for point in gen:
        series = by_layer.get(point["layer"])
        if series is None:
            series = by_layer[point["layer"]] = {"name": f"layer {point['layer']}", "x": [], "y": []}
            chart["series"].append(series)
        series["x"].append(point["level"])
        series["y"].append(point["accuracy"])
        run.record(f"sensitivity_{point['layer']}_{pct(point['level'])}", point["accuracy"])
        yield {"text": f"layer {point['layer']} at {point['level']:.0%}: accuracy {point['accuracy']:.1%}", "chart": chart}
    run.chart(chart)
