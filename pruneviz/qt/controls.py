"""Dialogs that collect arguments for Session verbs: Prune… and Run until…."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
)
from PySide6.QtCore import Qt

from pruneviz.core import units


def methods(granularity: str, has_data: bool) -> list[str]:
    """Scoring methods usable for ``granularity`` (a unit of :mod:`pruneviz.core.units`) with or
    without evaluation data."""
    return list(units.get(granularity).methods(has_data))


@dataclass
class PruneArgs:
    amount: float
    method: str
    scope: str
    granularity: str
    layers: list[str] | None
    #: None, or a compensation mode of :data:`pruneviz.core.compensate.MODES`
    compensate: str | None = None


class PruneDialog(QDialog):
    """Amount, method, scope, granularity and layers for :meth:`Session.prune`."""

    def __init__(self, session, current_layer: str | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Prune")
        self.session = session
        form = QFormLayout(self)
        self.amount = QDoubleSpinBox()
        self.amount.setRange(0.0, 100.0)
        self.amount.setDecimals(1)
        self.amount.setSuffix(" %")
        self.amount.setValue(50.0)
        self.amount.setToolTip("share of the still-kept weights or neurons to prune")
        self.granularity = QComboBox()
        self.granularity.addItems(units.offered(session))  # every unit the engine has that fits this model
        self.granularity.setToolTip("; ".join(f"{u.name}: {u.summary}" for u in units.UNITS.values()))
        self.method = QComboBox()
        self.scope = QComboBox()
        self.scope.addItems(list(units.SCOPES))
        from pruneviz.core.compensate import MODES

        self.compensate = QComboBox()
        self.compensate.addItems(["none", *MODES])
        self.compensate.setToolTip("weight pruning only: exact keeps the chosen mask and sets the kept weights to the least-squares optimum of each layer's outputs on calibration data; sparsegpt lets SparseGPT choose the mask too")
        self.layers = QListWidget()
        self.layers.setMaximumHeight(160)
        for layer in session.layers:
            it = QListWidgetItem(layer.name + ("  (output)" if layer.is_output else ""))
            it.setData(Qt.ItemDataRole.UserRole, layer.name)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if current_layer in (None, layer.name) else Qt.CheckState.Unchecked)
            self.layers.addItem(it)
        self.scope.setToolTip("layer: each ticked layer loses the amount of its own weights; global: one ranking over all ticked layers together")
        self.all_layers = QPushButton("All layers")
        self.all_layers.setToolTip("Tick every layer (the output layer only for weight pruning)")
        self.only_current = QPushButton("This layer only")
        self.only_current.setEnabled(current_layer is not None)
        self.scope_note = QLabel()
        self.scope_note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.all_layers)
        buttons.addWidget(self.only_current)
        buttons.addStretch(1)
        form.addRow("Amount", self.amount)
        form.addRow("Granularity", self.granularity)
        form.addRow("Method", self.method)
        form.addRow("Scope", self.scope)
        form.addRow("Compensate", self.compensate)
        form.addRow("Layers", self.layers)
        form.addRow("", buttons)
        form.addRow(self.scope_note)
        form.addRow(_ok_cancel(self, "Prune"))
        self._current = current_layer
        self.granularity.currentTextChanged.connect(self._fill_methods)
        self.granularity.currentTextChanged.connect(self._explain)
        self.granularity.currentTextChanged.connect(self._unit_changed)
        self.scope.currentTextChanged.connect(self._explain)
        self.amount.valueChanged.connect(self._explain)
        self.layers.itemChanged.connect(self._explain)
        self.all_layers.clicked.connect(self.tick_all)
        self.only_current.clicked.connect(lambda: self._tick(lambda name: name == self._current))
        self._fill_methods(self.granularity.currentText())
        self._unit_changed(self.granularity.currentText())
        self._explain()

    def _unit_changed(self, name: str) -> None:
        """What the unit takes: compensation (single weights), an amount (N:M fixes its own),
        a layer list (heads are chosen over all attention modules)."""
        unit = units.get(name)
        self.compensate.setEnabled(unit.edits == "elem")
        self.amount.setEnabled(unit.uses_amount)
        for w in (self.layers, self.all_layers, self.only_current):
            w.setEnabled(unit.picks_layers and (w is not self.only_current or self._current is not None))

    def _tick(self, want) -> None:
        self.layers.blockSignals(True)
        for i in range(self.layers.count()):
            it = self.layers.item(i)
            it.setCheckState(Qt.CheckState.Checked if want(it.data(Qt.ItemDataRole.UserRole)) else Qt.CheckState.Unchecked)
        self.layers.blockSignals(False)
        self._explain()

    def tick_all(self) -> None:
        """Tick every layer; for neuron pruning, every layer but the output (which is never
        neuron-pruned unless named alone)."""
        neurons = units.get(self.granularity.currentText()).edits == "chan"
        outputs = {layer.name for layer in self.session.layers if layer.is_output}
        self._tick(lambda name: not (neurons and name in outputs))

    def _explain(self, *_) -> None:
        """Say what the scope means for the layers ticked now."""
        chosen = units.get(self.granularity.currentText())
        if not chosen.uses_amount or not chosen.picks_layers:  # a pattern, or every attention module
            self.scope_note.setText(chosen.summary[:1].upper() + chosen.summary[1:] + ("" if chosen.picks_layers else f", over every attention module ({self.scope.currentText()} scope)") + ".")
            return
        names = self.args().layers or []
        n, total = len(names), len(self.session.layers)
        amount = self.amount.value()
        unit = chosen.counted_in
        which = "all layers" if n == total else (f"layer {names[0]} only" if n == 1 else f"{n} of {total} layers")
        if n == 0:
            text = "No layer ticked: tick at least one (All layers ticks every layer)."
        elif self.scope.currentText() == "global" and n == 1:
            text = f"Global over one layer ({names[0]}) is the same as per layer: {amount:g}% of its {unit}. Tick more layers (All layers) to rank them together."
        elif self.scope.currentText() == "global":
            text = f"Global: one ranking over {which}; {amount:g}% of their kept {unit} go, weakest first, wherever they are."
        else:
            text = f"Per layer: each of {which} loses {amount:g}% of its kept {unit}."
        self.scope_note.setText(text)

    def _fill_methods(self, gran: str) -> None:
        cur = self.method.currentText()
        self.method.clear()
        self.method.addItems(methods(gran, self.session.data is not None))
        if cur:
            self.method.setCurrentText(cur)

    def args(self) -> PruneArgs:
        names = [self.layers.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.layers.count()) if self.layers.item(i).checkState() == Qt.CheckState.Checked]
        comp = self.compensate.currentText() if self.compensate.isEnabled() and self.compensate.currentText() != "none" else None
        unit = units.get(self.granularity.currentText())
        return PruneArgs(self.amount.value() / 100.0, self.method.currentText(), self.scope.currentText(), unit.name, (names or None) if unit.picks_layers else None, comp)


@dataclass
class RunArgs:
    method: str
    min_accuracy: float | None
    target_sparsity: float | None
    max_steps: int
    layers: str | None


class RunUntilDialog(QDialog):
    """Stop conditions for the node-pruning loop (step → evaluate → repeat)."""

    def __init__(self, session, baseline_accuracy: float | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Run until…")
        form = QFormLayout(self)
        self.method = QComboBox()
        self.method.addItems(methods("neuron", session.data is not None))
        self.use_acc = QCheckBox("accuracy falls below")
        self.use_acc.setChecked(session.data is not None)
        self.use_acc.setEnabled(session.data is not None)
        self.min_acc = QDoubleSpinBox()
        self.min_acc.setRange(0.0, 100.0)
        self.min_acc.setSuffix(" %")
        self.min_acc.setValue(round(((baseline_accuracy or 0.95) - 0.05) * 100, 1))
        self.use_sp = QCheckBox("sparsity reaches")
        self.target = QDoubleSpinBox()
        self.target.setRange(0.0, 100.0)
        self.target.setSuffix(" %")
        self.target.setValue(50.0)
        self.use_sp.setChecked(session.data is None)
        self.max_steps = QSpinBox()
        self.max_steps.setRange(1, 100_000)
        self.max_steps.setValue(1000)
        self.layers = QLineEdit()
        self.layers.setPlaceholderText("all hidden layers (globs, comma-separated)")
        form.addRow("Method", self.method)
        form.addRow(self.use_acc, self.min_acc)
        form.addRow(self.use_sp, self.target)
        form.addRow("At most", self.max_steps)
        form.addRow("Layers", self.layers)
        form.addRow(_ok_cancel(self, "Run"))

    def args(self) -> RunArgs:
        return RunArgs(
            self.method.currentText(),
            self.min_acc.value() / 100.0 if self.use_acc.isChecked() else None,
            self.target.value() / 100.0 if self.use_sp.isChecked() else None,
            self.max_steps.value(),
            self.layers.text().strip() or None,
        )


def _ok_cancel(dialog, ok_text: str) -> QDialogButtonBox:
    """OK/Cancel buttons wired to ``dialog``, with OK renamed after the action."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
