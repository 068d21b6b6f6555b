"""Sessions and a ready main window for the GUI tests (demo model + demo digits, on the CPU)."""

from __future__ import annotations

import gc

import pytest

from pruneviz.core.session import Session


@pytest.fixture(autouse=True)
def _collect_qt_garbage_here():
    """Collect each test's cyclic garbage (windows, dialogs) on the main thread when it ends: a
    worker thread of the next test must never be the one that destroys a Qt object."""
    yield
    gc.collect()


def open_demo(name: str = "mlp") -> Session:
    return Session.open(f"demo:{name}", data="demo:digits", device="cpu")


def demo_opener(model, data, arch=None, trust=False):
    """Session opener for MainWindow (File > Open) that stays on the CPU in tests."""
    return Session.open(model, data=data, arch=arch, trust=trust, device="cpu")


@pytest.fixture
def mlp_session():
    return open_demo("mlp")


@pytest.fixture
def window(qtbot, mlp_session):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(mlp_session, open_session=demo_opener)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None, timeout=30_000)
    yield w
    w.runner.shutdown(5000)


@pytest.fixture
def bare_window(qtbot):
    """A window on demo:mlp without evaluation data (so files of other shapes can be opened)."""
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(Session.open("demo:mlp", device="cpu"), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.runner.shutdown(5000)


@pytest.fixture(autouse=True)
def _large_screen():
    """The offscreen platform's screen is 800×800, and the window keeps itself inside its screen:
    tests that size the window themselves get a large screen; the screen-fit tests set their own."""
    from PySide6.QtCore import QRect

    from pruneviz.qt.screen_fit import set_available_geometry

    set_available_geometry(QRect(0, 0, 3840, 2160))
    yield
    set_available_geometry(None)
