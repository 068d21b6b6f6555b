"""Where Decide sits: a dock under the layer view, or a full page in presentation mode.

At a projector's 720 pixels, a Decide dock under the layer view left its plots some 30 pixels
tall. In presentation mode, View > Decide (Ctrl+D) therefore swaps the layer view (heatmap,
strip, histogram) for a page that holds the Decide tabs at the full height of the window;
"◀ Layer view" (or Ctrl+D again) swaps back in one click. Leaving presentation mode puts Decide
back in its dock, open if its page was showing. The docks keep their place beside it.

:class:`DecidePage` (``window.decide_page``) takes the window, the Decide panel, the action
registry (it registers View > Decide, Ctrl+D) and presentation mode; it puts the panel in the
Decide dock (closed at first, so the layer views keep their room) and makes the window's centre
a stack of the layer view and the Decide page. Closing the window stops the panel's worker.

Example::

    window.presentation.set_enabled(True)
    window.decide_page.show_page(True)     # what View > Decide does in presentation mode
    window.decide_page.shown               # True: the Decide tabs fill the centre
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QDockWidget, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget


class RowScroll(QScrollArea):
    """A row of controls that scrolls sideways when the window is narrower than the row (Decide's
    rows at presentation size are wider than a 1024-pixel screen); as tall as the row, plus the
    scroll bar only while it is needed."""

    def __init__(self, row, parent=None):
        super().__init__(parent)
        holder = QWidget()
        holder.setLayout(row)
        self.setWidget(holder)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def _height(self) -> int:
        inner = self.widget().minimumSizeHint()
        bar = self.horizontalScrollBar().sizeHint().height() if inner.width() > self.viewport().width() else 0
        return max(inner.height(), self.widget().sizeHint().height()) + bar

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(60, self._height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.widget().sizeHint().width(), self._height())

    def resizeEvent(self, ev) -> None:  # noqa: N802
        before = self.height()
        super().resizeEvent(ev)
        if self._height() != before:
            self.updateGeometry()  # the scroll bar came or went


def scroll_wide_rows(panel) -> int:
    """Put the Decide panel's rows of controls (its status row and each tab's first row) in
    :class:`RowScroll` areas; returns how many. The panel's least width is then its plots'."""
    layouts = [panel.layout()] + [panel.tabs.widget(i).layout() for i in range(panel.tabs.count())]
    layouts.append(panel.plans.measure.parentWidget().layout())  # the plans' buttons, over their list
    n = 0
    for lay in layouts:
        if lay is None or lay.count() == 0 or lay.itemAt(0).layout() is None:
            continue
        row = lay.itemAt(0).layout()
        lay.removeItem(row)
        row.setParent(None)
        lay.insertWidget(0, RowScroll(row))
        n += 1
    return n


#: below this available height Decide is a page in normal mode too (a dock under the layer view
#: leaves neither of them room on a 600-pixel screen)
PAGE_BELOW_HEIGHT = 700


class CurrentPageStack(QStackedWidget):
    """A stack as small as the page it shows (QStackedWidget asks for its largest page's room:
    the layer view's least width then held the Decide page wider than a 1024-pixel screen)."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        page = self.currentWidget()
        return page.minimumSizeHint() if page is not None else super().minimumSizeHint()

    def sizeHint(self) -> QSize:  # noqa: N802
        page = self.currentWidget()
        return page.sizeHint() if page is not None else super().sizeHint()


class DecidePage(QObject):
    """The window's centre as a stack: the layer view, or (in presentation mode) Decide."""

    def __init__(self, window, panel, *, actions, presentation):
        super().__init__(window)
        self.w = window
        self.presentation = presentation
        self.panel = panel
        self.dock = QDockWidget("Decide", window)
        self.dock.setObjectName("dock_decide")
        self.dock.setWidget(panel)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()
        toggle = self.dock.toggleViewAction()
        toggle.setShortcut("Ctrl+D")
        toggle.setToolTip("sensitivity, knockout, criteria, sweeps, allocation and plans")
        actions.register("decide", toggle, menu="view")
        scroll_wide_rows(self.panel)  # its rows never make the window wider than the screen
        view = window.takeCentralWidget()
        self.stack = CurrentPageStack()
        self.stack.currentChanged.connect(lambda _i: self.stack.updateGeometry())
        self.stack.addWidget(view)
        self.view = view
        self.page = QWidget()
        lay = QVBoxLayout(self.page)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.back = QPushButton("◀  Layer view")
        self.back.setToolTip("back to the heatmap, strip and histogram (Ctrl+D)")
        self.back.clicked.connect(lambda: self.show_page(False))
        title = QLabel("Decide")
        f = QFont(title.font())
        f.setBold(True)
        title.setFont(f)
        head.addWidget(self.back)
        head.addWidget(title)
        head.addStretch(1)
        lay.addLayout(head)
        self._body = lay
        self.stack.addWidget(self.page)
        window.setCentralWidget(self.stack)
        self.dock.visibilityChanged.connect(self._dock_shown)
        presentation.changed.connect(self._follow)
        window.installEventFilter(self)  # a window moved to a short screen: Decide becomes a page

    def wants_page(self) -> bool:
        """Decide is a page in presentation mode, and on a screen under :data:`PAGE_BELOW_HEIGHT`."""
        from .screen_fit import available_geometry

        return self.presentation.enabled or available_geometry(self.w).height() < PAGE_BELOW_HEIGHT

    def eventFilter(self, obj, ev) -> bool:
        if obj is self.w and ev.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._follow()
        elif obj is self.w and ev.type() == QEvent.Type.Close:
            self.panel.jobs.shutdown(5000)  # no thread outlives the window
        return False

    @property
    def shown(self) -> bool:
        """True while the Decide page fills the centre."""
        return self.stack.currentWidget() is self.page

    def show_page(self, on: bool) -> None:
        """Decide's page (``on``) or the layer view in the centre."""
        if on:
            if self.panel.parent() is not self.page:
                self._body.addWidget(self.panel, 1)  # out of the dock, into the page
                self.panel.show()
            self.dock.hide()
            self.stack.setCurrentWidget(self.page)
        else:
            self.stack.setCurrentWidget(self.view)

    def _dock_shown(self, visible: bool) -> None:
        """In presentation mode (or on a short screen), View > Decide shows or leaves the page instead of the dock."""
        if visible and self.wants_page():
            on = not self.shown  # Ctrl+D on the page goes back to the layer view
            self.dock.hide()
            self.show_page(on)

    def _follow(self, _scale: float | None = None) -> None:
        if self.wants_page():
            if self.dock.isVisible():
                self.show_page(True)
            return
        if self.panel.parent() is not self.page:
            return  # already in its dock
        was = self.shown
        self.stack.setCurrentWidget(self.view)
        if self.panel.parent() is self.page:
            self._body.removeWidget(self.panel)
            self.dock.setWidget(self.panel)  # back in its dock
        if was:
            self.dock.show()
