"""Plans: the branches of the history tree, switched between, renamed and compared.

The tree itself lives in :class:`~pruneviz.core.history.History`; these are the session verbs
over it. Switching plans undoes to the steps both plans share and redoes down the other plan,
so every switch is made of ordinary undo and redo steps (bit-identical, journaled).
:func:`summaries` measures every plan on a copy of the session (nothing is switched).
"""

from __future__ import annotations

import threading
from typing import Generator

from .errors import PrunevizError
from .history import Change, Node
from .workers import Probe


def _leaf(session, name: str) -> Node:
    try:
        return session.history.plan(name)
    except KeyError:
        names = ", ".join(p.name for p in session.history.plans())
        raise PrunevizError(f"no plan named {name!r}; plans are: {names}") from None


def switch_plan(session, name: str) -> None:
    """Go to the end of plan ``name``: undo to the steps it shares with the current path, make its
    path the current one, redo to its end."""
    leaf = _leaf(session, name)
    h = session.history
    while h.index > h.shared(leaf):
        session.undo()
    h.switch_path(leaf)
    session.changed.emit(Change(f"switch to {name}", frozenset(), "plan"))
    while h.can_redo:
        session.redo()


def rename_plan(session, old: str, new: str) -> None:
    _leaf(session, old)
    try:
        session.history.rename(old, new)
    except ValueError as exc:
        raise PrunevizError(str(exc)) from None
    session.changed.emit(Change(f"rename {old} to {new}", frozenset(), "plan"))


def plan_table(session) -> list[dict]:
    """``[{"name", "steps", "labels", "current"}]`` for every plan, without measuring anything."""
    h = session.history
    return [{"name": leaf.name, "steps": len(leaf.path()), "labels": [n.step.label for n in leaf.path()], "current": leaf is h.tip} for leaf in h.plans()]


def summaries(session, cancel: threading.Event | None = None) -> Generator[dict, None, list[dict]]:
    """Measure the end of every plan on a copy of the session: yields and returns ``{"name",
    "steps", "current", "sparsity", "params", "accuracy", "loss", "per_class",
    "layer_sparsity"}`` per plan (accuracy and loss are None without data)."""
    h = session.history
    probe = Probe(session, need_data=False)
    view = _ProbeValues(probe)
    here = h.nodes[: h.index]
    out = []
    for leaf in h.plans():
        if cancel is not None and cancel.is_set():
            break
        path = leaf.path()
        shared = 0
        for a, b in zip(here, path):
            if a is not b:
                break
            shared += 1
        back, forth = list(reversed(here[shared:])), path[shared:]
        _walk(probe, view, back, forth)
        try:
            row = {"name": leaf.name, "steps": len(path), "current": leaf is h.tip, "sparsity": probe.sparsity(), "params": probe.params_remaining(),
                   "layer_sparsity": {n: probe.masks.sparsity(n) for n in probe.layer_names}, "accuracy": None, "loss": None, "per_class": None}
            if probe.x is not None:
                r = probe.evaluate()
                row.update(accuracy=r.accuracy, loss=r.loss, per_class=r.per_class)
        finally:
            _walk(probe, view, list(reversed(forth)), list(reversed(back)))
        out.append(row)
        yield row
    return out


class _ProbeValues:
    """What a weight delta (:class:`~pruneviz.core.deltas.WeightDelta`) writes through: the probe's
    own masks, model and cache, so fine-tuned or compensated steps replay on the copy too."""

    def __init__(self, probe: Probe):
        self.masks, self.model, self.cache = probe.masks, probe.model, probe.cache
        self.lock = threading.RLock()


def _walk(probe: Probe, view: _ProbeValues, undo: list[Node], redo: list[Node]) -> None:
    """Undo the steps of ``undo`` (in the order given), then redo those of ``redo``, on the probe:
    flips, and the values of steps that changed weights (undo: values first, as Session does)."""
    for node in undo:
        if node.step.weights is not None:
            node.step.weights.apply(view)
        probe.apply(list(reversed(node.step.flips)))
    for node in redo:
        probe.apply(node.step.flips)
        if node.step.weights is not None:
            node.step.weights.apply(view)
