"""Start the app: ``run(args)`` from ``pruneviz gui`` (and from ``pruneviz`` with no arguments).

``--screenshot PNG`` renders the window once the first evaluation and the baseline are in,
saves it and exits (0), or prints ``pruneviz: error: …`` and exits 2 when the model cannot be
opened. Without it, errors go to a message box and the app starts on the demo instead.
"""

from __future__ import annotations

import os
import sys

from pruneviz.core.errors import PrunevizError, TrustRequired

# opening a model (trust and architecture prompts) lives in .opening, which the window's file
# actions use too; the names stay importable from here
from .render import save_image
from .screenshot import wait_for_evaluation  # noqa: F401 - importable from here as before
from .opening import DEMO, ask_trust, default_data, default_open, open_session_interactive  # noqa: F401
SCREENSHOT_SIZE = (1400, 900)
_KEEPALIVE = []  # the timer that lets Python run its signal handlers while Qt's loop runs


def close_on_sigterm(app, window) -> None:
    """A plain ``kill`` (SIGTERM) closes the window as File > Quit does: the autosave journal is
    closed and removed, so the next start offers no recovery. (Qt's event loop gives Python no
    chance to run a signal handler on its own: a 200 ms timer wakes it.)"""
    import signal

    from PySide6.QtCore import QTimer

    def handler(signum, frame):  # noqa: ARG001 - the signal API
        QTimer.singleShot(0, lambda: (window.close(), app.quit()))

    signal.signal(signal.SIGTERM, handler)
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    _KEEPALIVE[:] = [timer]


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720); a :class:`PrunevizError` for anything else."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise PrunevizError(f"--size {text!r}: give width x height in pixels, e.g. 1280x720") from None
    if not (320 <= w <= 10_000 and 240 <= h <= 10_000):
        raise PrunevizError(f"--size {text!r}: width from 320 to 10000 and height from 240 to 10000 pixels")
    return w, h


_CLAIMS: dict = {}  # journals being recovered: path -> their lock, held until the new window took over


def recover_interactive(device="auto"):
    """If a previous run did not exit cleanly, offer to reopen its autosaved session.

    Only journals no running pruneviz holds are looked at (:func:`pruneviz.core.persist.recoverable`):
    a second instance leaves the first one's journal alone. A journal with no edits is removed
    (nothing to lose); one that cannot be read or replayed is moved aside, with a message saying
    where; any other is removed only when the user chooses Discard. Returns ``(session, path)``
    of the recovered journal (``(None, None)`` without one); :func:`forget_recovered` removes it
    once the new window journals everything itself."""
    from PySide6.QtWidgets import QMessageBox

    from pruneviz.qt.plain import literal

    from pruneviz.core import persist

    moved: list[str] = []
    try:
        for path in persist.recoverable():
            lock = persist.claim(path)
            if lock is None:  # another instance took it meanwhile
                continue
            try:
                head, records = persist.read_journal(path)
            except PrunevizError as exc:
                moved.append(f"{_aside(path, lock)}\n  ({exc})")
                continue
            steps = sum(1 for r in records if isinstance(r, dict) and r.get("op") == "push")
            if steps == 0:  # nothing was edited: nothing to lose, nothing to ask about
                path.unlink(missing_ok=True)
                lock.release(remove=True)
                continue
            answer = QMessageBox.question(
                None,
                "Recover session?",
                literal(f"pruneviz did not exit cleanly last time.\n\nRecover the session on {head.get('model')} "
                        f"({steps} edit{'s' if steps != 1 else ''}, saved {head.get('saved', '?')})?"),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            )
            if answer != QMessageBox.StandardButton.Yes:  # the user chose to discard it
                path.unlink(missing_ok=True)
                lock.release(remove=True)
                continue
            for trust in (False, True):
                try:
                    session = persist.load_session(path, trust=trust, device=device, on_warning=lambda _note: None)
                except TrustRequired as exc:
                    if trust or not ask_trust(None, exc):
                        lock.release()  # not trusted now: kept for another time
                        break
                    continue
                except PrunevizError as exc:
                    aside = _aside(path, lock)
                    QMessageBox.warning(None, "pruneviz", literal(f"could not recover: {exc}\n\nThe autosave is kept as {aside}"))
                    break
                _CLAIMS[path] = lock
                return session, path
    finally:
        if moved:
            QMessageBox.warning(None, "pruneviz", literal("Autosaves that could not be read were moved aside (nothing was deleted):\n\n" + "\n".join(moved)))
    return None, None


def _aside(path, lock) -> str:
    """Move an unreadable journal aside; where it went (or why it stayed), for the message."""
    from pruneviz.core import persist

    try:
        return str(persist.move_aside(path, lock))
    except OSError as exc:
        lock.release()
        return f"{path} (left where it is: {exc.strerror or exc})"


def forget_recovered(path) -> None:
    """Remove a recovered journal (its session is now journalled by the new window) and its lock."""
    path.unlink(missing_ok=True)
    lock = _CLAIMS.pop(path, None)
    if lock is not None:
        lock.release(remove=True)


def _palette_colours(app) -> None:
    """pyqtgraph follows the system light/dark palette instead of its black default."""
    import pyqtgraph as pg

    pal = app.palette()
    pg.setConfigOptions(background=pal.base().color(), foreground=pal.text().color())


