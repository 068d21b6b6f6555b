"""The playground: a 2-D problem's decision boundary next to the network drawn as nodes and edges.

Edge width is |w|; pruned edges are grey and dashed, pruned neurons hollow. Clicking a hidden
neuron or an edge prunes it (or restores it) through the Session's verbs, so every click is an
undoable step; the boundary is redrawn from the live model after every change of the session.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from pruneviz.core import toy
from pruneviz.core.errors import PrunevizError

from . import lesson_charts as lc


class PlaygroundView(QWidget):
    """Decision boundary (left) and network (right) of a generated-problem session."""

    failed = Signal(str)  #: a refused edit, one line
    edited = Signal(str)  #: the label of the edit a click made

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = None
        self._grid = None
        self._net = None
        self._geom: tuple[list, list] = ([], [])
        self._hover = None
        self.accuracy: float | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(360, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("click a neuron or an edge to prune it; click again to restore it")

    # ------------------------------------------------------------------------------ session
    def set_session(self, session) -> None:
        if self.session is not None:
            try:
                self.session.changed.disconnect(self.refresh)
            except Exception:  # noqa: BLE001 - never connected
                pass
        self.session = session
        if session is not None:
            session.changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> None:
        """Recompute the boundary and the network from the live model and repaint."""
        s = self.session
        if s is None or s.data is None or s.data.x.dim() != 2 or s.data.x.shape[1] != 2:
            self._grid = self._net = None
        else:
            self._grid = toy.boundary(s, 120)
            self._net = toy.network(s)
            self.accuracy = s.evaluate().accuracy  # a few hundred 2-D points: instant
        self._geom = ([], [])
        self._hover = None
        self.update()

    # ------------------------------------------------------------------------------- layout
    def _areas(self) -> tuple[QRectF, QRectF]:
        r = QRectF(self.rect()).adjusted(6, 6, -6, -6)
        left = QRectF(r.left(), r.top(), r.width() * 0.46, r.height())
        right = QRectF(left.right() + r.width() * 0.02, r.top(), r.width() * 0.52, r.height())
        return left, right

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("white"))
        if self._grid is None:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "the playground needs a lesson on a generated 2-D problem")
            p.end()
            return
        left, right = self._areas()
        s = self.session
        chart = {"kind": "boundary", "title": f"held-out accuracy {self.accuracy:.1%}", "grid": self._grid, "bounds": toy.BOUNDS, "x": s.data.x.numpy(), "y": s.data.y.numpy()}
        lc.paint(p, left, chart)
        self._geom = lc.network_geometry(self._net, right)
        lc.paint_network(p, *self._geom, QColor("#222"), self._hover)
        p.end()

    # -------------------------------------------------------------------------------- mouse
    def _target(self, pos: QPointF):
        if not self._geom[0] and self._net is not None:
            self._geom = lc.network_geometry(self._net, self._areas()[1])
        hit = lc.hit(*self._geom, pos)
        if isinstance(hit, lc.Node) and (hit.column == 0 or hit.output):
            return None  # inputs and outputs are not neurons one can prune
        return hit

    def mouseMoveEvent(self, ev) -> None:
        hit = self._target(ev.position())
        if hit is not self._hover:
            self._hover = hit
            self.setCursor(Qt.CursorShape.PointingHandCursor if hit is not None else Qt.CursorShape.ArrowCursor)
            self.update()

    def mousePressEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or not self.isEnabled():
            return
        hit = self._target(ev.position())
        if hit is not None:
            self.toggle(hit)

    def toggle(self, target) -> None:
        """Prune ``target`` (a :class:`~.lesson_charts.Node` or ``Edge``) if kept, else restore it."""
        s = self.session
        try:
            if isinstance(target, lc.Node):
                verb = s.prune_neurons if target.kept else s.restore_neurons
                verb(target.layer, [target.index])
            else:
                flat = target.row * s.layer(target.layer).view_shape[1] + target.col
                verb = s.prune_weights if target.kept else s.restore_weights
                verb(target.layer, [flat])
        except PrunevizError as exc:
            self.failed.emit(str(exc))
            return
        self.edited.emit(s.history.labels[s.history.index - 1] if s.history.index else "")
