"""Lessons in the real window: a lesson naming code asks first (the session file's trust prompt,
naming the module's file and the lesson), and lesson steps reach the autosave journal."""

from __future__ import annotations

import uuid

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from pruneviz.core import persist
from pruneviz.core.session import Session

from tests.core.test_lesson_safety import EVIL, GOOD, LESSON  # one copy of the hostile and benign modules


def _answer(accept: bool, seen: list[str]) -> None:
    """Answer the next modal message box (the real one) as a user would, noting what it said."""

    tries = [500]  # about 10 s: a box that never comes must not be answered in a later test

    def poll():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text() + "\n" + box.informativeText())
            box.button(QMessageBox.StandardButton.Yes if accept else QMessageBox.StandardButton.No).click()
        elif tries[0] > 0:
            tries[0] -= 1
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def _setup(tmp_path, monkeypatch, source: str):
    monkeypatch.chdir(tmp_path)  # where the factory would be imported from
    marker = tmp_path / "MARKER"
    mod = f"lessonmod_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{mod}.py").write_text(source.format(marker=str(marker)) if "{marker" in source else source)
    path = tmp_path / "shared.toml"
    path.write_text(LESSON.format(data=f"{mod}:make"))
    return path, mod, marker


def test_lesson_naming_a_module_asks_and_refusing_runs_nothing(qtbot, window, tmp_path, monkeypatch):
    path, mod, marker = _setup(tmp_path, monkeypatch, EVIL)
    errors: list[str] = []
    monkeypatch.setattr(window.status, "show_error", errors.append)
    seen: list[str] = []
    _answer(False, seen)
    assert window.lessons.start(str(path)) is False
    assert len(seen) == 1 and "shared.toml" in seen[0] and str(tmp_path / f"{mod}.py") in seen[0], seen
    assert not marker.exists() and window.lessons.run is None and not window.lessons.dock.isVisible()
    assert errors == []  # refusing is the user's answer, not an error


def test_lesson_naming_a_module_runs_it_once_trusted(qtbot, window, tmp_path, monkeypatch):
    path, mod, _ = _setup(tmp_path, monkeypatch, GOOD)
    seen: list[str] = []
    _answer(True, seen)
    ctrl = window.lessons
    with qtbot.waitSignal(ctrl.opened, timeout=60_000):
        assert ctrl.start(str(path))
    assert len(seen) == 1 and f"imports {mod} from" in seen[0]
    assert len(window.session.data) == 50  # the factory's data


def test_shipped_lessons_open_without_a_prompt(qtbot, window, monkeypatch):
    asked = []
    monkeypatch.setattr("pruneviz.qt.lesson_panel.ask_trust", lambda *a: asked.append(a) or False)
    ctrl = window.lessons
    with qtbot.waitSignal(ctrl.opened, timeout=60_000):
        assert ctrl.start("criteria")
    assert asked == []


STEPS = """\
title = "journal"
model = "demo:mlp"
data = "demo:digits"
claim = "cut >= 0 and first_steps == 5"

[[steps]]
caption = "neurons one at a time"
action = "loop"
method = "magnitude"
max_steps = 5
record = "first"
layer = "0"

[[steps]]
caption = "then a global cut"
action = "prune"
amount = 0.3
scope = "global"
record = "cut"
"""


def _assert_journal_replays(path, live) -> None:
    """The journal, replayed into a fresh session, gives the live session's history and masks."""
    head, records = persist.read_journal(path)
    fresh = Session.open(head["model"], data=head.get("data"), device="cpu")
    persist.replay(fresh, records)
    assert fresh.history.labels[: fresh.history.index] == live.history.labels[: live.history.index]
    for layer in live.layers:
        assert torch.equal(fresh.mask(layer.name), live.mask(layer.name)), layer.name


def test_lesson_steps_and_a_hand_edit_are_all_journaled(qtbot, tmp_path, monkeypatch):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(tmp_path / "data"))
    make_app()
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    w = MainWindow(s, restore_layout=False, autosave=True)
    qtbot.addWidget(w)
    w.show()
    errors: list[str] = []
    monkeypatch.setattr(w.status, "show_error", errors.append)
    lesson = tmp_path / "steps.toml"
    lesson.write_text(STEPS)
    ctrl = w.lessons
    with qtbot.waitSignal(ctrl.opened, timeout=60_000):
        assert ctrl.start(str(lesson))
    for _ in range(2):
        with qtbot.waitSignal(ctrl.stepShown, timeout=60_000):
            ctrl.panel.next.click()
    live = w.session
    assert errors == []
    assert live is ctrl.run.session and live.history.index == 6  # five loop prunes and the cut
    assert w.autosave.flush(30)  # the background writer has written what it was handed
    _assert_journal_replays(w.autosave.path, live)  # a kill -9 now keeps the lesson's steps
    live.prune_neurons("2", [0, 1])  # a hand edit after the lesson's steps
    assert w.autosave.flush(30)
    _assert_journal_replays(w.autosave.path, live)
    assert live.history.index == 7
    ctrl.close()
    w.close()


def test_each_lesson_step_is_one_change_and_an_edit_when_it_moved_the_history(qtbot, window, tmp_path, monkeypatch):
    """Listeners (the autosave journal among them) hear of every step the lesson ran: one change
    per lesson step, of kind "edit" when it moved the history, "load" (a refresh) when not."""
    errors: list[str] = []
    monkeypatch.setattr(window.status, "show_error", errors.append)
    lesson = tmp_path / "steps.toml"
    lesson.write_text(STEPS.replace('claim = "cut >= 0 and first_steps == 5"', 'claim = "cut >= 0 and base >= 0"') + '\n[[steps]]\ncaption = "measure"\naction = "evaluate"\nrecord = "base"\n')
    ctrl = window.lessons
    with qtbot.waitSignal(ctrl.opened, timeout=60_000):
        assert ctrl.start(str(lesson))
    s = window.session
    heard = []
    s.changed.connect(heard.append)
    kinds = []
    for _ in range(3):
        heard.clear()
        with qtbot.waitSignal(ctrl.stepShown, timeout=60_000):
            ctrl.panel.next.click()
        kinds.append([c.kind for c in heard])
    assert errors == [] and s.history.index == 6
    assert kinds == [["edit"], ["edit"], ["load"]]
    s.changed.disconnect(heard.append)


def test_gui_lesson_screenshot_needs_trust_for_a_factory(tmp_path, monkeypatch, qapp, capsys):
    from pruneviz import cli

    path, mod, marker = _setup(tmp_path, monkeypatch, EVIL)
    png = tmp_path / "x.png"
    assert cli.main(["gui", "--lesson", str(path), "--screenshot", str(png)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pruneviz: error: shared.toml names code to run") and f"{mod}.py" in err[0], err
    assert not marker.exists() and not png.exists()
