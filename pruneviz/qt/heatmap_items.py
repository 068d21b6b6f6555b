"""Graphics items of the heatmap's plot: a ViewBox with a block-drag tool, an input-channel axis."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsRectItem


class DragBox(pg.ViewBox):
    """A ViewBox that, in block mode, turns a left drag into a rectangle instead of a pan."""

    dragged = Signal(QRectF, object)  # rect in data coordinates, keyboard modifiers

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.block_mode = False
        self._band = QGraphicsRectItem()
        self._band.setPen(pg.mkPen((255, 170, 0), width=2, cosmetic=True))
        self._band.setBrush(pg.mkBrush(255, 170, 0, 50))
        self._band.setZValue(1e6)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):
        if not self.block_mode or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        a = self.mapToView(ev.buttonDownPos())
        b = self.mapToView(ev.pos())
        rect = QRectF(a, b).normalized()
        self._band.setRect(rect)
        self._band.show()
        if ev.isFinish():
            self._band.hide()
            self.dragged.emit(rect, ev.modifiers())


class InputAxis(pg.AxisItem):
    """Bottom axis that, for a conv layer, ticks whole input channels: one label per channel,
    centred under its kh·kw columns, at the nice spacings pyqtgraph would pick for channels."""

    group = 1

    def tickSpacing(self, minVal, maxVal, size):
        g = self.group
        if g <= 1:
            return super().tickSpacing(minVal, maxVal, size)
        out = []
        for spacing, offset in super().tickSpacing(minVal / g, maxVal / g, size):
            spacing = max(1.0, float(round(spacing)))  # never a tick inside a kernel
            level = (spacing * g, offset * g + g / 2)
            if level not in out:
                out.append(level)
        return out

    def tickStrings(self, values, scale, spacing):
        g = self.group
        if g <= 1:
            return super().tickStrings(values, scale, spacing)
        return [str(int(v // g)) for v in values]
