"""What a lesson step can do: a registry of actions, each a few lines over Session verbs.

An action is a generator ``fn(run, step, cancel)`` that calls verbs on ``run.session``, yields
progress (``{"text": ..., "chart": ...}``) for a live view, and records named figures with
``run.record(name, value)`` and pictures with ``run.chart(spec)``. Its ``settings`` are checked
when the lesson file is read; ``figures(step)`` lists the names it will record, so a claim that
reads a figure no step records is refused with the line of the claim. ``needs`` names the
Session verbs it calls that older engines lack: a lesson using it is listed as "needs: VERB"
and refused by ``lesson run`` until the verb exists.

Adding an action (a new verb, say ``Session.finetune``) is one :func:`action` entry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from .correlation import ranks, spearman
from . import units
from .errors import PrunevizError
from .schedules import METHODS as SCHEDULE_METHODS, SCHEDULES
from .lesson_format import Setting
from .lesson_labels import human

__all__ = ["Action", "ACTIONS", "action", "pct"]


@dataclass
class Action:
    name: str
    fn: Callable
    settings: dict[str, Setting]
    figures: Callable[[dict], list[str]]
    needs: tuple[str, ...] = ()
    check: Callable[[dict], tuple[str, str] | None] | None = None
    help: str = ""


ACTIONS: dict[str, Action] = {}


def action(name: str, settings: dict[str, Setting] | None = None, figures: Callable[[dict], list[str]] | None = None, needs: tuple[str, ...] = (), check=None):
    """Register ``fn(run, step, cancel)`` as the lesson action ``name``."""

    def wrap(fn):
        ACTIONS[name] = Action(name, fn, dict(settings or {}), figures or (lambda step: []), tuple(needs), check, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return wrap


def pct(level: float) -> int:
    """A level's name in figures: 0.7 -> 70."""
    return int(round(level * 100))


