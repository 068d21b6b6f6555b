"""The node-pruning loop: remove the least important neuron, re-evaluate, stop on a condition.

One copy of its rule for every front end. :func:`run` is the loop as a generator (what
:meth:`Session.prune_loop <pruneviz.core.session.Session.prune_loop>` returns and ``pruneviz
loop`` prints); the app's Run until drives the same :class:`PruneLoop` from its event loop,
because there the evaluation of each step arrives later, from a worker::

    loop = PruneLoop(session, "magnitude", min_accuracy=0.9, target_sparsity=0.5)
    while loop.stop_before() is None and (target := loop.step()) is not None:
        if loop.judge(session.evaluate()) is not None:
            break
    loop.why  # "accuracy 89.72% fell below 90.00%; that last step was undone"

The conditions, in the order they are checked: the weight sparsity reached ``target_sparsity``;
``max_steps`` steps were taken; no neuron is left to remove; the evaluation after a step fell
below ``min_accuracy`` (that step is undone, so the session ends on the last step that met the
bound). Each removal is its own undo step.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import PrunevizError


class PruneLoop:
    """The loop's state and rule; ``why`` says why it stopped (None while it runs)."""

    def __init__(self, session, method: str = "magnitude", min_accuracy: float | None = None, target_sparsity: float | None = None, max_steps: int = 10_000, layers=None):
        if min_accuracy is not None and session.data is None:
            raise PrunevizError("an accuracy bound needs evaluation data", hint="data")
        self.session, self.method, self.layers = session, method, layers
        self.min_accuracy, self.target_sparsity, self.max_steps = min_accuracy, target_sparsity, max_steps
        self.steps = 0
        self.why: str | None = None

    def stop_before(self) -> str | None:
        """Why the loop ends before its next step (and ``why`` set to it), or None to go on."""
        s = self.session
        if self.target_sparsity is not None and s.sparsity() >= self.target_sparsity:
            self.why = f"sparsity reached {s.sparsity():.1%}"
        elif self.steps >= self.max_steps:
            self.why = "step limit reached"
        return self.why

    def step(self) -> tuple[str, int] | None:
        """Remove the least important neuron (one undo step); None when none is left (``why`` says so)."""
        target = self.session.step(self.method, self.layers)
        if target is None:
            self.why = "no neuron left to remove"
            return None
        self.steps += 1
        return target

    def judge(self, result) -> str | None:
        """The evaluation ``result`` of the step just taken (None without data): undo that step and
        return why when it fell below the bound, else None."""
        if self.min_accuracy is not None and result is not None and result.accuracy < self.min_accuracy:
            self.session.undo()
            self.why = f"accuracy {result.accuracy:.2%} fell below {self.min_accuracy:.2%}; that last step was undone"
        return self.why


def run(session, method: str = "magnitude", min_accuracy: float | None = None, target_sparsity: float | None = None, max_steps: int = 10_000, layers=None) -> Iterator:
    """The classic loop as a generator (``Session.prune_loop``): step, re-evaluate, stop when
    accuracy falls below ``min_accuracy`` (that last step is undone), weight sparsity reaches
    ``target_sparsity``, ``max_steps`` were taken or no neuron is left. Yields each (removed
    neuron, evaluation or None without data); each removal is its own undo step."""
    loop = PruneLoop(session, method, min_accuracy, target_sparsity, max_steps, layers)
    while loop.stop_before() is None and (target := loop.step()) is not None:
        result = session.evaluate() if session.data is not None else None
        yield target, result
        if loop.judge(result) is not None:
            return
