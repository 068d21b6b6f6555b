"""``prune`` as one pipeline: select, compensate on calibration data, fine-tune, export, report.

The command line's ``pruneviz prune`` and the app's Prune… dialog run this one generator, so the
order of the stages, the checks made before anything changes and the report's fields are the
same everywhere::

    job = PruneJob(amount=0.5, granularity="2:4", compensate="sparsegpt", finetune=2, out="m.safetensors")
    report = training.complete(prune_pipeline.run(session, job))

:func:`run` checks every setting (training settings and data, output paths, unit and scope)
before the first edit, so a refused job leaves the session exactly as it was. It yields the
fine-tuning's :class:`~pruneviz.core.training.TrainProgress` (nothing else is long enough to
need progress) and returns the report: the export's report (:func:`pruneviz.core.export.report`)
when ``out`` is given, the session's figures otherwise, plus ``pruned`` (how many units),
``unit`` (what they are counted in), ``accuracy_before`` / ``accuracy_pruned`` (with data),
``compensated`` / ``compensation`` and ``finetune`` (the fine-tuning's result). With
``measure=False`` and no ``out`` nothing is evaluated (the app's own evaluation follows every
edit) and the report holds only those fields and ``sparsity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import units
from .errors import PrunevizError


@dataclass
class PruneJob:
    """What to prune and what to do after it; the fields mirror ``pruneviz prune``'s options."""

    amount: float
    scope: str = "layer"  #: layer, global or sensitivity
    granularity: str = "weight"  #: any unit of :mod:`pruneviz.core.units`, or N:M
    method: str = "magnitude"
    layers: list[str] | None = None
    compensate: str | None = None  #: None, "exact" or "sparsegpt"
    finetune: int = 0  #: epochs of fine-tuning after the prune (0: none)
    lr: float | None = None
    optimizer: str = "adam"
    batch_size: int | None = None  #: fine-tuning batch size
    train_data: object = None  #: fine-tuning (and, without calibration data, compensation) data
    allow_divergence: bool = False
    out: str | None = None  #: write the pruned model here (None: keep it in the session only)
    format: str = "state_dict"
    shrink: bool = False
    report: str | None = None  #: write the report as JSON here
    measure: bool = True  #: evaluate before and after for the report (the app measures live instead)

    def check(self, session) -> None:
        """Refuse, before anything changes, a job that could not run to its end."""
        from . import training
        from .files import check_target

        unit = units.get(self.granularity)  # an unknown unit is an error, never a default
        if self.compensate not in (None, False) and self.scope == "sensitivity":
            raise PrunevizError("the sensitivity scope chooses the mask per layer: it does not combine with compensation")
        if self.shrink and not unit.shrinks:
            raise PrunevizError(f"removing pruned {unit.counted_in} physically is not possible: shrink works on " + " or ".join(u.counted_in for u in units.UNITS.values() if u.shrinks))
        if self.finetune:
            training.check_settings(self.finetune, self.lr, self.optimizer, self.batch_size, session)
            training.training_data(session, self.train_data)
        else:
            for name, value, default in (("learning rate", self.lr, None), ("batch size", self.batch_size, None), ("divergence guard", self.allow_divergence, False)):
                if value != default:
                    raise PrunevizError(f"the {name} sets the fine-tuning: ask for fine-tuning epochs too")
            if self.train_data is not None and not self.compensate:
                raise PrunevizError("training data is for fine-tuning or compensation: ask for one of them too")
        if self.report is not None:
            check_target(self.report)
            if self.out is None:
                raise PrunevizError("a report describes a written model: give the model a file too")
        if self.out is not None:
            check_target(self.out)
            if self.report is not None and Path(self.report).resolve() == Path(self.out).resolve():
                raise PrunevizError("the report and the model would be the same file: give the report its own name, e.g. report.json")


def run(session, job: PruneJob, cancel=None):
    """Generator: run ``job`` on ``session`` (see the module); returns the report (a dict).

    The prune (with its compensation) is one undo step and the fine-tuning another; ``cancel``
    (a threading.Event) stops the fine-tuning at its next step, keeping what it did."""
    job.check(session)
    unit = units.get(job.granularity)
    measure = job.measure and session.data is not None
    before = session.baseline() if measure else None
    calibration = session.calib.use() if job.compensate else None  # calibration data, else training data, else the default
    n = session.prune(job.amount, scope=job.scope, granularity=job.granularity, method=job.method, layers=job.layers, compensate=job.compensate or False, calib=calibration)
    pruned = session.evaluate() if measure else None
    result = None
    if job.finetune:
        result = yield from session.finetune(job.finetune, lr=job.lr, data=job.train_data, optimizer=job.optimizer, batch_size=job.batch_size, cancel=cancel, allow_divergence=job.allow_divergence)
    if job.out is not None:
        rep = session.export(job.out, format=job.format, shrink=job.shrink)
    elif measure:
        from .export import report

        rep = report(session)
    else:
        rep = {"sparsity": session.sparsity()}
    rep["pruned"] = n
    rep["unit"] = unit.counted_in
    if before is not None:
        rep["accuracy_before"] = before.accuracy
        rep["accuracy_pruned"] = pruned.accuracy
    rep["compensated"] = bool(job.compensate)
    if job.compensate:
        rep["compensation"] = "exact" if job.compensate is True else job.compensate
    if result is not None:
        rep["finetune"] = {**result.to_json(), "warnings": list(result.warnings)}
    if job.report is not None:
        from .jsonout import write_json

        write_json(job.report, rep)
    return rep
