"""Pruning schedules while training, each a few lines over the shared parts of
:mod:`pruneviz.core.training` (:meth:`Run.epochs`, :meth:`Run.prune_to`, :meth:`Run.regrow`):

* ``before``: prune at initialisation (magnitude, or SNIP's |w·∂L/∂w|), then train;
* ``during``: gradual magnitude pruning on Zhu & Gupta's (2017) cubic schedule;
* ``after``: train dense, prune once, fine-tune;
* ``regrow``: RigL (Evci et al. 2020): prune, then drop the smallest magnitudes and regrow where
  the dense gradient is largest, at constant sparsity; ``granet`` (Liu et al. 2021) adds a
  gradual start.
"""

from __future__ import annotations

import math
import threading

from .errors import PrunevizError
from .training import Run, TrainResult, check_reinitializable, check_settings, check_trainable, drive, format_lr, reset, training_data

SCHEDULES = ("before", "during", "after", "regrow", "granet")
METHODS = ("magnitude", "snip")
#: one line per schedule, for ``--help`` and the app's combo (front ends keep no list of their own)
DESCRIPTIONS = {
    "before": "prune at initialisation, then train",
    "during": "gradual (Zhu & Gupta cubic schedule)",
    "after": "train dense, prune once, fine-tune",
    "regrow": "prune, then drop and regrow (RigL)",
    "granet": "regrow with a gradual start",
}


def cubic(s_i: float, s_f: float, t: int, n: int) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i − s_f)(1 − t/n)³ for t in [0, n]."""
    return s_f + (s_i - s_f) * (1.0 - min(t, n) / n) ** 3


def _before(run: Run, target, epochs, method):
    run.prune_to(target, method)
    yield from run.epochs(epochs)


def _after(run: Run, target, epochs, method):
    dense = epochs // 2
    yield from run.epochs(dense)
    if run.cancelled:
        return
    run.prune_to(target, method)
    yield from run.epochs(epochs - dense)


def _during(run: Run, target, epochs, method):
    end, every, start = _ramp(run, epochs)

    def on_step(r: Run):
        if r.step <= end and (r.step % every == 0 or r.step == end):
            r.prune_to(cubic(start, target, r.step, end), method)

    yield from run.epochs(epochs, on_step)


def _regrow(run: Run, target, epochs, method, gradual=False):
    end, every, start = _ramp(run, epochs)
    if not gradual:
        run.prune_to(target, method)

    def on_step(r: Run):
        if gradual and r.step <= end and (r.step % every == 0 or r.step == end):
            r.prune_to(cubic(start, target, r.step, end), method)

    def after_backward(r: Run):
        if 0 < r.step < end and r.step % every == 0:
            r.regrow(0.3 * (1 + math.cos(math.pi * r.step / end)) / 2)  # RigL's cosine-decayed fraction

    run.after_backward = after_backward
    yield from run.epochs(epochs, on_step)


def _ramp(run: Run, epochs: int) -> tuple[int, int, int]:
    """(last step that prunes or regrows, steps between updates, starting sparsity)."""
    total = epochs * run.steps_per_epoch
    end = max(1, int(0.75 * total))
    return end, max(1, run.steps_per_epoch // 4), run.s.sparsity()


_SCHEDULES = {"before": _before, "after": _after, "during": _during, "regrow": _regrow, "granet": lambda r, t, e, m: _regrow(r, t, e, m, gradual=True)}


def train(session, schedule: str, target_sparsity: float, epochs: int, method: str = "magnitude", lr: float | None = None, data=None, from_scratch: bool = False, cancel: threading.Event | None = None, optimizer: str = "adam", batch_size: int | None = None, allow_divergence: bool = False):
    """Generator: a pruning schedule while training; see :meth:`Session.train`. Settings are
    checked at the call; the run (re-initialisation included) starts at the first ``next()``,
    holding the session until it ends."""
    session.check_writable()
    if schedule not in _SCHEDULES:
        raise PrunevizError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    if method not in METHODS:
        raise PrunevizError(f"unknown method {method!r} for a schedule: use one of {', '.join(METHODS)}")
    try:
        target = float(target_sparsity)
    except (TypeError, ValueError):
        raise PrunevizError(f"the target sparsity must be a number from 0 to 1, got {target_sparsity!r}") from None
    if not 0.0 <= target < 1.0:
        raise PrunevizError(f"the target sparsity must be from 0 up to (not including) 1, got {target_sparsity!r}")
    if target < session.sparsity() - 0.005 and schedule != "after":  # per-layer rounding leaves a little above
        raise PrunevizError(f"the model is already {session.sparsity():.1%} sparse, above the target {target:.1%}: restore weights or raise the target")
    epochs, lr, batch_size = check_settings(epochs, lr, optimizer, batch_size, session)
    data, warnings = training_data(session, data)
    if from_scratch:
        check_reinitializable(session)
    check_trainable(session)
    result = TrainResult("", lr=lr, optimizer=optimizer, batch_size=batch_size, data=data.spec, warnings=warnings)

    def label(r: Run) -> str:
        done = "" if r.epoch == epochs else f", stopped after {r.step} steps"
        scratch = " from scratch" if from_scratch else ""
        return f"train {schedule} to {target:.0%} ({method}, {epochs} epoch{'s' if epochs != 1 else ''}, lr {format_lr(lr)}){scratch}{done}"

    def steps(run: Run):
        if from_scratch:
            reset(session, run.edit, session.seed)  # through the run's edit: its undo step undoes this too
        yield from _SCHEDULES[schedule](run, target, epochs, method)

    def body():
        run = Run(session, data, lr, optimizer, batch_size, cancel, allow_divergence)
        return (yield from drive(run, steps(run), label, result))

    return session.hold(f"training schedule '{schedule}'", body(), "Training")
