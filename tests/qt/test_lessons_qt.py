"""Lessons in the real window: menus, Back / Next through the worker, predict steps, the
playground's clickable network, refused and broken lesson files, the --lesson screenshot."""

from __future__ import annotations

import struct

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from pruneviz import cli
from pruneviz.core import lessons as core
from pruneviz.qt import lesson_charts as lc


@pytest.fixture
def errors(window, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(window.status, "show_error", seen.append)
    return seen


def _start(qtbot, window, name: str):
    ctrl = window.lessons
    with qtbot.waitSignal(ctrl.opened, timeout=60_000):
        assert ctrl.start(name)
    return ctrl


def _next(qtbot, ctrl):
    """Press Next and wait until the step has run and is shown."""
    with qtbot.waitSignal(ctrl.stepShown, timeout=60_000):
        ctrl.panel.next.click()


def test_menus_list_every_lesson(window):
    menu = window.lessons.menu
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    for name in core.available():
        lesson = core.load(name)
        act = window.lessons.lesson_actions[name]
        assert act.text().startswith(lesson.title)
        assert act.isEnabled() == lesson.runnable
        if not lesson.runnable:
            assert f"(needs: {lesson.needs[0]})" in act.text()
    assert "Open lesson file…" in texts
    assert window.lessons.act_open is window.actions["open_lesson"]
    assert window.lessons.act_open in window.actions.menu("file").actions()


def test_criteria_lesson_through_the_window(qtbot, window, errors):
    ctrl = _start(qtbot, window, "criteria")
    s = window.session
    assert s is ctrl.run.session and ctrl.dock.isVisible()
    assert not window.centralWidget().isVisible()  # the lesson takes the editor's place
    _next(qtbot, ctrl)  # evaluate
    assert ctrl.run.figures["baseline"] == pytest.approx(s.evaluate().accuracy)
    _next(qtbot, ctrl)  # predict: a multiple choice, not yet revealed
    p = ctrl.panel
    assert p.stack.currentWidget() is p.predict and len(p.predict.buttons) == 4 and not p.predict.revealed
    qtbot.mouseClick(p.predict.buttons[3], Qt.MouseButton.LeftButton)  # D: random
    assert p.predict.revealed and p.predict.verdict.text().startswith("<b>Right!</b>")
    _next(qtbot, ctrl)  # the sweep, in the worker
    chart = p.chart.charts[0]
    assert [c["name"] for c in chart["series"]] == ["magnitude", "taylor", "obd", "random"]
    assert s.sparsity() == 0.0 and s.history.index == 0  # prune, evaluate, undo: left as it was
    _next(qtbot, ctrl)  # prune taylor 70 %, keep = false
    assert ctrl.run.done == 4 and p.next.text().startswith("What we saw")
    _next(qtbot, ctrl)
    assert ctrl.page == "summary" and "holds" in p.summary.text() and "accuracy_random_70" in p.summary.text()
    assert not errors
    ctrl.close()
    assert window.centralWidget().isVisible() and window.dock_layers.isVisible()


def test_back_undoes_a_step_and_the_window_follows(qtbot, window, errors, tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('title = "mine"\nmodel = "demo:mlp"\ndata = "demo:digits"\nclaim = "half < 1"\n\n[[steps]]\ncaption = "c"\naction = "evaluate"\nrecord = "b"\n\n[[steps]]\ncaption = "p"\naction = "prune"\namount = 0.5\nrecord = "half"\n')
    ctrl = _start(qtbot, window, str(mine))
    s = window.session
    _next(qtbot, ctrl)
    _next(qtbot, ctrl)  # prune 50 % in the worker
    assert s.sparsity() == pytest.approx(0.5, abs=0.01)
    assert window.history.count() == 2  # the window refreshed once the worker was done
    with qtbot.waitSignal(ctrl.stepShown, timeout=10_000):
        ctrl.panel.back.click()
    assert s.sparsity() == 0.0 and ctrl.run.done == 1 and "half" not in ctrl.run.figures
    assert window.history.currentRow() == 0
    _next(qtbot, ctrl)
    assert s.sparsity() == pytest.approx(0.5, abs=0.01) and ctrl.run.figures["half"] == pytest.approx(s.evaluate().accuracy)
    assert not errors


def test_cancel_a_running_step(qtbot, window, errors):
    ctrl = _start(qtbot, window, "node-loop")
    s = window.session
    _next(qtbot, ctrl)  # evaluate
    ctrl.panel.next.click()  # the bounded loop: ~60 neurons, each evaluated
    assert ctrl.jobs.busy and ctrl.panel.back.text() == "Cancel"
    with qtbot.waitSignal(ctrl.stepShown, timeout=30_000):
        ctrl.panel.back.click()
    assert ctrl.run.done == 1 and s.history.index == 0 and s.sparsity() == 0.0
    assert not errors


def test_playground_click_prunes_and_undo_restores(qtbot, window, errors):
    ctrl = _start(qtbot, window, "playground")
    s = window.session
    view = ctrl.panel.playground
    assert s.data.x.shape[1] == 2 and view.session is s
    qtbot.waitUntil(lambda: view.width() > 300)
    view.repaint()
    nodes, edges = view._geom
    node = next(n for n in nodes if n.layer == "0" and n.index == 3)
    with qtbot.waitSignal(view.edited):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(round(node.at.x()), round(node.at.y())))
    assert not bool(s.neuron_mask("0")[3]) and s.history.labels[-1] == "prune neuron 3 of 0"
    import pruneviz.core.toy as toy

    assert toy.boundary(s, 120) == pytest.approx(view._grid)  # the boundary drawn is the live model's
    window.actions["undo"].trigger()
    assert bool(s.neuron_mask("0")[3])
    view.repaint()
    edge = next(e for e in view._geom[1] if e.layer == "2" and e.row == 1 and e.col == 5)
    mid = (edge.a + edge.b) / 2
    at = QPoint(round(mid.x()), round(mid.y()))
    hit = lc.hit(*view._geom, QPointF(at))  # the edge under that pixel (edges cross)
    assert isinstance(hit, lc.Edge) and hit.kept
    with qtbot.waitSignal(view.edited):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at)
    assert not bool(s.mask(hit.layer)[hit.row, hit.col]) and int((~s.mask(hit.layer)).sum()) == 1
    window.actions["undo"].trigger()
    assert bool(s.mask(hit.layer).all())
    assert not errors


