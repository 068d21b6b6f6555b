"""Layer browser: one row per prunable layer with its sparsity as a number and a bar, and totals.

Big models (ResNet, VGG, ViT) have dotted module names, and hundreds of them: the rows are grouped
by module hierarchy (``layer1.0.conv1`` under ``layer1`` > ``0``; a chain of single children is
one row, ``downsample.0``), each row shows its name relative to its group with the full qualified
name in the tooltip, a group row sums its layers' params and shows their weighted sparsity, and a
filter box keeps the layers whose name matches (substring, or a glob when it has ``*?[``) with
their groups. A model with flat names (``conv1``, ``fc``) looks as a flat list.
"""

from __future__ import annotations

import fnmatch

from PySide6.QtCore import QEvent, QRect, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pruneviz.core import units

from .hints import no_neurons_text
from .plain import literal


def neuron_refusal(session, name: str) -> str | None:
    """Why ``name``'s neurons cannot be pruned in this session, or None."""
    if not session.neuron_pruning:
        return no_neurons_text(session)
    built = session.coupling_built  # not built yet (it is, on the first neuron edit): no refusal known
    return built[name].refused if built is not None else None


COLUMNS = ["Layer", "Kind", "Shape", "Params", "Sparsity", "Share"]
COL_SPARSITY = 4
FRACTION = Qt.ItemDataRole.UserRole + 1
GROUP = Qt.ItemDataRole.UserRole + 2  # a group row's full dotted prefix
EXPAND_ALL_UP_TO = 120  # layers; bigger models open with the top level only
#: columns left out, in this order, when the list is too narrow for all (their values stay in
#: each row's tooltip); the name, shape and sparsity always stay
FOLD_ORDER = ("Kind", "Share", "Params")


def module_tree(names: list[str]) -> list[tuple[str, str, object]]:
    """Group dotted ``names`` by module hierarchy: a list of ``(label, full, children)`` nodes,
    in first-seen order, where ``children`` is None for a layer (``full`` is its name) and a list
    of nodes for a group (``full`` is its prefix). A group with a single child is merged into it
    (its label becomes ``group.child``), so flat names stay a flat list and ``downsample.0`` is
    one row. A name that is both a layer and a prefix of others keeps both rows."""
    root: dict = {}  # group keys end with "." so a layer "a" and a module "a" never collide
    for name in names:
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part + ".", {})
        node[parts[-1]] = name

    def build(d: dict, prefix: str) -> list:
        out = []
        for key, val in d.items():
            label = key[:-1] if isinstance(val, dict) else key
            if isinstance(val, str):
                out.append((label, val, None))
                continue
            full = f"{prefix}{label}"
            kids = build(val, full + ".")
            if len(kids) == 1:
                klabel, kfull, kkids = kids[0]
                out.append((f"{label}.{klabel}", kfull, kkids))
            else:
                out.append((label, full, kids))
        return out

    return build(root, "")


