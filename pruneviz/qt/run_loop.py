"""Run until…: the node-pruning loop (step → evaluate → check) driven by the event loop.

The rule is the engine's :class:`~pruneviz.core.prune_loop.PruneLoop`, the one
:meth:`Session.prune_loop` runs: each iteration asks it whether to stop, lets it take a step (one
undo step), waits for the live evaluation of exactly that history step (whenever there is data,
whatever the stop condition) and hands the result to its judgement (below the bound: that last
step is undone). Only the waiting differs: nothing blocks, the GUI stays responsive and
Stop/Cancel ends the loop at the next decision.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from pruneviz.core.errors import PrunevizError
from pruneviz.core.prune_loop import PruneLoop

from .hints import error_text


class RunLoop(QObject):
    """Drives the step/evaluate loop for a :class:`MainWindow`."""

    stopped = Signal(str)  #: why it stopped

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.running = False
        self.args = None
        self.loop: PruneLoop | None = None

    @property
    def steps(self) -> int:
        """Steps taken by the current (or last) run."""
        return self.loop.steps if self.loop is not None else 0

    def start(self, args) -> None:
        """Start the loop with :class:`~pruneviz.qt.controls.RunArgs`."""
        if self.running:
            return
        try:
            self.loop = PruneLoop(self.w.session, args.method, args.min_accuracy, args.target_sparsity, args.max_steps, args.layers)
        except PrunevizError as exc:
            self.w.status.show_error(error_text(exc))
            return
        self.args, self.running = args, True
        self.w.runner.finished.connect(self._on_result)
        self.w.actions["stop"].setEnabled(True)
        self.w.actions["run"].setEnabled(False)
        QTimer.singleShot(0, self._next)

    def stop(self, why: str = "stopped") -> None:
        if not self.running:
            return
        self.running = False
        try:
            self.w.runner.finished.disconnect(self._on_result)
        except (RuntimeError, TypeError):
            pass
        self.w.actions["stop"].setEnabled(False)
        self.w.actions["run"].setEnabled(self.w.session.neuron_pruning)
        self.w.statusBar().showMessage(f"Run until: {why} after {self.steps} step{'s' if self.steps != 1 else ''}", 8000)
        self.stopped.emit(why)

    def _next(self) -> None:
        if not self.running:
            return
        a = self.args
        if self.loop.stop_before() is not None:
            return self.stop(self.loop.why)
        # data-driven scores are computed in the worker, then the step runs (see Editing.scored)
        if not self.w.editing.scored(a.method, "neuron", self._step_now):
            self.stop("busy")

    def _step_now(self) -> None:
        if not self.running:
            return
        s = self.w.session
        try:
            target = self.loop.step()
        except PrunevizError as exc:
            self.stop("error")
            self.w.status.show_error(error_text(exc))
            return
        if target is None:
            return self.stop(self.loop.why)
        self.w.statusBar().showMessage(f"Run until: step {self.steps}: removed neuron {target[1]} of {target[0]}")
        if s.data is None:
            QTimer.singleShot(0, self._next)  # nothing to wait for
        # with data, every step waits for its evaluation (also with only a sparsity target), so
        # the accuracy curve gets a point per step instead of a straight line to the last one

    def _on_result(self, req, r) -> None:
        s = self.w.session
        if not self.running or req.step != s.history.index:
            return
        if self.loop.judge(r) is not None:
            return self.stop(self.loop.why)
        QTimer.singleShot(0, self._next)
