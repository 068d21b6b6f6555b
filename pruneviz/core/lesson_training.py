"""Lesson actions that train or compensate: fine-tuning, a pruning schedule (before / during /
after / regrow) and a cut with compensation, drawn live as curves per epoch beside the lesson's
earlier arms. Each registers itself in :data:`pruneviz.core.lesson_registry.ACTIONS`.
"""

from __future__ import annotations

from typing import Iterator

from . import units
from .lesson_format import Setting
from .lesson_labels import human
from .lesson_registry import METHODS, NAME, action, named, record_eval
from .schedules import METHODS as SCHEDULE_METHODS, SCHEDULES

__all__: list[str] = []


# ----------------------------------------------------- verbs from the training engine (later)
@action("finetune", {"epochs": Setting(int, default=1, low=1, high=1000), "lr": Setting(float, default=None), "record": NAME}, named(), needs=("finetune",))
def _finetune(run, step, cancel) -> Iterator:
    """Session.finetune: train the surviving weights; records NAME after it."""
    yield from _train_curve(run, run.session.finetune(epochs=step["epochs"], lr=step["lr"], cancel=cancel), "fine-tune")
    record_eval(run, step["record"])


@action(
    "train",
    {"schedule": Setting(str, required=True, choices=SCHEDULES), "target_sparsity": Setting(float, required=True, low=0.0, high=1.0), "epochs": Setting(int, default=3, low=1, high=1000), "method": Setting(str, default="magnitude", choices=SCHEDULE_METHODS), "lr": Setting(float, default=None), "from_scratch": Setting(bool, default=False), "record": NAME},
    lambda step: named()(step) + ([f"{step['record']}_regrown"] if step.get("record") and step["schedule"] == "regrow" else []),
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
    record_eval(run, step["record"])
    if first_cut is not None and step.get("record"):
        regrown = sum(int((first_cut[n] & s.mask(n)).sum()) for n in first_cut)
        run.record(f"{step['record']}_regrown", regrown)
        yield {"text": f"{regrown:,} connections the first cut removed grew back; sparsity stayed at {s.sparsity():.1%}"}


@action(
    "compensate",
    {"amount": Setting(float, required=True, low=0.0, high=1.0), "scope": Setting(str, default="layer", choices=units.SCOPES), "method": Setting(str, default="magnitude", choices=METHODS), "record": NAME, "keep": Setting(bool, default=True)},
    named(),
    needs=("compensate",),
)
def _compensate(run, step, cancel) -> Iterator:
    """Session.prune(..., compensate=True): prune and adjust the surviving weights (OBS-style)."""
    s = run.session
    s.prune(step["amount"], scope=step["scope"], method=step["method"], compensate=True)
    acc = record_eval(run, step["record"])
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
