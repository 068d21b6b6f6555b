"""Run until…: the node-pruning loop (step → evaluate → check) driven by the event loop.

Each iteration calls :meth:`Session.step` (one undo step), waits for the EvalRunner's result for
exactly that history step (whenever there is data, whatever the stop condition), and decides: stop when accuracy falls below the bound (that last
step is undone, as in :meth:`Session.prune_loop`) or when sparsity reaches the target. Nothing
blocks: the GUI stays responsive and Stop/Cancel ends the loop at the next decision.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from pruneviz.core.errors import PrunevizError

from .hints import error_text


class RunLoop(QObject):
    """Drives the step/evaluate loop for a :class:`MainWindow`."""

    stopped = Signal(str)  #: why it stopped

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.running = False
        self.args = None
        self.steps = 0

    def start(self, args) -> None:
        """Start the loop with :class:`~pruneviz.qt.controls.RunArgs`."""
        if self.running:
            return
        self.args, self.steps, self.running = args, 0, True
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
        s, a = self.w.session, self.args
        if a.target_sparsity is not None and s.sparsity() >= a.target_sparsity:
            return self.stop(f"sparsity reached {s.sparsity():.1%}")
        if self.steps >= a.max_steps:
            return self.stop("step limit reached")
        # data-driven scores are computed in the worker, then the step runs (see Editing.scored)
        if not self.w.editing.scored(a.method, "neuron", self._step_now):
            self.stop("busy")

    def _step_now(self) -> None:
        if not self.running:
            return
        s, a = self.w.session, self.args
        try:
            target = s.step(a.method, a.layers)
        except PrunevizError as exc:
            self.stop("error")
            self.w.status.show_error(error_text(exc))
            return
        if target is None:
            return self.stop("no neuron left to remove")
        self.steps += 1
        self.w.statusBar().showMessage(f"Run until: step {self.steps}: removed neuron {target[1]} of {target[0]}")
        if s.data is None:
            QTimer.singleShot(0, self._next)  # nothing to wait for
        # with data, every step waits for its evaluation (also with only a sparsity target), so
        # the accuracy curve gets a point per step instead of a straight line to the last one

    def _on_result(self, req, r) -> None:
        s, a = self.w.session, self.args
        if not self.running or req.step != s.history.index:
            return
        if a.min_accuracy is not None and r.accuracy < a.min_accuracy:
            s.undo()
            return self.stop(f"accuracy {r.accuracy:.2%} fell below {a.min_accuracy:.2%}; that last step was undone")
        QTimer.singleShot(0, self._next)
