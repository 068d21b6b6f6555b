"""Fine-tune and Train… in the app: a dialog for the settings with a live curve and Cancel, the
run in the worker (:class:`~pruneviz.qt.job_runner.JobRunner`), the curve in a tab beside the
histogram and the recovery as an arrow on the accuracy-vs-sparsity plot.

While a run trains it holds the session (:mod:`pruneviz.core.jobs`): the engine refuses every
other edit, and the window's editing controls are off with the reason in the status bar
(:mod:`.edit_pause`), since the run re-applies the masks it read at its start after every step.
The session's ``changed`` signal is paused meanwhile: the undo step the run records in the worker
is announced on the GUI thread when the worker has returned, so every view redraws from the GUI
thread only. A run that diverges (:mod:`pruneviz.core.divergence`) stops and puts the model back,
unless "keep going" is ticked.

:class:`TrainingUI` registers its actions (Fine-tune… in the Prune menu and the toolbar, Train…
in the Prune menu) and puts its tab beside the histogram; it takes the window (dialogs' parent,
closed: the run stops), the window state, the action registry, the evaluation runner and the
run loop (both stop while weights train), the accuracy panel (recovery arrows), the status
reports and the lower tabs.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, QEvent, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from pruneviz.core.schedules import DESCRIPTIONS, METHODS as SCHEDULE_METHODS, SCHEDULES
from pruneviz.core.training import OPTIMIZERS, TrainProgress, default_lr

from .job_runner import JobRunner
from .train_curve import CurveStore, TrainCurve

SCHEDULE_TEXT = {key: f"{key}: {text}" for key, text in DESCRIPTIONS.items()}


class TrainDialog(QDialog):
    """Settings, Run / Cancel / Close, progress and the live curve, for ``kind`` "finetune" or "train"."""

    def __init__(self, ui: "TrainingUI", kind: str, parent=None):
        super().__init__(parent)
        self.ui, self.kind = ui, kind
        s = ui.state.session
        self.setWindowTitle("Fine-tune" if kind == "finetune" else "Train with a pruning schedule")
        self.setWindowModality(Qt.WindowModality.ApplicationModal)
        form = QFormLayout()
        if kind == "train":
            self.schedule = QComboBox()
            for key in SCHEDULES:
                self.schedule.addItem(SCHEDULE_TEXT[key], key)
            self.schedule.setCurrentIndex(SCHEDULES.index("during"))
            form.addRow("Schedule", self.schedule)
            self.target = QDoubleSpinBox()
            self.target.setRange(0.0, 0.99)
            self.target.setSingleStep(0.05)
            self.target.setDecimals(2)
            self.target.setValue(0.9)
            form.addRow("Target sparsity", self.target)
            self.method = QComboBox()
            self.method.addItems(list(SCHEDULE_METHODS))
            form.addRow("Importance", self.method)
            self.scratch = QCheckBox("re-initialise the weights first (from scratch)")
            form.addRow("", self.scratch)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10_000)
        self.epochs.setValue(3)
        form.addRow("Epochs", self.epochs)
        self.optimizer = QComboBox()
        self.optimizer.addItems(list(OPTIMIZERS))
        form.addRow("Optimizer", self.optimizer)
        self.lr = QLineEdit(f"{default_lr(s):g}")
        self.lr.setToolTip("learning rate: a number above 0, e.g. 1e-3")
        self.optimizer.currentTextChanged.connect(lambda name: self.lr.setText(f"{default_lr(ui.state.session, name):g}"))
        form.addRow("Learning rate", self.lr)
        self.data = QLineEdit("demo:digits-train" if s.spec.startswith("demo:") else "")
        self.data.setPlaceholderText("training data: .npz, .pt, demo:digits-train, package.module:function")
        form.addRow("Training data", self.data)
        self.allow_divergence = QCheckBox("keep going if the loss runs away")
        self.allow_divergence.setToolTip("by default a run whose loss (mean of 8 steps) rises above 10× its start and a uniform guess's, or whose accuracy falls to chance, stops and the model is put back")
        form.addRow("", self.allow_divergence)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.message = QLabel(" ")
        self.message.setWordWrap(True)
        self.curve = TrainCurve(ui.store)
        self.curve.setMinimumSize(460, 220)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(ui.cancel)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.run_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.curve, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.message)
        lay.addLayout(buttons)

    def settings(self) -> dict:
        """The dialog's settings as keyword arguments; a bad learning rate raises ValueError."""
        text = self.lr.text().strip()
        try:
            lr = float(text)
        except ValueError:
            raise ValueError(f"the learning rate must be a number, got {text!r}") from None
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"the learning rate must be a finite number above 0, got {text}")
        out = {"epochs": self.epochs.value(), "lr": lr, "optimizer": self.optimizer.currentText(), "data": self.data.text().strip() or None, "allow_divergence": self.allow_divergence.isChecked()}
        if self.kind == "train":
            out |= {"schedule": self.schedule.currentData(), "target_sparsity": round(self.target.value(), 4), "method": self.method.currentText(), "from_scratch": self.scratch.isChecked()}
        return out

    def run(self) -> None:
        try:
            kw = self.settings()
        except ValueError as exc:
            self.show_message(str(exc), error=True)
            return
        if self.ui.start(self.kind, kw, self):
            self.set_running(True)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.close_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.show_message("training…")

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c0392b;" if error else "")
        self.message.setText(text)

    def closeEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        if self.ui.jobs.busy:  # the run must end first (Cancel); the window stays consistent
            ev.ignore()
            return
        super().closeEvent(ev)

    def reject(self) -> None:  # Esc
        if not self.ui.jobs.busy:
            super().reject()


