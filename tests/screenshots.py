"""Render the README's screenshots from the real window, so they never go stale.

    python tests/screenshots.py            # all of them, into resources/screenshots/
    python tests/screenshots.py decide_sensitivity.png

Each picture is one function below: it opens a real :class:`~pruneviz.qt.main_window.MainWindow`
offscreen, drives it through its own verbs, waits for the evaluation and the analyses, and saves
``window.grab()``. Beside the pictures, ``SOURCES.sha256`` holds :func:`sources_digest` of the
code they show (``pruneviz/qt`` and the playground lesson); ``tests/qt/test_screenshots_fresh.py``
fails when that code changed after the pictures were made (a digest rather than file times: a
fresh clone gives every file the same time).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "screenshots"
STAMP = OUT / "SOURCES.sha256"


def shown_sources() -> list[Path]:
    """The files whose change can change a screenshot: the window's code and the shown lesson."""
    return sorted((ROOT / "pruneviz" / "qt").rglob("*.py")) + [ROOT / "resources" / "lessons" / "playground.toml"]


def sources_digest() -> str:
    """SHA-256 over the shown sources' paths and contents (line endings normalised)."""
    h = hashlib.sha256()
    for p in shown_sources():
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0")
        h.update(p.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- rendering
def _window(model: str, size: tuple[int, int], presentation: bool = False):
    from pruneviz.core.session import Session
    from pruneviz.qt.app import make_app, wait_for_evaluation
    from pruneviz.qt.main_window import MainWindow

    app = make_app(screenshot=True)
    w = MainWindow(Session.open(model, data="demo:digits", device="cpu"), restore_layout=False, autosave=False, save_layout=False)
    w.screen_fit.enabled = False  # a picture of a fixed size, on no screen
    w.resize(*size)
    if presentation:
        w.presentation.set_enabled(True)
    w.show()
    app.processEvents()
    w.size_docks()
    wait_for_evaluation(w)
    return app, w


def _settle(app, w) -> None:
    from PySide6.QtCore import QEventLoop

    from pruneviz.qt.app import wait_for_evaluation

    for _ in range(3):
        app.processEvents()
        wait_for_evaluation(w)
        while w.runner.busy:  # the evaluation of the last edit, not only a first result
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    for _ in range(10):
        app.processEvents()


def _save(app, w, name: str) -> Path:
    _settle(app, w)
    path = OUT / name
    if not w.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    w.close()
    return path


def _wait(app, jobs) -> None:
    while jobs.busy:
        app.processEvents()
        jobs.wait(20)
    app.processEvents()


def main_window() -> Path:
    """demo:cnn after a global prune and a neuron prune, a filter of layer 4 selected."""
    app, w = _window("demo:cnn", (1400, 900))
    s = w.session
    s.prune(0.5, "global")
    s.prune(0.3, "layer", "neuron", "magnitude", ["12"])
    w.tree.select("4")
    _settle(app, w)
    w.editing.select_neurons([8])
    w.filter.toggle_kernel(5)
    w.filter.toggle_kernel(10)
    return _save(app, w, "main_window.png")


def presentation() -> Path:
    """demo:mlp at a projector's 1280×720 in presentation mode, after a 60 % layer-wise prune."""
    app, w = _window("demo:mlp", (1280, 720), presentation=True)
    w.session.prune(0.6)
    return _save(app, w, "presentation_1280x720.png")


def decide_sensitivity() -> Path:
    """The Decide dock at 1280×720: sensitivity of demo:cnn, the knockout of layer 8 by the strip."""
    app, w = _window("demo:cnn", (1280, 720))
    w.tree.select("8")
    w.view.sort.setChecked(True)
    w.dock_decide.show()
    p = w.decide
    p.run_sensitivity()
    _wait(app, p.jobs)
    p.run_knockout()
    _wait(app, p.jobs)
    p.tabs.setCurrentIndex(0)
    return _save(app, w, "decide_sensitivity.png")


def lesson_playground() -> Path:
    """The playground lesson after three steps, as ``gui --lesson playground --step 3`` shows it."""
    from pruneviz.core.session import Session
    from pruneviz.qt.app import make_app
    from pruneviz.qt.lesson_cli import open_from_cli
    from pruneviz.qt.main_window import MainWindow

    make_app(screenshot=True)
    w = MainWindow(Session.open("demo:mlp", data="demo:digits", device="cpu"), restore_layout=False, autosave=False, save_layout=False)
    w.screen_fit.enabled = False
    path = OUT / "lesson_playground.png"
    if open_from_cli(w, "playground", 3, str(path)) != 0:
        raise SystemExit("the playground lesson could not be rendered")
    return path


SHOTS = {
    "main_window.png": main_window,
    "presentation_1280x720.png": presentation,
    "decide_sensitivity.png": decide_sensitivity,
    "lesson_playground.png": lesson_playground,
}


def main(names: list[str]) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PRUNEVIZ_NO_AUTOSAVE_PROMPT", "1")
    for name in names or list(SHOTS):
        if name not in SHOTS:
            print(f"no screenshot named {name!r}; there are: {', '.join(SHOTS)}", file=sys.stderr)
            return 2
        print(SHOTS[name]())
    from pruneviz.qt.job_runner import join_all

    join_all()
    if not names:  # every picture is new: they show the code as it is now
        STAMP.write_text(sources_digest() + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
