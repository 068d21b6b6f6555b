""":class:`PruneSpec`: what the last bulk prune was asked, for reports.

A leaf type of its own, so that the strategies the Session calls (allocation, attention heads,
compensation) can build one without importing the Session back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PruneSpec"]


@dataclass(frozen=True)
class PruneSpec:
    """The arguments of the last bulk prune, for reports."""

    amount: float
    scope: str
    granularity: str
    method: str
    layers: tuple[str, ...]
    #: what else a report should say (``scope="sensitivity"``: the plans compared and the choice)
    detail: dict | None = None
