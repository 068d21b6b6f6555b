"""Keep the window inside the screen it is on.

The first start opens at 1400×900 or the saved size only when that fits the screen's available
geometry (the screen less task bars and docks); otherwise at the available size. Afterwards,
whatever grows the window (presentation mode's larger fonts, a lesson page, an analysis' results)
is followed by a fit: the window is shrunk and moved back inside the screen. The layouts keep
their least sizes small enough for 1024×600 (see ``tests/qt/test_screen_fit.py``), so a fit
always succeeds.

The screen's geometry comes from :func:`available_geometry`; tests set a fake one with
:func:`set_available_geometry` (the offscreen platform's screen is 800×800 unless told otherwise).

Example::

    fit = ScreenFit(window)        # MainWindow does this itself (window.screen_fit)
    fit.initial(saved_geometry)    # before show: the saved size when it fits, else the screen's
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, QTimer
from PySide6.QtGui import QGuiApplication

DEFAULT_SIZE = (1400, 900)
_OVERRIDE: QRect | None = None


def set_available_geometry(rect: QRect | None) -> None:
    """Pretend every screen's available geometry is ``rect`` (None: ask the screens again). For
    tests and for trying a projector's size on a large monitor."""
    global _OVERRIDE
    _OVERRIDE = QRect(rect) if rect is not None else None


def available_geometry(widget=None) -> QRect:
    """The available geometry of the screen ``widget`` is on (the primary screen without one)."""
    if _OVERRIDE is not None:
        return QRect(_OVERRIDE)
    screen = widget.screen() if widget is not None else None
    screen = screen or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, *DEFAULT_SIZE)


def fitted(rect: QRect, avail: QRect) -> QRect:
    """``rect`` (a window's frame geometry) shrunk to ``avail`` and moved inside it; unchanged
    when it already fits."""
    w = min(rect.width(), avail.width())
    h = min(rect.height(), avail.height())
    x = min(max(rect.x(), avail.left()), avail.left() + avail.width() - w)
    y = min(max(rect.y(), avail.top()), avail.top() + avail.height() - h)
    return QRect(x, y, w, h)


class ScreenFit(QObject):
    """Fits ``window`` into its screen at the start and whenever it grows. ``enabled=False`` for
    windows that are never on a screen (``--screenshot`` renders at a fixed size)."""

    def __init__(self, window, enabled: bool = True):
        super().__init__(window)
        self.w = window
        self.enabled = enabled
        self._pending = False
        window.installEventFilter(self)

    def initial(self, saved: QRect | None = None) -> QRect:
        """Place the window before it is shown: ``saved`` (a restored geometry) only when it fits
        the available geometry, else the default size (at most the available size), centred."""
        avail = available_geometry(self.w)
        if saved is not None and saved.isValid() and avail.contains(saved):
            return QRect(saved)
        if saved is not None and saved.isValid() and saved.width() <= avail.width() and saved.height() <= avail.height():
            rect = fitted(saved, avail)  # it fits, on another place of the screen
        else:
            w, h = min(DEFAULT_SIZE[0], avail.width()), min(DEFAULT_SIZE[1], avail.height())
            rect = QRect(avail.left() + (avail.width() - w) // 2, avail.top() + (avail.height() - h) // 2, w, h)
        if self.enabled:
            self.w.setGeometry(rect)
        return rect

    def fit(self) -> bool:
        """Shrink and move the window inside the screen now; True when it had to change."""
        self._pending = False
        w = self.w
        if not self.enabled or w.isMaximized() or w.isFullScreen() or w.isMinimized():
            return False
        avail = available_geometry(w)
        now = w.frameGeometry()  # the frame (title bar, borders) must be on the screen too
        want = fitted(now, avail)
        if want == now:
            return False
        if want.size() != now.size():
            w.resize(w.size() - (now.size() - want.size()))
        if want.topLeft() != w.frameGeometry().topLeft():
            w.move(want.topLeft())  # a window's position is its frame's
        return True

    def eventFilter(self, obj, ev) -> bool:
        if obj is self.w and self.enabled and not self._pending and ev.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Move):
            self._pending = True
            QTimer.singleShot(0, self, self.fit)  # after the layout settled
        return False
