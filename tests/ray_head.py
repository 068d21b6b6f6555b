"""A Ray cluster in a separate process for the tests and benchmarks of ``--eval-on``: the
package's :class:`~pruneviz.core.ray_local.LocalHead` (what ``--eval-on local`` starts), with two
CPUs, so that a test's cluster is the same as the one a user's ``local`` gets.

:meth:`RayHead.kill` ends exactly this cluster (every process of its process session) and never
another Ray on the machine; the cluster's workers import ``pruneviz`` from this checkout.
"""

from __future__ import annotations

from pathlib import Path

from pruneviz.core.ray_local import LocalHead, free_port, session_processes

ROOT = str(Path(__file__).resolve().parents[1])

__all__ = ["ROOT", "RayHead", "free_port", "session_processes"]


class RayHead(LocalHead):
    """``ray start --head`` in a session of its own, two CPUs unless told."""

    def __init__(self, num_cpus: int = 2, client_port: int | None = None):
        super().__init__(num_cpus, client_port)
