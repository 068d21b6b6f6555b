"""Small labels shared by the window's controllers (a controller never imports another)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QSizePolicy

from .accuracy_plot import ElidedLabel
from .plain import literal


class ShrinkingLabel(ElidedLabel):
    """A status read-out that takes its text's width when there is room and is elided (never
    widening the window past its minimum) when there is not; ``tip`` stays in its tooltip."""

    def __init__(self, text: str = "", parent=None):
        self.tip = ""
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.fontMetrics().horizontalAdvance(self.text()) + 8, super().sizeHint().height())

    def setTip(self, tip: str) -> None:  # noqa: N802 - like setToolTip
        self.tip = tip
        self._elide()

    def _elide(self) -> None:
        super()._elide()
        full = self.text().strip() if self.elided else ""
        self.setToolTip(literal("\n".join(t for t in (full, self.tip) if t)))
        self.updateGeometry()
