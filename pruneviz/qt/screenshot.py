"""Waiting for the window's first evaluation before a ``--screenshot`` (``gui`` and ``gui --lesson``).

Its own module so that :mod:`pruneviz.qt.app` and :mod:`pruneviz.qt.lesson_cli` both use it
without importing each other.
"""

from __future__ import annotations


def wait_for_evaluation(window, timeout_ms: int = 120_000) -> bool:
    """Process events until the first result (and the baseline, when there is data) arrived."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    s = window.session
    if s.data is None:
        return True
    loop = QEventLoop()
    done = lambda: window.acc.current is not None and window.acc.baseline is not None  # noqa: E731
    clock = QElapsedTimer()
    clock.start()
    check = QTimer()
    check.setInterval(20)
    # the loop must end by the timeout whatever the evaluation does (fails, hangs, never starts)
    check.timeout.connect(lambda: loop.quit() if done() or clock.elapsed() >= timeout_ms else None)
    check.start()
    while not done() and clock.elapsed() < timeout_ms:
        loop.exec()
    check.stop()
    return done()
