"""Training a pruned model: fine-tuning, pruning schedules, regrowth, re-initialisation.

Everything here is a plain generator over shared parts (:class:`Run`, in
:mod:`pruneviz.core.training_run`, whose names are re-exported here): it yields a
:class:`TrainProgress` per optimizer step (and one with the held-out accuracy at each epoch
end), checks a cancel flag, and records **one** undo step when it ends, is closed or is
cancelled: the mask flips it made plus the XOR of the values it changed, through one
:meth:`Session.edit_weights` (:mod:`pruneviz.core.weight_edit`). Pruned entries stay exactly 0 throughout: their gradients and
optimizer state are masked, and the parameters are re-masked after every step. A loss that
turns NaN or infinite, or a run that diverges (:mod:`pruneviz.core.divergence`: the running
loss above 10x its start, or the accuracy down to chance), stops the run and puts the model
back as it was. A run holds its session (:mod:`pruneviz.core.jobs`) from its first ``next()``
until it ends: the masks it re-applies every step cannot change under it.

The schedules (Zhu & Gupta's cubic gradual pruning, RigL's drop-and-grow, …) live in
:mod:`pruneviz.core.schedules`, a few lines each over :meth:`Run.epochs`, :meth:`Run.prune_to`
and :meth:`Run.regrow`.

Example::

    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.9)
    for p in s.finetune(epochs=3):
        print(p.step, p.loss, p.accuracy)
    s.undo()   # the fine-tuned weights go back, bit for bit
"""

from __future__ import annotations

import math
import threading

import torch

from .data import EvalData, check_fits, open_data, same_source
from .errors import PrunevizError
from .training_run import DEFAULT_BATCH, OPTIMIZERS, NonFiniteLoss, Run, TrainProgress, TrainResult, check_trainable, drive

__all__ = ["DEFAULT_BATCH", "DEMO_TRAIN", "OPTIMIZERS", "NonFiniteLoss", "Run", "TrainProgress", "TrainResult", "check_reinitializable", "check_settings",
           "check_trainable", "complete", "default_lr", "drive", "finetune", "format_lr", "reinitialize", "reset", "training_data"]  # fmt: skip

#: the demo models' training data when none is given
DEMO_TRAIN = "demo:digits-train"


def format_lr(lr: float) -> str:
    """``1e-3`` for 0.001, ``5e-4`` for 0.0005, else ``%g``."""
    mant, exp = f"{lr:.0e}".split("e")
    if float(f"{mant}e{exp}") == lr:
        return f"{mant}e{int(exp)}"
    return f"{lr:g}"


# ---------------------------------------------------------------------------------------------
# Checks


def default_lr(session, optimizer: str = "adam") -> float:
    """The optimizer's usual learning rate; for a demo model with Adam, its own training recipe's."""
    if optimizer == "adam" and session.spec.startswith("demo:"):
        from . import demo

        name = session.spec[len("demo:") :]
        if name in demo.NAMES:
            return float(demo.recipe(name)["lr"])
    return OPTIMIZERS[optimizer][1]


def check_settings(epochs, lr, optimizer: str, batch_size, session=None) -> tuple[int, float, int]:
    """Validate the common settings; returns (epochs, lr, batch size) with defaults filled in."""
    if optimizer not in OPTIMIZERS:
        raise PrunevizError(f"unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise PrunevizError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    if lr is None:
        lr = default_lr(session, optimizer) if session is not None else OPTIMIZERS[optimizer][1]
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise PrunevizError(f"the learning rate must be a number, got {lr!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise PrunevizError(f"the learning rate must be a finite number above 0, got {lr!r}")
    if batch_size is None:
        batch_size = DEFAULT_BATCH
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PrunevizError(f"the batch size must be a whole number of at least 1, got {batch_size!r}")
    return epochs, lr, batch_size


def training_data(session, data) -> tuple[EvalData, list[str]]:
    """Open the training data (a spec or EvalData; demo models default to ``demo:digits-train``),
    check it fits the model; returns it with any warnings (same data as the evaluation data)."""
    if data is None:
        if not session.spec.startswith("demo:"):
            raise PrunevizError("training needs data", hint="train_data")
        data = DEMO_TRAIN
    if isinstance(data, str):
        data = open_data(data)
    with session.lock:
        check_fits(session.model, data)
    warnings = []
    if session.data is not None and same_source(session.data.spec, data.spec):
        warnings.append(f"the training data {data.spec} is also the evaluation data: the held-out accuracy will be a training accuracy")
        session.notices.append(warnings[-1])
    return data, warnings


# ---------------------------------------------------------------------------------------------
# Shared parts


# ---------------------------------------------------------------------------------------------
# Verbs


def finetune(session, epochs: int = 1, lr: float | None = None, data=None, optimizer: str = "adam", batch_size: int | None = None, cancel: threading.Event | None = None, allow_divergence: bool = False):
    """Generator: train the kept weights ``epochs`` epochs; see :meth:`Session.finetune`."""
    session.check_writable()  # another job holds the session: refused at the call
    epochs, lr, batch_size = check_settings(epochs, lr, optimizer, batch_size, session)
    data, warnings = training_data(session, data)
    check_trainable(session)
    result = TrainResult("", lr=lr, optimizer=optimizer, batch_size=batch_size, data=data.spec, warnings=warnings)

    def label(r: Run) -> str:
        done = "" if r.epoch == epochs else f", stopped after {r.step} steps"
        return f"fine-tune {epochs} epoch{'s' if epochs != 1 else ''} (lr {format_lr(lr)}){done}"

    def body():
        run = Run(session, data, lr, optimizer, batch_size, cancel, allow_divergence)
        if run.watch is not None and run.watch.chance is not None:
            run.watch.start_accuracy = session.evaluate().accuracy  # what "fell to chance" is measured from
        return (yield from drive(run, run.epochs(epochs), label, result))

    return session.hold("fine-tune", body(), "Fine-tuning")


# ---------------------------------------------------------------------------------------------
# Re-initialisation


def check_reinitializable(session) -> None:
    if not any(callable(getattr(m, "reset_parameters", None)) for m in session.model.modules()):
        raise PrunevizError(f"cannot re-initialise {session.spec}: it holds no layer definitions to reset (open a state_dict)", hint="arch")


def reset(session, edit, seed: int) -> None:
    """Fresh values from each layer's own initialiser, seeded, written through ``edit`` (a
    :class:`~pruneviz.core.weight_edit.WeightEdit`); masks kept (pruned stay 0)."""
    masks = session.masks
    with session.lock, torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in session.model.modules():
            fn = getattr(m, "reset_parameters", None)
            if callable(fn):
                fn()
        for n in list(masks.orig):
            edit.write(n, masks.params[n])
        edit.changed()


def reinitialize(session, seed: int) -> str:
    """See :meth:`Session.reinitialize`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise PrunevizError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    check_reinitializable(session)
    label = f"re-initialise (seed {seed})"
    with session.writing():  # refused while a job runs; no job begins until it is recorded
        edit = session.edit_weights(label)
        try:
            reset(session, edit, seed)
        except BaseException:
            edit.abort()
            raise
        change = edit.commit(emit=False)
    if change is not None:
        session.changed.emit(change)
    return label


def complete(gen):
    """Drive a generator to its end and return its value: a training run's :class:`TrainResult`,
    or the report of :func:`pruneviz.core.prune_pipeline.run`."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