class TrainingUI(QObject):
    """Runs fine-tuning and schedules of the window's session in the worker; owns the curves."""

    def __init__(self, window, state, *, actions, runner, loop, acc, status, tabs):
        super().__init__(window)
        self.window = window
        self.state, self.runner, self.loop, self.acc, self.status = state, runner, loop, acc, status
        self.jobs = JobRunner(self)
        self.store = CurveStore(self)
        self.curve = TrainCurve(self.store)
        self.dialog: TrainDialog | None = None
        self.arrows: list = []
        self._paused = None
        self._start: tuple[float | None, float] | None = None
        self._kind = ""
        self._kw: dict = {}
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.idle.connect(self._on_idle)
        window.installEventFilter(self)
        tabs.addTab(self.curve, "Training")
        actions.menu("prune").addSeparator()
        self.act_finetune = actions.add("finetune", "&Fine-tune…", lambda: self.open_dialog("finetune"), menu="prune",
                                        shortcut="Ctrl+Shift+F", tip="Train the kept weights a few epochs; pruned weights stay 0 (one undo step)")
        actions.toolbar.addSeparator()
        actions.toolbar.addAction(self.act_finetune)
        self.act_train = actions.add("train", "T&rain…", lambda: self.open_dialog("train"), menu="prune",
                                     tip="Prune before, during or after training, or prune and regrow (one undo step)")

    # ------------------------------------------------------------------ dialogs
    def open_dialog(self, kind: str) -> TrainDialog:
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
        self.dialog = TrainDialog(self, kind, self.window)
        self.dialog.show()
        return self.dialog

    # ---------------------------------------------------------------------- runs
    def start(self, kind: str, kw: dict, dialog: TrainDialog | None = None) -> bool:
        """Start a fine-tune (``kind`` "finetune") or schedule ("train") with settings ``kw``."""
        s = self.state.session
        if self.jobs.busy:
            return False
        self.runner.cancel()  # no evaluation reads the weights while they train
        self.loop.stop()  # nor does a Run until… loop edit them
        s.changed.pause()  # the undo step is announced on the GUI thread when the run ends
        self._paused = s
        self._kind, self._kw = kind, dict(kw)
        verb = s.finetune if kind == "finetune" else s.train
        name, doing = ("fine-tune", "Fine-tuning") if kind == "finetune" else (f"training schedule '{kw.get('schedule', '')}'", "Training")

        def factory(cancel):
            inner = verb(cancel=cancel, **kw)  # bad settings raise here: reported by ``failed``
            return s.hold(name, self._with_start(s, inner), doing)  # the start point measured inside the job too

        self.jobs.start(kind, factory, throttle_ms=50)
        return True

    @staticmethod
    def _with_start(s, inner):
        """Evaluate the starting point first (the pruned accuracy the recovery starts from)."""
        acc = s.evaluate(incremental=False).accuracy if s.data is not None else None
        yield ("start", acc, s.sparsity())
        return (yield from inner)

    def cancel(self) -> None:
        self.jobs.cancel()

    def _steps_per_epoch(self) -> int:
        from pruneviz.core.data import open_data
        from pruneviz.core.training import DEFAULT_BATCH, DEMO_TRAIN

        try:
            n = len(open_data(self._kw.get("data") or DEMO_TRAIN))
        except Exception:  # noqa: BLE001 - only the x axis of the live curve depends on it
            return 1
        return max(1, math.ceil(n / (self._kw.get("batch_size") or DEFAULT_BATCH)))

    def _on_progress(self, name: str, item) -> None:
        if isinstance(item, tuple) and item and item[0] == "start":
            self._start = (item[1], item[2])
            label = "fine-tune" if self._kind == "finetune" else f"train {self._kw.get('schedule', '')}"
            self.store.begin(label, item[1], item[2], self._steps_per_epoch())
            return
        if isinstance(item, TrainProgress):
            self.store.add(item)
            if self.dialog is not None:
                total = max(1, self._kw.get("epochs", 1) * self.store.steps_per_epoch)
                self.dialog.progress.setValue(min(100, int(100 * item.step / total)))
                acc = "" if item.accuracy is None else f", held-out accuracy {item.accuracy:.2%}"
                self.dialog.show_message(f"epoch {item.epoch}, step {item.step}: loss {item.loss:.4f}, sparsity {item.sparsity:.1%}{acc}")

    def _on_finished(self, name: str, result) -> None:
        self.store.finish(result.label, result.curve)
        end = result.curve[-1]["accuracy"] if result.curve else None
        if self._kind == "finetune" and self._start is not None and self._start[0] is not None and end is not None:
            self.arrows.append(self.acc.add_recovery_arrow(self._start[1], self._start[0], end))
        text = result.label + (f": held-out accuracy {self._start[0]:.2%} → {end:.2%}" if end is not None and self._start and self._start[0] is not None else "")
        for w in result.warnings:
            text += f" — warning: {w}"
        if self.dialog is not None:
            self.dialog.progress.setValue(100)
            self.dialog.show_message(text)
        self.status.bar.showMessage(text, 15_000)

    def _on_failed(self, name: str, message: str) -> None:
        self.store.drop_live()
        if self.dialog is not None:
            self.dialog.show_message(message, error=True)
        self.status.bar.showMessage(message, 15_000)

    def _on_cancelled(self, name: str) -> None:
        s = self.state.session
        label = s.history.labels[s.history.index - 1] if s.history.index else "cancelled"
        self.store.finish(label + " (cancelled)")
        if self.dialog is not None:
            self.dialog.show_message(f"cancelled: the completed steps are one undo step ({label})")

    def _on_idle(self) -> None:
        if self.dialog is not None:
            self.dialog.set_running(False)
        s, self._paused = self._paused, None
        if s is not None:
            s.changed.resume()  # the recorded step reaches history, views and evaluation now

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self.window and ev.type() == QEvent.Type.Close:
            self.jobs.shutdown(10_000)  # the run records its step in the worker before the window goes
        return False