def _cancelled(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


_METHODS = units.all_methods()  # the registry's lists: front ends never keep their own
_LEVEL = Setting(float, low=0.0, high=1.0)
_NAME = Setting(str)


def _record_eval(run, name: str | None) -> float:
    result = run.session.evaluate()
    if name:
        run.record(name, result.accuracy)
        run.record(f"{name}_loss", result.loss)
    return result.accuracy


def _named(key: str = "record") -> Callable[[dict], list[str]]:
    return lambda step: [step[key], f"{step[key]}_loss"] if step.get(key) else []


# -------------------------------------------------------------------------------- basic verbs
@action("evaluate", {"record": Setting(str, required=True)}, _named())
def _evaluate(run, step, cancel) -> Iterator:
    """Evaluate the model; records NAME (accuracy) and NAME_loss."""
    acc = _record_eval(run, step["record"])
    yield {"text": f"accuracy {acc:.1%}"}


@action(
    "prune",
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scope": Setting(str, default="layer", choices=units.SCOPES), "granularity": Setting(str, default="weight", choices=tuple(units.names())), "method": Setting(str, default="magnitude", choices=_METHODS), "layers": _NAME, "record": _NAME, "keep": Setting(bool, default=True)},
    _named(),
)
def _prune(run, step, cancel) -> Iterator:
    """Session.prune; records NAME and NAME_loss after it; keep = false undoes it afterwards."""
    s = run.session
    n = s.prune(step["amount"], scope=step["scope"], granularity=step["granularity"], method=step["method"], layers=step["layers"])
    acc = _record_eval(run, step["record"])
    yield {"text": f"pruned {n:,} {units.get(step['granularity']).counted_in} by {step['method']}: sparsity {s.sparsity():.1%}, accuracy {acc:.1%}"}
    if not step["keep"]:
        s.undo()


@action("prune_neurons", {"layer": Setting(str, required=True), "neurons": Setting(list, required=True, items=int), "record": _NAME}, _named())
def _prune_neurons(run, step, cancel) -> Iterator:
    """Session.prune_neurons on the listed neurons of one layer."""
    run.session.prune_neurons(step["layer"], step["neurons"])
    acc = _record_eval(run, step["record"])
    yield {"text": f"pruned neurons {step['neurons']} of {step['layer']}: accuracy {acc:.1%}"}


@action("restore_neurons", {"layer": Setting(str, required=True), "neurons": Setting(list, required=True, items=int), "record": _NAME}, _named())
def _restore_neurons(run, step, cancel) -> Iterator:
    """Session.restore_neurons on the listed neurons of one layer."""
    run.session.restore_neurons(step["layer"], step["neurons"])
    acc = _record_eval(run, step["record"])
    yield {"text": f"restored neurons {step['neurons']} of {step['layer']}: accuracy {acc:.1%}"}


@action("undo", {"record": _NAME}, _named())
def _undo(run, step, cancel) -> Iterator:
    """Session.undo: take the last step back."""
    label = run.session.undo()
    acc = _record_eval(run, step["record"])
    yield {"text": f"undid {label!r}: accuracy {acc:.1%}" if label else "nothing to undo"}


@action("reset", {"record": _NAME}, _named())
def _reset(run, step, cancel) -> Iterator:
    """Session.goto(0): back to the unpruned model (every step stays redoable)."""
    run.session.goto(0)
    acc = _record_eval(run, step["record"])
    yield {"text": f"back to the unpruned model: accuracy {acc:.1%}"}


def _check_predict(step: dict):
    if not 2 <= len(step["choices"]) <= 6:
        return "choices", "a prediction needs 2 to 6 choices"
    if not 1 <= step["answer"] <= len(step["choices"]):
        return "answer", f"answer must be the number of a choice, 1 to {len(step['choices'])}"
    return None


@action("predict", {"question": Setting(str, required=True), "choices": Setting(list, required=True, items=str), "answer": Setting(int, required=True), "reveal": Setting(str, default="")}, check=_check_predict)
def _predict(run, step, cancel) -> Iterator:
    """Ask the class to guess (multiple choice); the answer is revealed after."""
    yield {"text": step["question"]}


# ----------------------------------------------------------------------------------- the loop
def _loop_figures(step):
    r = step["record"]
    return [f"{r}_steps", f"{r}_sparsity", f"{r}_accuracy", f"{r}_cliff_sparsity", f"{r}_start_accuracy"]


@action(
    "loop",
    {"method": Setting(str, default="magnitude", choices=_METHODS), "min_accuracy": _LEVEL, "target_sparsity": _LEVEL, "max_steps": Setting(int, default=10_000, low=1, high=100_000), "record": Setting(str, default="loop"), "cliff_drop": Setting(float, default=0.05, low=0.0, high=1.0)},
    _loop_figures,
)
def _loop(run, step, cancel) -> Iterator:
    """Session.prune_loop: remove the least important neuron, re-evaluate, until a stop condition.

    Records R_steps, R_sparsity, R_accuracy (where it stopped), R_start_accuracy and
    R_cliff_sparsity: the sparsity of the first step whose accuracy fell more than
    ``cliff_drop`` below the start (the last step's sparsity when it never did)."""
    s, r = run.session, step["record"]
    start = s.evaluate().accuracy
    xs, ys, cliff = [s.sparsity()], [start], None
    chart = {"kind": "lines", "title": f"node pruning by {step['method']}: accuracy as neurons go", "xlabel": "weight sparsity", "ylabel": "accuracy", "ylim": [0, 1], "series": [{"name": step["method"], "x": xs, "y": ys}], "marks": []}
    for n, ((layer, idx), result) in enumerate(s.prune_loop(step["method"], step["min_accuracy"], step["target_sparsity"], step["max_steps"]), 1):
        xs.append(s.sparsity())
        ys.append(result.accuracy)
        if cliff is None and result.accuracy < start - step["cliff_drop"]:
            cliff = xs[-1]
            chart["marks"].append({"x": cliff, "label": f"cliff at {cliff:.0%}"})
        yield {"text": f"step {n}: neuron {idx} of {layer}; sparsity {xs[-1]:.1%}, accuracy {ys[-1]:.1%}", "chart": chart}
        if _cancelled(cancel):
            return
    run.record(f"{r}_steps", float(len(s.history.steps[: s.history.index])))
    run.record(f"{r}_sparsity", s.sparsity())
    run.record(f"{r}_accuracy", s.evaluate().accuracy)
    run.record(f"{r}_start_accuracy", start)
    run.record(f"{r}_cliff_sparsity", cliff if cliff is not None else xs[-1])
    run.chart(chart)


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
    {"methods": Setting(list, default=["magnitude"], items=str, choices=_METHODS), "scopes": Setting(list, default=["layer"], items=str, choices=units.SCOPES), "levels": Setting(list, default=[0.3, 0.5, 0.7, 0.8, 0.9], items=float, low=0.0, high=1.0), "granularity": Setting(str, default="weight", choices=tuple(units.leveled()))},
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
            if _cancelled(cancel):
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
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scopes": Setting(list, default=["layer", "global"], items=str, choices=units.SCOPES), "method": Setting(str, default="magnitude", choices=_METHODS),
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


# ---------------------------------------------------------------------------------- knockout
def _knockout_figures(step):
    return [f"spearman_{m}" for m in step["methods"]] + ["knockout_max_loss_increase", "knockout_neurons", "knockout_tied_lowest"]


def _knockout_points(s, layer, cancel):
    """Yields ``{"index", "accuracy", "loss"}`` with each kept neuron of ``layer`` removed alone,
    measured by :meth:`Session.knockout` on a copy (the lesson ranks the criteria itself: no
    faithfulness). Returns the baseline loss the knockout measured against (on the calibration
    split, as the points are), or None when cancelled."""
    result = yield from s.knockout(layer, methods=[], cancel=cancel)
    return result["baseline"]["loss"] if result else None


@action("knockout", {"layer": Setting(str, required=True), "methods": Setting(list, default=["magnitude", "taylor", "random"], items=str, choices=_METHODS)}, _knockout_figures)
def _knockout(run, step, cancel) -> Iterator:
    """Remove each neuron of a layer alone and measure the loss increase; compare each
    criterion's ranking with it (Spearman). Records spearman_METHOD."""
    s, layer = run.session, step["layer"]
    idx, losses = [], []
    points = _knockout_points(s, layer, cancel)
    while True:
        try:
            point = next(points)
        except StopIteration as stop:
            base = stop.value
            break
        idx.append(point["index"])
        losses.append(point["loss"])
        if len(idx) % 8 == 0:
            yield {"text": f"knocked out {len(idx)} of {s.layer(layer).out_channels} neurons of {layer}"}
    if _cancelled(cancel) or base is None:
        return
    inc = [loss - base for loss in losses]  # against the knockout's own baseline (same samples)
    if not idx:
        raise PrunevizError(f"layer {layer} has no kept neuron to knock out")
    run.record("knockout_neurons", float(len(idx)))
    run.record("knockout_max_loss_increase", float(max(inc)))
    measured = ranks(inc)
    first = step["methods"][0]
    scatter = {"kind": "scatter", "title": f"layer {layer}: each neuron, measured vs {first} (ranks)", "xlabel": "rank by loss increase when knocked out", "ylabel": f"rank by {first}", "series": []}
    bars = {"kind": "bars", "title": "rank agreement: Spearman ρ of each criterion with knockout", "ylabel": "Spearman ρ", "percent": False, "categories": [], "keys": [], "series": [{"name": "ρ", "values": []}]}
    for m in step["methods"]:
        scores = s.scores(layer, method=m, granularity="neuron").numpy()[idx]
        rho = spearman(scores, inc)
        rho = 0.0 if rho is None else rho  # a constant ranking (undefined rho) agrees with nothing
        run.record(f"spearman_{m}", rho)
        if m == first:
            scatter["series"].append({"name": m, "key": m, "x": measured.tolist(), "y": ranks(scores).tolist()})
            lowest = min(inc)
            tied = sum(1 for v in inc if v == lowest)  # neurons whose knockout changes nothing share the lowest rank
            run.record("knockout_tied_lowest", float(tied))
            if tied > 1:
                scatter["marks"] = [{"x": float(measured.min()), "label": f"{tied} neurons tied: removing one alone changes nothing"}]
        bars["categories"].append(m)
        bars["keys"].append(m)
        bars["series"][0]["values"].append(rho)
        yield {"text": f"{m}: Spearman ρ = {rho:.2f} between its scores and the measured loss increase", "chart": bars}
    run.chart(scatter)
    run.chart(bars)


# ------------------------------------------------------- verbs from the analysis engine (later)
@action(
    "sensitivity",
    {"layers": Setting(str, default=None), "levels": Setting(list, default=[0.3, 0.5, 0.7, 0.9], items=float, low=0.0, high=1.0), "granularity": Setting(str, default="weight", choices=tuple(units.leveled())), "method": Setting(str, default="magnitude", choices=_METHODS)},
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


# ----------------------------------------------------- verbs from the training engine (later)
@action("finetune", {"epochs": Setting(int, default=1, low=1, high=1000), "lr": Setting(float, default=None), "record": _NAME}, _named(), needs=("finetune",))
def _finetune(run, step, cancel) -> Iterator:
    """Session.finetune: train the surviving weights; records NAME after it."""
    yield from _train_curve(run, run.session.finetune(epochs=step["epochs"], lr=step["lr"], cancel=cancel), "fine-tune")
    _record_eval(run, step["record"])


@action(
    "train",
    {"schedule": Setting(str, required=True, choices=SCHEDULES), "target_sparsity": Setting(float, required=True, low=0.0, high=1.0), "epochs": Setting(int, default=3, low=1, high=1000), "method": Setting(str, default="magnitude", choices=SCHEDULE_METHODS), "lr": Setting(float, default=None), "from_scratch": Setting(bool, default=False), "record": _NAME},
    lambda step: _named()(step) + ([f"{step['record']}_regrown"] if step.get("record") and step["schedule"] == "regrow" else []),
    needs=("train",),
)
def _train(run, step, cancel) -> Iterator:
    """Session.train with a pruning schedule (before / during / after / regrow); records NAME after
    it, and for regrow NAME_regrown: the connections the one-shot magnitude cut at the start
    removes that training grew back (kept at the end)."""
    s = run.session
    first_cut = None
    if step["schedule"] == "regrow" and s.sparsity() < step["target_sparsity"]:
        first_cut = s.preview(step["target_sparsity"], "layer", "weight", "magnitude")  # what the start cuts
    gen = s.train(step["schedule"], step["target_sparsity"], step["epochs"], method=step["method"], lr=step["lr"], from_scratch=step["from_scratch"], cancel=cancel)
    # from scratch, the arm starts from fresh weights the generator draws: the model here is not its start
    yield from _train_curve(run, gen, step["schedule"], start=not step["from_scratch"], reference="the shipped dense network" if step["from_scratch"] else "unpruned")
    _record_eval(run, step["record"])
    if first_cut is not None and step.get("record"):
        regrown = sum(int((first_cut[n] & s.mask(n)).sum()) for n in first_cut)
        run.record(f"{step['record']}_regrown", regrown)
        yield {"text": f"{regrown:,} connections the first cut removed grew back; sparsity stayed at {s.sparsity():.1%}"}


@action(
    "compensate",
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scope": Setting(str, default="layer", choices=units.SCOPES), "method": Setting(str, default="magnitude", choices=_METHODS), "record": _NAME, "keep": Setting(bool, default=True)},
    _named(),
    needs=("compensate",),
)
def _compensate(run, step, cancel) -> Iterator:
    """Session.prune(..., compensate=True): prune and adjust the surviving weights (OBS-style)."""
    s = run.session
    s.prune(step["amount"], scope=step["scope"], method=step["method"], compensate=True)
    acc = _record_eval(run, step["record"])
    # the accuracies recorded so far (unpruned, the plain cut, ...) beside this one, as bars
    names = [n for n in run.figures if not n.endswith("_loss")]
    chart = {"kind": "bars", "title": "accuracy: the same cut without and with compensation", "ylabel": "accuracy", "categories": [human(n) for n in names], "keys": names, "series": [{"name": "accuracy", "values": [run.figures[n] for n in names]}]}
    run.chart(chart)
    yield {"text": f"pruned {step['amount']:.0%} with compensation: accuracy {acc:.1%}", "chart": chart}
    if not step["keep"]:
        s.undo()


def _train_curve(run, gen, name: str, start: bool = True, reference: str = "unpruned") -> Iterator:
    """Draw a training run's accuracy per epoch live, from where it starts (epoch 0: the model
    as it was before training, e.g. right after a cut) with the unpruned model's accuracy as a
    reference line, and its sparsity per epoch in a second chart beside it (arms that reach their
    sparsity at different times are compared at the sparsity each had). The finished curves of
    the lesson's earlier training steps stay on the same plots, labelled, so before / during /
    after (or one-shot vs regrow) are compared on one picture; Back drops a step's curve with the step.
    ``start = False`` (an arm trained from fresh weights) leaves out epoch 0: the model before the
    generator runs is not where that arm starts."""
    s = run.session
    earlier = [dict(series) for r in run.results for c in r.charts if c.get("training") == "accuracy" for series in c["series"][-1:]]
    earlier_sp = [dict(series) for r in run.results for c in r.charts if c.get("training") == "sparsity" for series in c["series"][-1:]]
    series = {"name": name, "key": name, "x": [0] if start else [], "y": [s.evaluate().accuracy] if start else []}
    sp = {"name": name, "key": name, "x": [0] if start else [], "y": [s.sparsity()] if start else []}
    title = f"{name}: accuracy per epoch" if not earlier else "accuracy per epoch: " + " vs ".join([e["name"] for e in earlier] + [name])
    base = s.baseline().accuracy
    chart = {"kind": "lines", "title": title, "xlabel": "epoch", "ylabel": "accuracy", "ylim": [0, 1], "integer_x": True, "series": earlier + [series], "marks": [], "hlines": [{"y": base, "label": f"{reference} {base:.1%}"}], "training": "accuracy"}
    sparsity = {"kind": "lines", "title": "sparsity per epoch", "xlabel": "epoch", "ylabel": "sparsity", "ylim": [0, 1], "integer_x": True, "series": earlier_sp + [sp], "marks": [], "training": "sparsity", "legend": "bottom-right"}
    while True:
        try:
            p = next(gen)
        except StopIteration:
            break
        if getattr(p, "accuracy", None) is not None:
            series["x"].append(p.epoch)
            series["y"].append(p.accuracy)
            sp["x"].append(p.epoch)
            sp["y"].append(getattr(p, "sparsity", s.sparsity()))
        yield {"text": f"{name}: epoch {getattr(p, 'epoch', '?')}, loss {getattr(p, 'loss', float('nan')):.3f}", "chart": chart}
    run.chart(chart)
    run.chart(sparsity)

