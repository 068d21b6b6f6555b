"""The history's words for a prune: which amount, unit, criterion, and which layers.

``prune_label(0.3, "layer", "neuron", "magnitude", ["fc1", "fc2"])`` ->
``"prune 30% neurons in fc1, fc2 by magnitude"``; a global ranking says how many layers it
ranked over: ``"prune 50% weights by magnitude (global, 3 layers)"``. Up to :data:`NAMED`
layers are named; more are counted (``"in 12 layers"``), so a label stays one short line.
"""

from __future__ import annotations

from collections.abc import Iterable

NAMED = 3  #: layers named in a label; more are counted


def layers_phrase(layers: Iterable[str]) -> str:
    """``"fc1, fc2"`` for a few layers, ``"12 layers"`` for many."""
    names = list(layers)
    if 0 < len(names) <= NAMED:
        return ", ".join(names)
    return f"{len(names)} layer{'s' if len(names) != 1 else ''}"


def prune_label(amount: float, scope: str, granularity: str, method: str, layers: Iterable[str], how: str | None = None) -> str:
    """One history label for a prune of ``amount`` of the ``granularity`` units of ``layers``.

    ``how`` replaces ``"by METHOD"`` (compensated prunes say ``"by SparseGPT"``)."""
    names = list(layers)
    by = how or f"by {method}"
    if scope == "global":
        return f"prune {amount:.0%} {granularity}s {by} (global, {len(names)} layer{'s' if len(names) != 1 else ''})"
    return f"prune {amount:.0%} {granularity}s in {layers_phrase(names)} {by}"
