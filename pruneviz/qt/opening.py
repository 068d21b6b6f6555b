"""Opening a model from the app: the trust and architecture prompts, the demo's default data.

Used by the app's start-up (:mod:`pruneviz.qt.app`) and by the window's file actions; it imports
neither, so there is no import cycle between them.
"""

from __future__ import annotations

from pruneviz.core.errors import ArchRequired, PrunevizError, TrustRequired

from .hints import error_text
from .plain import literal

DEMO = ("demo:mlp", "demo:digits")


def default_data(model: str, data: str | None) -> str | None:
    """The data to open ``model`` with: ``data`` when given, else the demo data for a ``demo:``
    model (so ``pruneviz gui demo:cnn`` and File > Demos evaluate at once)."""
    if data:
        return data
    return DEMO[1] if isinstance(model, str) and model.startswith("demo:") else None


def default_open(model, data, arch, trust, device="auto"):
    from pruneviz.core.session import Session

    return Session.open(model, data=data, arch=arch, trust=trust, device=device)


def ask_trust(parent, exc: TrustRequired) -> bool:
    """Ask whether to open a file that runs code; lists what it would import."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Trust this file?")
    box.setText(literal(exc.message))
    imports = exc.imports or ["(not known)"]
    box.setInformativeText(literal("Opening it runs code from the file. It would import:\n  " + "\n  ".join(imports[:30]) + ("\n  …" if len(imports) > 30 else "") + "\n\nOpen it only if you trust where it came from."))
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Trust and open")
    return box.exec() == QMessageBox.StandardButton.Yes


def open_session_interactive(parent, model, data, arch=None, opener=None, trust=False, device="auto", *, ask_arch=None, report=None):
    """Open a Session, asking about trust (:class:`TrustRequired`) and the architecture
    (:class:`ArchRequired`, via ``ask_arch(message) -> arch or None``) as needed; other errors go
    to ``report(message)`` (a message box over ``parent`` when not given).

    Returns the Session, or None (the caller keeps what it had)."""
    opener = opener or default_open
    for _ in range(3):
        try:
            return opener(model, data, arch, trust, device) if opener is default_open else opener(model, data, arch, trust)
        except TrustRequired as exc:
            if trust or not ask_trust(parent, exc):
                return None
            trust = True
        except ArchRequired as exc:
            if arch is None and ask_arch is not None:
                arch = ask_arch(exc.message)
                if arch:
                    continue
                return None
            _report(parent, report, error_text(exc))
            return None
        except PrunevizError as exc:
            _report(parent, report, error_text(exc))
            return None
    return None


def _report(parent, report, msg: str) -> None:
    from PySide6.QtWidgets import QMessageBox

    if report is not None:
        report(msg)
    else:
        QMessageBox.warning(parent, "pruneviz", literal(msg))


def replace_question(parent, session, title: str, what: str, go: str):
    """A question box (not yet shown) before ``what`` replaces ``session`` and its edits: returns
    the box and its ``go`` button (Cancel is the default)."""
    from PySide6.QtWidgets import QMessageBox

    n = session.history.index
    box = QMessageBox(QMessageBox.Icon.Question, title,
                      literal(f"{what}, replacing {session.spec} and its "
                              f"{n} edit{'s' if n != 1 else ''} (File > Save session keeps them)."),
                      QMessageBox.StandardButton.Cancel, parent)
    start = box.addButton(go, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box, start
