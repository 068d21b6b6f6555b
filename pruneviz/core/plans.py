"""Plans: the branches of the history tree, switched between, renamed and compared.

The tree itself lives in :class:`~pruneviz.core.history.History`; these are the session verbs
over it. Switching plans undoes to the steps both plans share and redoes down the other plan,
so every switch is made of ordinary undo and redo steps (bit-identical, journaled).
:func:`summaries` measures every plan on a copy of the session (nothing is switched): its end
and its curve, a point after every step from the start, each step of the tree measured once.
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


def points_to_measure(session) -> int:
    """How many points :func:`summaries` measures: the start and every step of the tree, each once."""
    return 1 + len(session.history.all_steps())


def summaries(session, cancel: threading.Event | None = None) -> Generator[dict, None, list[dict]]:
    """Measure every plan on a copy of the session (nothing is switched): its end, and its curve.

    Returns one row per plan (in :meth:`History.plans` order): ``{"name", "steps", "current",
    "sparsity", "params", "accuracy", "loss", "per_class", "layer_sparsity", "curve"}``, the
    figures at the plan's end; ``curve`` is ``[{"id", "step", "label", "sparsity", "params",
    "accuracy", "loss"}]``, one point after every step of the plan's path, from step 0 (the
    start, label ``"start"``) to its end. Accuracy, loss and per-class figures are None without
    data. Steps that plans share are measured once (the tree is walked depth first, every node
    evaluated once: :func:`points_to_measure` of them) and carry the same ``id`` in every curve, so
    the last shared ``id`` of two curves is where the plans branch. Steps that changed weights
    (fine-tuning, compensation) are replayed with their values.

    Yields, as it goes, ``{"kind": "point", "measured", "total", "plans", "point"}`` after each
    measured point (``plans``: the names of the plans through it) and ``{"kind": "plan",
    "measured", "total", "row"}`` when a plan's end is reached. The copy is walked back to the
    session's state when the generator ends, is closed, is cancelled or fails.

    Example::

        rows = pruneviz.core.analysis.collect(session.plan_summaries())
        [(p["step"], p["accuracy"]) for p in rows[0]["curve"]]
    """
    h = session.history
    with session.lock:
        # the tree as it is now, with the copy: an edit made while this runs (the app stays
        # usable) adds nodes and moves a growing plan's name, and is not measured
        probe = Probe(session, need_data=False)
        start, tip = h.position, h.tip
        order = list(_depth_first(h.root))
        names = {leaf: leaf.name for leaf in h.plans()}
    cursor = _Cursor(probe, start)
    through: dict[Node, list[str]] = {}
    for leaf, name in names.items():
        for node in [h.root, *leaf.path()]:
            through.setdefault(node, []).append(name)
    total = len(order)
    points: dict[Node, dict] = {}
    rows: list[dict] = []
    try:
        for node, depth in order:
            if cancel is not None and cancel.is_set():
                break
            cursor.go(node)
            point = {"id": len(points), "step": depth, "label": "start" if node.step is None else node.step.label, "sparsity": probe.sparsity(),
                     "params": probe.params_remaining(), "accuracy": None, "loss": None}
            probe.cache.store = _worth_storing(probe, node)
            result = probe.evaluate() if probe.x is not None else None
            if result is not None:
                point.update(accuracy=result.accuracy, loss=result.loss)
            points[node] = point
            yield {"kind": "point", "measured": len(points), "total": total, "plans": list(through[node]), "point": dict(point)}
            if node not in names:
                continue
            row = {"name": names[node], "steps": depth, "current": node is tip, "sparsity": point["sparsity"], "params": point["params"],
                   "layer_sparsity": {n: probe.masks.sparsity(n) for n in probe.layer_names}, "accuracy": point["accuracy"], "loss": point["loss"],
                   "per_class": None if result is None else result.per_class, "curve": [dict(points[n]) for n in [h.root, *node.path()]]}
            rows.append(row)
            yield {"kind": "plan", "measured": len(points), "total": total, "row": row}
    finally:
        cursor.go(start)
    return rows


def _first_child(probe: Probe, step) -> int | None:
    """The earliest Sequential child a step can change (None: any, or it changed weights)."""
    if step.weights is not None or not step.flips:
        return None
    firsts = [probe.child_of.get((f.store, f.layer)) for f in step.flips]
    return None if any(c is None for c in firsts) else min(firsts)


def _worth_storing(probe: Probe, node: Node) -> bool:
    """Copy activations into the cache while evaluating ``node`` only if a step below it leaves a
    layer with weights in front of what it changes: only then does the next evaluation start
    later from them. (A global prune changes the first layer: copying would double the cost.)"""
    weighted = [c for c in probe.child_of.values() if c is not None]
    if not weighted:
        return False
    first = min(weighted)
    return any((k := _first_child(probe, child.step)) is not None and k > first for child in node.children)


def _depth_first(root: Node):
    """``(node, depth)`` from ``root`` down, children in order: leaves come as :meth:`Node.leaves` lists them."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children))


class _Cursor:
    """Where in the tree the probe is; :meth:`go` moves it by undoing and redoing single steps."""

    def __init__(self, probe: Probe, node: Node):
        self.probe, self.view, self.node = probe, _ProbeValues(probe), node

    def go(self, target: Node) -> None:
        here, there = self.node.path(), target.path()
        k = 0
        while k < min(len(here), len(there)) and here[k] is there[k]:
            k += 1
        for node in reversed(here[k:]):
            _walk(self.probe, self.view, [node], [])
            self.node = node.parent
        for node in there[k:]:
            _walk(self.probe, self.view, [], [node])
            self.node = node


class _ProbeValues:
    """What a weight delta (:class:`~pruneviz.core.deltas.WeightDelta`) writes through: the probe's
    own masks, model and cache, so fine-tuned or compensated steps replay on the copy too."""

    def __init__(self, probe: Probe):
        self.masks, self.model, self.cache = probe.masks, probe.model, probe.cache
        self.editable = probe.editable  # values are rebuilt and invalidated the session's way
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


def copy_at_start(session) -> Probe:
    """A copy of the session with every step of the current path undone, weight changes
    included: the model as it was loaded (the session is not touched)."""
    with session.lock:
        here = session.history.nodes[: session.history.index]
        probe = Probe(session, need_data=False)
    _walk(probe, _ProbeValues(probe), list(reversed(here)), [])
    return probe
