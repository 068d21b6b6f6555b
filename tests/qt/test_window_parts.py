"""The window's shared parts on their own: the window state and the action registry."""

import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMainWindow

from pruneviz.qt.actions import MENUS, ActionRegistry
from pruneviz.qt.window_state import WindowState


def test_state_says_what_changed_and_a_new_layer_clears_the_selection(qtbot):
    state = WindowState()
    seen = []
    state.sessionChanged.connect(lambda s: seen.append(("session", s)))
    state.layerChanged.connect(lambda name: seen.append(("layer", name)))
    state.selectionChanged.connect(lambda rows: seen.append(("selection", rows)))
    marker = object()
    state.set_session(marker)
    assert state.session is marker and state.layer is None and state.selected == set()
    assert state.set_layer("fc1") is True
    state.select([3, 7, 3])
    assert state.selected == {3, 7}
    assert state.set_layer("fc1") is False  # already shown: the selection stays
    assert state.selected == {3, 7}
    state.set_layer("fc2")
    assert state.layer == "fc2" and state.selected == set()
    assert seen == [("session", marker), ("layer", "fc1"), ("selection", {3, 7}), ("layer", "fc2"), ("selection", set())]


def test_registry_keeps_menus_in_menu_bar_order_whoever_asks_first(qtbot):
    win = QMainWindow()
    qtbot.addWidget(win)
    acts = ActionRegistry(win)
    called = []
    acts.add("train", "T&rain…", lambda: called.append("train"), menu="prune")
    acts.add("lesson:x", "X", lambda: called.append("x"), menu="lessons")
    acts.add("open", "&Open…", lambda: called.append("open"), menu="file", shortcut=QKeySequence.StandardKey.Open, toolbar=True)
    acts.menu("view")
    titles = [a.text() for a in win.menuBar().actions()]
    assert titles == [MENUS[k] for k in ("file", "prune", "view", "lessons")]
    assert acts["open"] in acts.menu("file").actions() and acts["open"] in acts.toolbar.actions()
    assert acts["open"].shortcut() == QKeySequence(QKeySequence.StandardKey.Open)  # the platform's first binding
    acts["train"].setText("Train (renamed)")  # found by verb, whatever the label says
    acts["train"].trigger()
    acts["open"].trigger()
    assert called == ["train", "open"]
    assert acts.verbs() == ["train", "lesson:x", "open"] and "open" in acts and "nothing" not in acts


def test_registry_refuses_a_second_action_for_a_verb_and_names_the_known_ones(qtbot):
    win = QMainWindow()
    qtbot.addWidget(win)
    acts = ActionRegistry(win)
    acts.add("undo", "Undo", None, menu="edit")
    with pytest.raises(ValueError, match="registered twice"):
        acts.add("undo", "Undo again", None)
    with pytest.raises(KeyError, match="known: undo"):
        acts["redo"]
    with pytest.raises(KeyError, match="no menu 'tools'"):
        acts.menu("tools")