def name_matches(pattern: str, name: str) -> bool:
    """Filter test: a glob when ``pattern`` has ``*?[``, else a case-insensitive substring."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


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
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        text_w = max(option.fontMetrics.horizontalAdvance("100.0%"), option.fontMetrics.horizontalAdvance(text)) + 6  # "50.0% 2:4" too
        bar = QRect(r.left(), r.center().y() - 3, max(10, r.width() - text_w), 7)
        pal = option.palette
        painter.save()
        bg = pal.color(QPalette.ColorRole.Mid)
        bg.setAlpha(90)
        painter.fillRect(bar, bg)
        painter.fillRect(QRect(bar.left(), bar.top(), int(bar.width() * max(0.0, min(1.0, frac))), bar.height()), pal.color(QPalette.ColorRole.Highlight))
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        painter.drawText(r, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        painter.restore()


class LayerTree(QWidget):
    """Filter box, the layer tree and a totals line; emits ``layerSelected(name)`` for layer rows
    (mouse or keyboard), never for group rows. ``items`` maps each layer name to its row."""

    layerSelected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
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
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers (text or glob, e.g. layer3*conv*)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setToolTip("Keeps the layers whose full name contains the text, or matches it as a glob when it has * ? [")
        self.filter.textChanged.connect(self.set_filter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.totals)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.groups: dict[str, QTreeWidgetItem] = {}
        self._leaves: dict[str, list[str]] = {}  # group prefix -> its layers
        self.session = None
        self.tree.currentItemChanged.connect(self._on_current)
        self._folded: set[int] = set()  # columns this widget hid to fit (others' choices are kept)
        self.tree.viewport().installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self.tree.viewport() and ev.type() == QEvent.Type.Resize:
            self.fit_columns()
        return False

    def fit_columns(self) -> None:
        """Hide the columns of ``FOLD_ORDER`` (in turn) that do not fit the list's width, show them
        again when they do; a column hidden by someone else (presentation mode) stays hidden."""
        h = self.tree.header()
        room = self.tree.viewport().width()
        for c in self._folded:
            self.tree.setColumnHidden(c, False)
        self._folded.clear()
        bar = self.tree.fontMetrics().horizontalAdvance("100.0%") + 40  # the sparsity bar's least

        def needed() -> int:
            return sum(max(h.sectionSizeHint(c), self.tree.sizeHintForColumn(c)) if c != COL_SPARSITY else bar for c in range(len(COLUMNS)) if not self.tree.isColumnHidden(c))

        for col in FOLD_ORDER:
            if needed() <= room:
                break
            c = COLUMNS.index(col)
            if not self.tree.isColumnHidden(c):
                self.tree.setColumnHidden(c, True)
                self._folded.add(c)

    def set_session(self, s) -> None:
        self.session = s
        self.tree.blockSignals(True)
        self.tree.clear()
        self.items.clear()
        self.groups.clear()
        self._leaves.clear()
        total = max(1, sum(layer.params for layer in s.layers))
        by_name = {layer.name: layer for layer in s.layers}
        grey = self.tree.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)

        def leaf(label, layer):
            it = QTreeWidgetItem([label + (" (out)" if layer.is_output else ""), layer.kind.lower().replace("linear", "fc"), "×".join(map(str, layer.shape)), f"{layer.params:,}", "", f"{layer.params / total:.1%}"])
            it.setData(0, Qt.ItemDataRole.UserRole, layer.name)
            for c in (3, 5):
                it.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            tip = f"{layer.name}: {layer.kind} {tuple(layer.shape)}, view {layer.view_shape[0]}×{layer.view_shape[1]}, {layer.params:,} params ({layer.params / total:.1%})"
            why = neuron_refusal(s, layer.name)
            if why:  # weights can still be pruned; greyed so that skipped layers stand out
                tip += f"\nno neuron pruning: {why}"
                for c in range(len(COLUMNS)):
                    it.setForeground(c, grey)
            for c in range(len(COLUMNS)):
                it.setToolTip(c, literal(tip))
            self.items[layer.name] = it
            return it

        def group(label, full, kids) -> tuple[QTreeWidgetItem, list[str]]:
            it = QTreeWidgetItem([label, "", "", "", "", ""])
            it.setData(0, GROUP, full)
            names: list[str] = []
            for klabel, kfull, kkids in kids:
                if kkids is None:
                    it.addChild(leaf(klabel, by_name[kfull]))
                    names.append(kfull)
                else:
                    child, sub = group(klabel, kfull, kkids)
                    it.addChild(child)
                    names += sub
            params = sum(by_name[n].params for n in names)
            it.setText(3, f"{params:,}")
            it.setText(5, f"{params / total:.1%}")
            for c in (3, 5):
                it.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            font = it.font(0)
            font.setBold(True)
            it.setFont(0, font)
            tip = f"{full}: {len(names)} layers, {params:,} params"
            for c in range(len(COLUMNS)):
                it.setToolTip(c, literal(tip))
            self.groups[full] = it
            self._leaves[full] = names
            return it, names

        nodes = module_tree([layer.name for layer in s.layers])
        for label, full, kids in nodes:
            self.tree.addTopLevelItem(leaf(label, by_name[full]) if kids is None else group(label, full, kids)[0])
        self.tree.setRootIsDecorated(bool(self.groups))
        self.tree.setIndentation(12 if self.groups else 20)  # deep trees keep room for the columns
        if len(self.items) <= EXPAND_ALL_UP_TO:
            self.tree.expandAll()
        self.tree.blockSignals(False)
        self.fit_columns()
        if self.filter.text():
            self.set_filter(self.filter.text())
        self.refresh(None)

    def set_filter(self, text: str) -> None:
        """Show the layers whose full name matches ``text`` (see ``name_matches``) and their groups."""
        if self.filter.text() != text:
            self.filter.setText(text)  # re-enters through textChanged
            return

        def walk(it: QTreeWidgetItem) -> bool:
            name = it.data(0, Qt.ItemDataRole.UserRole)
            if name is not None:
                shown = name_matches(text, name)
            else:
                shown = False
                for i in range(it.childCount()):
                    shown = walk(it.child(i)) or shown
            it.setHidden(not shown)
            return shown

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        if text.strip():
            self.tree.expandAll()
        cur = self.tree.currentItem()
        if cur is not None and not cur.isHidden():
            self.tree.scrollToItem(cur)

    def refresh(self, layers=None) -> None:
        """Update sparsity of ``layers`` (all when None) and the totals."""
        s = self.session
        if s is None:
            return
        for name in self.items if layers is None else layers:
            it = self.items.get(name)
            if it is not None:
                sp = s.sparsity(name)
                pattern = units.shown_as(s, name)  # "2:4" when the layer follows an N:M pattern
                follows = pattern is not units.WEIGHT and pattern.conforms(s.mask(name), s.layer(name).kind)  # no mask copy for plain weights
                it.setText(COL_SPARSITY, f"{sp:.1%}" + (f" {pattern.name}" if follows else ""))
                it.setData(COL_SPARSITY, FRACTION, sp)
        for prefix, it in self.groups.items():  # params-weighted sparsity of the group's layers
            names = self._leaves[prefix]
            if layers is not None and not any(n.startswith(prefix + ".") for n in layers):
                continue
            params = sum(s.layer(n).params for n in names)
            if params:
                sp = sum(s.sparsity(n) * s.layer(n).params for n in names) / params
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
            if it.isHidden():  # a filtered-out layer shown from elsewhere: clear the filter
                self.filter.clear()
            p = it.parent()
            while p is not None:
                p.setExpanded(True)
                p = p.parent()
            self.tree.setCurrentItem(it)
            self.tree.scrollToItem(it)

    def current(self) -> str | None:
        it = self.tree.currentItem()  # noqa: the current row is the shown layer
        return it.data(0, Qt.ItemDataRole.UserRole) if it else None

    def _on_current(self, cur, _prev) -> None:
        name = cur.data(0, Qt.ItemDataRole.UserRole) if cur is not None else None
        if name is not None:  # group rows select nothing
            self.layerSelected.emit(name)
