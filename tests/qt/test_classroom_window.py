"""Rough edges a class finds: a lesson replacing an edited model without asking, and
``gui --lesson nosuch --screenshot`` aborting (exit 134) instead of exiting 2."""

from __future__ import annotations

import argparse

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def _answer(ctrl, start: bool, seen: list) -> None:
    """Click the "Start the lesson?" box once it is open (it is modal: a timer answers it)."""

    def click():
        box = ctrl.replace_box
        if box is None:
            QTimer.singleShot(10, click)
            return
        seen.append(box.text())
        target = next(b for b in box.buttons() if (b is box.button(QMessageBox.StandardButton.Cancel)) != start)
        target.click()

    QTimer.singleShot(0, click)


def test_starting_a_lesson_asks_before_replacing_an_edited_model(window, qtbot):
    w, ctrl = window, window.lessons
    s = w.session
    s.prune(0.3)
    seen: list = []
    _answer(ctrl, start=False, seen=seen)
    assert not ctrl.start("node-loop")
    assert seen and "1 edit" in seen[0] and "demo:mlp" in seen[0]
    assert w.session is s and s.history.index == 1 and not ctrl.dock.isVisible()  # nothing replaced
    _answer(ctrl, start=True, seen=seen)
    assert ctrl.start("node-loop")
    assert ctrl.wait_idle(120_000)
    assert len(seen) == 2 and w.session is not s and ctrl.dock.isVisible()
    # the lesson's own session is not asked about: a second start replaces it at once
    w.session.prune(0.1)
    assert ctrl.start("node-loop") and ctrl.wait_idle(120_000)
    assert len(seen) == 2
    ctrl.close()


def test_gui_with_an_unknown_lesson_and_a_screenshot_exits_2_with_one_line_and_no_worker_left(tmp_path, capsys):
    """The refused lesson returned while the window's first evaluation ran in its thread; the
    window was never closed, and Qt aborted the process at exit (134) in most runs."""
    from pruneviz.qt import app as qtapp
    from pruneviz.qt.main_window import MainWindow

    args = argparse.Namespace(model=None, data=None, arch=None, trust=False, device="cpu", screenshot=str(tmp_path / "x.png"),
                              size=None, presentation=False, lesson="nosuch", step=None)
    before = {id(t) for t in QApplication.topLevelWidgets() if isinstance(t, MainWindow)}
    assert qtapp.run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pruneviz: error: no lesson named 'nosuch'")
    ours = [t for t in QApplication.topLevelWidgets() if isinstance(t, MainWindow) and id(t) not in before]
    assert ours and all(not t.isVisible() and not t.runner.busy for t in ours)  # closed, its workers joined
    assert not (tmp_path / "x.png").exists()


def test_opening_another_model_after_a_knockout_raises_nothing(window, qtbot):
    """Found by a long scripted session: the new model's criterion list redrew the old model's
    knockout and asked the new session for a layer it does not have (an exception in a slot)."""
    p = window.decide
    assert p.run_knockout()
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=120_000)
    assert p.ko_result and p.ko_result["layer"] == "0"
    assert window.files.open_spec("demo:cnn")  # pytest-qt fails the test on an exception in a slot
    assert window.session.spec == "demo:cnn" and p.ko_result is None