_HANDLER_INSTALLED = False


def _quiet_offscreen_plugin() -> None:
    """The offscreen platform warns "does not support propagateSizeHints()" on every window:
    noise on the terminal of `--screenshot` runs. Everything else Qt says still gets through."""
    global _HANDLER_INSTALLED
    if _HANDLER_INSTALLED:
        return
    _HANDLER_INSTALLED = True
    from PySide6.QtCore import qInstallMessageHandler

    previous = None

    def handler(mode, context, message):
        if "propagateSizeHints" in message:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            sys.stderr.write(message + "\n")

    previous = qInstallMessageHandler(handler)


def make_app(screenshot: bool = False):
    """The QApplication (created once), with names for QSettings and pyqtgraph options."""
    if screenshot and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    _quiet_offscreen_plugin()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "pruneviz"])
    app.setApplicationName("pruneviz")
    app.setOrganizationName("pruneviz")
    app.setApplicationDisplayName("pruneviz")
    _palette_colours(app)
    _collect_garbage_on_the_gui_thread()
    return app


_GC = None


def _collect_garbage_on_the_gui_thread() -> None:
    """Python's cyclic garbage collector runs in whichever thread happens to allocate. When that is
    a worker (evaluation, training, an analysis) and the garbage holds a Qt object, the object is
    destroyed off the GUI thread, and PySide6 deadlocks waiting for the GIL (seen: a knockout
    worker importing sympy collected an old window). So automatic collection is switched off and
    pyqtgraph's GarbageCollector collects on a one-second timer in the GUI thread instead."""
    global _GC
    if _GC is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GC = GarbageCollector(interval=1.0)


def run(args) -> int:
    """Open the session described by ``args`` (cli ``gui`` arguments) and run the window.

    Whatever way it ends (the window closed, a refused lesson, a screenshot written), every worker
    thread is stopped and joined before this returns: a QThread still running when the
    interpreter exits aborts the process (exit code 134)."""
    from .job_runner import join_all

    try:
        return _run(args)
    finally:
        join_all()


def _run(args) -> int:
    screenshot = getattr(args, "screenshot", None)
    size = parse_size(args.size) if getattr(args, "size", None) else None  # a bad size: one line, before any window
    if getattr(args, "step", None) and not getattr(args, "lesson", None):
        print("pruneviz: error: --step needs --lesson NAME", file=sys.stderr)
        return 2
    app = make_app(bool(screenshot))
    from PySide6.QtWidgets import QMessageBox

    from .main_window import MainWindow

    model = getattr(args, "model", None) or DEMO[0]
    data = default_data(model, getattr(args, "data", None))
    arch, trust, device = getattr(args, "arch", None), bool(getattr(args, "trust", False)), getattr(args, "device", "auto") or "auto"
    session = recovered = None
    if screenshot:
        try:
            session = default_open(model, data, arch, trust, device)
        except PrunevizError as exc:
            print(f"pruneviz: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 2
    else:
        session, recovered = recover_interactive(device)
        if session is None:
            session = open_session_interactive(None, model, data, arch, None, trust, device)
        if session is None:
            if (model, data) == DEMO:
                return 2
            QMessageBox.information(None, "pruneviz", "Starting with the demo model instead.")
            session = default_open(*DEMO, None, False, device)
    if getattr(args, "eval_on", None):  # evaluate on a Ray replica (issue 19); the views stay as they are
        from pruneviz.cli_remote import attach

        try:
            attach(args, session)
        except PrunevizError as exc:
            if screenshot:
                print(f"pruneviz: error: {str(exc).splitlines()[0]}", file=sys.stderr)
                return 2
            QMessageBox.warning(None, "pruneviz", f"{exc}\n\nEvaluating on this machine instead.")
    # a screenshot (or a one-off --size) neither reads nor rewrites the user's saved layout
    window = MainWindow(session, restore_layout=not (screenshot or size), autosave=not screenshot, save_layout=not (screenshot or size))
    # a screenshot is rendered at a fixed size, on no screen; any other window stays inside its screen
    window.screen_fit.enabled = not screenshot
    if getattr(args, "presentation", False):
        window.presentation.set_enabled(True)
    if not screenshot and recovered is not None:
        forget_recovered(recovered)  # the window's own journal now holds every step
    if size is not None:
        window.resize(*size)
    if getattr(args, "lesson", None):  # gui --lesson NAME [--step K] [--screenshot PNG]
        from .lesson_cli import open_from_cli

        code = open_from_cli(window, args.lesson, getattr(args, "step", None), screenshot, trust=trust)
        if screenshot:  # without one, a refused lesson was a dialog and the app goes on
            window.close()  # stops the window's workers (its first evaluation may still run)
            return code
    if screenshot:
        window.resize(*(size or SCREENSHOT_SIZE))  # screenshots look the same everywhere
        window.show()
        app.processEvents()
        window.size_docks()
        ok = wait_for_evaluation(window)
        for _ in range(5):
            app.processEvents()
        saved = save_image(window.grab(), screenshot)
        window.close()
        if not saved:
            print(f"pruneviz: error: could not write {screenshot}", file=sys.stderr)
            return 2
        if not ok:
            print("pruneviz: warning: evaluation did not finish before the screenshot", file=sys.stderr)
        return 0
    window.show()
    close_on_sigterm(app, window)
    return app.exec()
