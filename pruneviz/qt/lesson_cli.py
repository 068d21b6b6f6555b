"""``pruneviz gui --lesson NAME [--step K] [--screenshot PNG] [--trust]``: start a lesson in the
window from the command line (see :mod:`pruneviz.qt.lesson_panel`)."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from pruneviz.core import lessons as core
from pruneviz.core.errors import PrunevizError, TrustRequired

from .render import save_image

LESSON_SCREENSHOT_SIZE = (1280, 720)


def open_from_cli(window, name: str, step: int | None, screenshot: str | None, trust: bool = False) -> int:
    """``pruneviz gui --lesson NAME [--step K] [--screenshot PNG] [--trust]``: start the lesson, run its
    first K steps; with a screenshot, render the window at 1280×720, save it and return 0 (2 on error).
    A lesson file naming code is refused in a screenshot run without ``trust`` (no prompt there)."""
    import sys

    ctrl = window.lessons
    errors: list[str] = []
    if screenshot:
        window.errorShown.connect(errors.append)
        window.status.boxes = False  # no modal box in a screenshot run: errorShown collects them
        window.resize(*LESSON_SCREENSHOT_SIZE)
        window.show()
    if screenshot and not trust:
        try:
            core.load(name)
        except TrustRequired as exc:
            print(f"pruneviz: error: {exc}", file=sys.stderr)
            return 2
        except PrunevizError:
            pass  # reported below, as before
    if not ctrl.start(name, trust=trust) or not ctrl.wait_idle():
        if screenshot:
            print(f"pruneviz: error: {errors[0] if errors else 'the lesson could not be opened'}", file=sys.stderr)
        return 2
    for _ in range(step or 0):
        if ctrl.page == "summary" or errors:
            break
        if ctrl.panel.stack.currentWidget() is ctrl.panel.predict and not ctrl.panel.predict.revealed:
            ctrl.panel.predict.reveal()  # the class has answered: on to the next step
        ctrl.next()
        ctrl.wait_idle()
    if not screenshot:
        return 0
    if errors:
        print(f"pruneviz: error: {errors[0]}", file=sys.stderr)
        return 2
    from .screenshot import wait_for_evaluation

    wait_for_evaluation(window)
    window.resize(*LESSON_SCREENSHOT_SIZE)  # it grew to fit the editor before the lesson put it away
    QApplication.processEvents()
    ctrl.size_docks()
    for _ in range(5):
        QApplication.processEvents()
    if not save_image(window.grab(), screenshot):
        print(f"pruneviz: error: could not write {screenshot}", file=sys.stderr)
        return 2
    window.close()
    return 0
