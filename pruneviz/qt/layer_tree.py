"""Layer browser: one row per prunable layer with its sparsity as a number and a bar, and totals."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

def neuron_refusal(session, name: str) -> str | None:
    """Why ``name``'s neurons cannot be pruned in this session, or None."""
    if session.coupling is None:
        return session.coupling_error
    return session.coupling[name].refused


COLUMNS = ["Layer", "Kind", "Shape", "Params", "Sparsity", "Share"]
COL_SPARSITY = 4
FRACTION = Qt.ItemDataRole.UserRole + 1


class BarDelegate(QStyledItemDelegate):
    """Draws a fraction (item data ``FRACTION``) as a thin bar under the text, in palette colours."""

    def paint(self, painter, option, index):
        frac = index.data(FRACTION)
        if frac is None:
            return super().paint(painter, option, index)
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        r = option.rect.adjusted(4, 0, -4, 0)
        text_w = option.fontMetrics.horizontalAdvance("100.0%") + 6
        bar = QRect(r.left(), r.center().y() - 3, max(10, r.width() - text_w), 7)
        pal = option.palette
        painter.save()
        bg = pal.color(QPalette.ColorRole.Mid)
        bg.setAlpha(90)
        painter.fillRect(bar, bg)
        painter.fillRect(QRect(bar.left(), bar.top(), int(bar.width() * max(0.0, min(1.0, frac))), bar.height()), pal.color(QPalette.ColorRole.Highlight))
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        painter.drawText(r, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, index.data(Qt.ItemDataRole.DisplayRole) or "")
        painter.restore()


class LayerTree(QWidget):
    """The layer list plus a totals line; emits ``layerSelected(name)``."""

    layerSelected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setItemDelegateForColumn(COL_SPARSITY, BarDelegate(self.tree))
        h = self.tree.header()
        h.setStretchLastSection(False)
        for c in range(len(COLUMNS)):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(COL_SPARSITY, QHeaderView.ResizeMode.Stretch)  # the bar takes the slack
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.totals = QLabel()
        self.totals.setWordWrap(True)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.totals)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.session = None
        self.tree.currentItemChanged.connect(self._on_current)

    def set_session(self, s) -> None:
        self.session = s
        self.tree.blockSignals(True)
        self.tree.clear()
        self.items.clear()
        total = max(1, sum(layer.params for layer in s.layers))
        for layer in s.layers:
            it = QTreeWidgetItem([layer.name + (" (out)" if layer.is_output else ""), layer.kind.lower().replace("linear", "fc"), "×".join(map(str, layer.shape)), f"{layer.params:,}", "", f"{layer.params / total:.1%}"])
            it.setData(0, Qt.ItemDataRole.UserRole, layer.name)
            for c in (3, 5):
                it.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            tip = f"{layer.name}: {layer.kind} {tuple(layer.shape)}, view {layer.view_shape[0]}×{layer.view_shape[1]}"
            why = neuron_refusal(s, layer.name)
            if why:  # weights can still be pruned; greyed so that skipped layers stand out
                tip += f"\nno neuron pruning: {why}"
                grey = self.tree.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                for c in range(len(COLUMNS)):
                    it.setForeground(c, grey)
            for c in range(len(COLUMNS)):
                it.setToolTip(c, tip)
            self.tree.addTopLevelItem(it)
            self.items[layer.name] = it
        self.tree.blockSignals(False)
        self.refresh(None)

    def refresh(self, layers=None) -> None:
        """Update sparsity of ``layers`` (all when None) and the totals."""
        s = self.session
        if s is None:
            return
        for name in self.items if layers is None else layers:
            it = self.items.get(name)
            if it is not None:
                sp = s.sparsity(name)
                it.setText(COL_SPARSITY, f"{sp:.1%}")
                it.setData(COL_SPARSITY, FRACTION, sp)
        remaining = s.params_remaining()
        saved = s.original_params - remaining
        self.totals.setText(
            f"<b>{s.original_params:,}</b> params · sparsity <b>{s.sparsity():.1%}</b> · "
            f"saved <b>{saved:,}</b> ({saved / max(1, s.original_params):.1%})"
        )

    def select(self, name: str) -> None:
        it = self.items.get(name)
        if it is not None:
            self.tree.setCurrentItem(it)

    def current(self) -> str | None:
        it = self.tree.currentItem()  # noqa: the current row is the shown layer
        return it.data(0, Qt.ItemDataRole.UserRole) if it else None

    def _on_current(self, cur, _prev) -> None:
        if cur is not None:
            self.layerSelected.emit(cur.data(0, Qt.ItemDataRole.UserRole))
