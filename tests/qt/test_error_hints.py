"""A core error's hint, worded by the app: a menu, never a command-line flag."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from pruneviz.qt.hints import APP_HINTS


def test_missing_data_names_the_menu_not_the_flag(bare_window, monkeypatch):
    w = bare_window
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: shown.append(text))
    assert w.status.guard(w.session.evaluate) is None  # no evaluation data: refused, as a dialog
    assert len(shown) == 1
    assert "no evaluation data" in shown[0] and APP_HINTS["data"] in shown[0] and "--" not in shown[0]
