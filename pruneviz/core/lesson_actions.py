"""What a lesson step can do: a registry of actions, each a few lines over Session verbs.

An action is a generator ``fn(run, step, cancel)`` that calls verbs on ``run.session``, yields
progress (``{"text": ..., "chart": ...}``) for a live view, and records named figures with
``run.record(name, value)`` and pictures with ``run.chart(spec)``. Its ``settings`` are checked
when the lesson file is read; ``figures(step)`` lists the names it will record, so a claim that
reads a figure no step records is refused with the line of the claim. ``needs`` names the
Session verbs it calls that older engines lack: a lesson using it is listed as "needs: VERB"
and refused by ``lesson run`` until the verb exists.

Adding an action (a new verb, say ``Session.finetune``) is one :func:`action` entry.

The registry itself is :mod:`.lesson_registry`; this module holds the basic verbs, the loop and
knockout, and imports :mod:`.lesson_sweeps` and :mod:`.lesson_training`, whose actions register
themselves, so that importing it fills :data:`ACTIONS`.
"""

from __future__ import annotations

from typing import Iterator

from . import lesson_sweeps, lesson_training, units
from .correlation import ranks, spearman
from .errors import PrunevizError
from .lesson_format import Setting
from .lesson_registry import ACTIONS, LEVEL, METHODS, NAME, Action, action, cancelled, named, pct, record_eval

__all__ = ["Action", "ACTIONS", "action", "pct"]

#: the modules whose actions register in :data:`ACTIONS` when imported (with this one's)
MODULES = (lesson_sweeps, lesson_training)


# -------------------------------------------------------------------------------- basic verbs
@action("evaluate", {"record": Setting(str, required=True)}, named())
def _evaluate(run, step, cancel) -> Iterator:
    """Evaluate the model; records NAME (accuracy) and NAME_loss."""
    acc = record_eval(run, step["record"])
    yield {"text": f"accuracy {acc:.1%}"}


@action(
    "prune",
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scope": Setting(str, default="layer", choices=units.SCOPES), "granularity": Setting(str, default="weight", choices=tuple(units.names())), "method": Setting(str, default="magnitude", choices=METHODS), "layers": NAME, "record": NAME, "keep": Setting(bool, default=True)},
    named(),
)
def _prune(run, step, cancel) -> Iterator:
    """Session.prune; records NAME and NAME_loss after it; keep = false undoes it afterwards."""
    s = run.session
    n = s.prune(step["amount"], scope=step["scope"], granularity=step["granularity"], method=step["method"], layers=step["layers"])
    acc = record_eval(run, step["record"])
    yield {"text": f"pruned {n:,} {units.get(step['granularity']).counted_in} by {step['method']}: sparsity {s.sparsity():.1%}, accuracy {acc:.1%}"}
    if not step["keep"]:
        s.undo()


@action("prune_neurons", {"layer": Setting(str, required=True), "neurons": Setting(list, required=True, items=int), "record": NAME}, named())
def _prune_neurons(run, step, cancel) -> Iterator:
    """Session.prune_neurons on the listed neurons of one layer."""
    run.session.prune_neurons(step["layer"], step["neurons"])
    acc = record_eval(run, step["record"])
    yield {"text": f"pruned neurons {step['neurons']} of {step['layer']}: accuracy {acc:.1%}"}


@action("restore_neurons", {"layer": Setting(str, required=True), "neurons": Setting(list, required=True, items=int), "record": NAME}, named())
def _restore_neurons(run, step, cancel) -> Iterator:
    """Session.restore_neurons on the listed neurons of one layer."""
    run.session.restore_neurons(step["layer"], step["neurons"])
    acc = record_eval(run, step["record"])
    yield {"text": f"restored neurons {step['neurons']} of {step['layer']}: accuracy {acc:.1%}"}


@action("undo", {"record": NAME}, named())
def _undo(run, step, cancel) -> Iterator:
    """Session.undo: take the last step back."""
    label = run.session.undo()
    acc = record_eval(run, step["record"])
    yield {"text": f"undid {label!r}: accuracy {acc:.1%}" if label else "nothing to undo"}


@action("reset", {"record": NAME}, named())
def _reset(run, step, cancel) -> Iterator:
    """Session.goto(0): back to the unpruned model (every step stays redoable)."""
    run.session.goto(0)
    acc = record_eval(run, step["record"])
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
    {"method": Setting(str, default="magnitude", choices=METHODS), "min_accuracy": LEVEL, "target_sparsity": LEVEL, "max_steps": Setting(int, default=10_000, low=1, high=100_000), "record": Setting(str, default="loop"), "cliff_drop": Setting(float, default=0.05, low=0.0, high=1.0)},
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
        if cancelled(cancel):
            return
    run.record(f"{r}_steps", float(len(s.history.steps[: s.history.index])))
    run.record(f"{r}_sparsity", s.sparsity())
    run.record(f"{r}_accuracy", s.evaluate().accuracy)
    run.record(f"{r}_start_accuracy", start)
    run.record(f"{r}_cliff_sparsity", cliff if cliff is not None else xs[-1])
    run.chart(chart)


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


@action("knockout", {"layer": Setting(str, required=True), "methods": Setting(list, default=["magnitude", "taylor", "random"], items=str, choices=METHODS)}, _knockout_figures)
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
    if cancelled(cancel) or base is None:
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
