"""The registry of lesson actions (:data:`ACTIONS`, filled by :func:`action`) and the small
parts the actions share: the settings they all offer and recording an evaluation as a figure.

The actions themselves are in :mod:`.lesson_actions` (basic verbs, the loop, knockout),
:mod:`.lesson_sweeps` (sweeps, scopes, sensitivity) and :mod:`.lesson_training` (fine-tuning,
schedules, compensation); importing :mod:`.lesson_actions` registers them all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from . import units
from .lesson_format import Setting

__all__ = ["Action", "ACTIONS", "action", "pct", "cancelled", "record_eval", "named", "METHODS", "LEVEL", "NAME"]


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


def cancelled(cancel: threading.Event | None) -> bool:
    """True once the lesson run asked the action to stop."""
    return cancel is not None and cancel.is_set()


METHODS = units.all_methods()  # the registry's lists: front ends never keep their own
LEVEL = Setting(float, low=0.0, high=1.0)
NAME = Setting(str)


def record_eval(run, name: str | None) -> float:
    """Evaluate; record the accuracy as figure ``name`` and the loss as ``name_loss`` (when named)."""
    result = run.session.evaluate()
    if name:
        run.record(name, result.accuracy)
        run.record(f"{name}_loss", result.loss)
    return result.accuracy


def named(key: str = "record") -> Callable[[dict], list[str]]:
    """The figures an action records under the name in setting ``key``: NAME and NAME_loss."""
    return lambda step: [step[key], f"{step[key]}_loss"] if step.get(key) else []
