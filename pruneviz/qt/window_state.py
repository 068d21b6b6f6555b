"""What the window's parts share: the session, the layer shown, the selected neuron rows.

One small object owns these three and says when each changes; the controllers take it in
their constructor (with the few collaborators they use) instead of the whole window, read it,
and change it through its setters, so every part sees the same state and hears about changes
the same way (napari's ``ViewerModel`` for its Qt widgets):

    state = WindowState()
    state.layerChanged.connect(lambda name: ...)
    state.set_layer("fc1")          # a new layer clears the selection (selectionChanged when it had one)
    state.select({3, 7})

The window sets the session (``MainWindow.set_session``); edits of the session itself are heard
on ``session.changed`` as before.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class WindowState(QObject):
    """The session shown, its layer shown and the selected rows of that layer, with signals."""

    sessionChanged = Signal(object)  #: a new session (the old one's layer and selection are gone)
    layerChanged = Signal(str)  #: another layer is shown
    selectionChanged = Signal(object)  #: the selected rows (a set of ints) changed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = None
        self.layer: str | None = None
        self.selected: set[int] = set()

    def set_session(self, session) -> None:
        """Show ``session``: no layer shown and nothing selected until the window picks one."""
        had = bool(self.selected)
        self.session = session
        self.layer = None
        self.selected = set()
        self.sessionChanged.emit(session)
        if had:
            self.selectionChanged.emit(set())

    def set_layer(self, name: str | None) -> bool:
        """Show layer ``name`` (its selection starts empty); False when it is already shown."""
        if name == self.layer:
            return False
        had = bool(self.selected)
        self.layer = name
        self.selected = set()
        self.layerChanged.emit(name or "")
        if had:
            self.selectionChanged.emit(set())
        return True

    def select(self, rows) -> None:
        """Select these rows of the layer shown (replaces the selection)."""
        self.selected = set(int(r) for r in rows)
        self.selectionChanged.emit(set(self.selected))
