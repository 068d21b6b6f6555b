"""Start the app: ``run(args)`` from ``pruneviz gui`` (and from ``pruneviz`` with no arguments).

``--screenshot PNG`` renders the window once the first evaluation and the baseline are in,
saves it and exits (0), or prints ``pruneviz: error: …`` and exits 2 when the model cannot be
opened. Without it, errors go to a message box and the app starts on the demo instead.
"""

from __future__ import annotations

import os
import sys

from pruneviz.core.errors import ArchRequired, PrunevizError, TrustRequired

DEMO = ("demo:mlp", "demo:digits")
SCREENSHOT_SIZE = (1400, 900)


def _default_open(model, data, arch, trust, device="auto"):
    from pruneviz.core.session import Session

    return Session.open(model, data=data, arch=arch, trust=trust, device=device)


def ask_trust(parent, exc: TrustRequired) -> bool:
    """Ask whether to open a file that runs code; lists what it would import."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Trust this file?")
    box.setText(str(exc))
    imports = exc.imports or ["(not known)"]
    box.setInformativeText("Opening it runs code from the file. It would import:\n  " + "\n  ".join(imports[:30]) + ("\n  …" if len(imports) > 30 else "") + "\n\nOpen it only if you trust where it came from.")
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Trust and open")
    return box.exec() == QMessageBox.StandardButton.Yes


def open_session_interactive(parent, model, data, arch=None, opener=None, trust=False, device="auto"):
    """Open a Session, asking about trust (:class:`TrustRequired`) and the architecture
    (:class:`ArchRequired`, via ``parent.ask_arch``) as needed; other errors → message box.

    Returns the Session, or None (the caller keeps what it had)."""
    opener = opener or _default_open
    for _ in range(3):
        try:
            return opener(model, data, arch, trust, device) if opener is _default_open else opener(model, data, arch, trust)
        except TrustRequired as exc:
            if trust or not ask_trust(parent, exc):
                return None
            trust = True
        except ArchRequired as exc:
            if arch is None and hasattr(parent, "ask_arch"):
                arch = parent.ask_arch(str(exc))
                if arch:
                    continue
                return None
            _report(parent, str(exc))
            return None
        except PrunevizError as exc:
            _report(parent, str(exc))
            return None
    return None


def _report(parent, msg: str) -> None:
    from PySide6.QtWidgets import QMessageBox

    if hasattr(parent, "show_error"):
        parent.show_error(msg)
    else:
        QMessageBox.warning(parent, "pruneviz", msg)


def recover_interactive(device="auto"):
    """If a previous run did not exit cleanly, offer to reopen its autosaved session."""
    from PySide6.QtWidgets import QMessageBox

    from pruneviz.core import persist

    for path in persist.recoverable():
        try:
            head, records = persist.read_journal(path)
        except PrunevizError:
            path.unlink(missing_ok=True)  # torn beyond use: nothing to offer
            continue
        steps = sum(1 for r in records if isinstance(r, dict) and r.get("op") == "push")
        answer = QMessageBox.question(
            None,
            "Recover session?",
            f"pruneviz did not exit cleanly last time.\n\nRecover the session on {head.get('model')} "
            f"({steps} edit{'s' if steps != 1 else ''}, saved {head.get('saved', '?')})?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
        )
        if answer != QMessageBox.StandardButton.Yes:
            path.unlink(missing_ok=True)
            continue
        for trust in (False, True):
            try:
                session = persist.load_session(path, trust=trust, device=device)
            except TrustRequired as exc:
                if trust or not ask_trust(None, exc):
                    break
                continue
            except PrunevizError as exc:
                QMessageBox.warning(None, "pruneviz", f"could not recover: {exc}")
                break
            return session, path
    return None, None


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
    return app


def wait_for_evaluation(window, timeout_ms: int = 120_000) -> bool:
    """Process events until the first result (and the baseline, when there is data) arrived."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    s = window.session
    if s.data is None:
        return True
    loop = QEventLoop()
    done = lambda: window.acc.current is not None and window.acc.baseline is not None  # noqa: E731
    check = QTimer()
    check.setInterval(20)
    check.timeout.connect(lambda: loop.quit() if done() else None)
    check.start()
    clock = QElapsedTimer()
    clock.start()
    while not done() and clock.elapsed() < timeout_ms:
        loop.exec()
    check.stop()
    return done()


def run(args) -> int:
    """Open the session described by ``args`` (cli ``gui`` arguments) and run the window."""
    screenshot = getattr(args, "screenshot", None)
    if getattr(args, "step", None) and not getattr(args, "lesson", None):
        print("pruneviz: error: --step needs --lesson NAME", file=sys.stderr)
        return 2
    app = make_app(bool(screenshot))
    from PySide6.QtWidgets import QMessageBox

    from .main_window import MainWindow

    model, data = getattr(args, "model", None) or DEMO[0], getattr(args, "data", None)
    arch, trust, device = getattr(args, "arch", None), bool(getattr(args, "trust", False)), getattr(args, "device", "auto") or "auto"
    session = recovered = None
    if screenshot:
        try:
            session = _default_open(model, data, arch, trust, device)
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
            session = _default_open(*DEMO, None, False, device)
    window = MainWindow(session, restore_layout=not screenshot, autosave=not screenshot)
    if not screenshot and recovered is not None:
        recovered.unlink(missing_ok=True)  # the window's own journal now holds every step  # screenshots look the same everywhere
    if getattr(args, "lesson", None):  # gui --lesson NAME [--step K] [--screenshot PNG]
        from .lesson_panel import open_from_cli

        code = open_from_cli(window, args.lesson, getattr(args, "step", None), screenshot)
        if screenshot:  # without one, a refused lesson was a dialog and the app goes on
            return code
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        app.processEvents()
        window._size_docks()
        ok = wait_for_evaluation(window)
        for _ in range(5):
            app.processEvents()
        saved = window.grab().save(screenshot)
        window.close()
        if not saved:
            print(f"pruneviz: error: could not write {screenshot}", file=sys.stderr)
            return 2
        if not ok:
            print("pruneviz: warning: evaluation did not finish before the screenshot", file=sys.stderr)
        return 0
    window.show()
    return app.exec()