def test_refused_and_broken_lessons_are_messages(qtbot, window, errors, tmp_path):
    ctrl = window.lessons
    bad = tmp_path / "broken.toml"
    bad.write_text('title = "x"\nmodel = "demo:mlp"\nclaim = "a > 1"\n\n[[steps]]\ncaption = "c"\naction = "evaluate"\nrecord = 7\n')
    assert not ctrl.start(str(bad))
    assert errors == ["broken.toml, line 8: step 1: record must be a string, got 7"]
    if not core.has_verb("finetune"):
        assert not ctrl.start("fine-tune")
        assert errors[-1] == "lesson 'fine-tune' needs Session.finetune, which this version of pruneviz does not have yet"
    assert not ctrl.dock.isVisible() and window.centralWidget().isVisible()


def test_predict_scales_with_the_window_font(qtbot, window, errors):
    ctrl = _start(qtbot, window, "faithful")
    _next(qtbot, ctrl)
    _next(qtbot, ctrl)
    small = ctrl.panel.predict.question.font().pointSizeF()
    ctrl.back()
    f = window.font()
    f.setPointSizeF(f.pointSizeF() * 2)
    window.setFont(f)
    _next(qtbot, ctrl)
    assert ctrl.panel.predict.question.font().pointSizeF() == pytest.approx(2 * small)


@pytest.mark.slow
def test_lesson_screenshot_via_cli(tmp_path, qapp):
    out = tmp_path / "lesson.png"
    assert cli.main(["gui", "--lesson", "playground", "--step", "3", "--screenshot", str(out)]) == 0
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1280, 720)


def test_lesson_screenshot_refused_exits_2(tmp_path, qapp, capsys):
    assert cli.main(["gui", "--lesson", "nope", "--screenshot", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("pruneviz: error: no lesson named 'nope'")
    assert not (tmp_path / "x.png").exists()
    if not core.has_verb("finetune"):
        assert cli.main(["gui", "--lesson", "fine-tune", "--screenshot", str(tmp_path / "x.png")]) == 2
        assert capsys.readouterr().err.strip() == "pruneviz: error: lesson 'fine-tune' needs Session.finetune, which this version of pruneviz does not have yet"
    assert cli.main(["gui", "--step", "2", "--screenshot", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == "pruneviz: error: --step needs --lesson NAME"
    assert not (tmp_path / "x.png").exists()


def test_closing_mid_lesson_saves_the_editor_layout(qtbot, window, errors):
    from pruneviz.qt.main_window import MainWindow

    _start(qtbot, window, "criteria")
    assert not window.dock_layers.isVisible()
    window.close()
    again = MainWindow(window.session)  # restores the layout the first window saved
    qtbot.addWidget(again)
    again.show()
    assert again.dock_layers.isVisible() and again.centralWidget().isVisible()
    assert not again.lessons.dock.isVisible()
    again.runner.shutdown(5000)


def test_a_failing_step_is_a_message_and_the_session_is_unchanged(qtbot, window, errors, tmp_path):
    mine = tmp_path / "bad-step.toml"
    mine.write_text('title = "t"\nmodel = "demo:mlp"\ndata = "demo:digits"\nclaim = "b > 0"\n\n[[steps]]\ncaption = "c"\naction = "evaluate"\nrecord = "b"\n\n[[steps]]\ncaption = "p"\naction = "prune_neurons"\nlayer = "0"\nneurons = [1, 500]\n')
    ctrl = _start(qtbot, window, str(mine))
    _next(qtbot, ctrl)
    _next(qtbot, ctrl)
    assert errors == ["neuron index out of range for layer 0 with 128 neurons"]
    assert ctrl.run.done == 1 and window.session.sparsity() == 0.0 and ctrl.panel.next.isEnabled()


@pytest.mark.slow
def test_readme_teaching_gui_command(tmp_path, qapp, monkeypatch):
    import shlex

    from tests.core.test_lessons import teaching_commands

    monkeypatch.chdir(tmp_path)
    (cmd,) = [c for c in teaching_commands() if c.startswith("pruneviz gui")]
    assert cli.main(shlex.split(cmd)[1:]) == 0
    assert (tmp_path / "playground.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
