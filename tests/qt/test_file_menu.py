"""File > Demos, Open by name, Save / Open session; a model without data; the Prune dialog's scope."""

from __future__ import annotations

import torch
from PySide6.QtWidgets import QFileDialog, QInputDialog

from pruneviz.core import demo


def test_demos_menu_opens_each_demo_with_its_data_in_one_click(window, qtbot):
    w = window
    menu = w.files.demos_menu
    assert menu.menuAction() in w.actions.menu("file").actions()
    specs = [a.data() for a in menu.actions()]
    assert specs == [f"demo:{n}" for n in demo.NAMES]
    cnn = next(a for a in menu.actions() if a.data() == "demo:cnn")
    cnn.trigger()
    assert w.session.spec == "demo:cnn" and w.session.data is not None and w.session.data.spec == "demo:digits"
    qtbot.waitUntil(lambda: w.acc.current is not None, timeout=30_000)
    assert w.acc.has_data


def test_open_by_name_accepts_demo_specs_and_files(bare_window, tmp_path, monkeypatch):
    w = bare_window
    assert w.session.data is None
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("demo:cnn", True))
    w.actions["open_spec"].trigger()
    assert w.session.spec == "demo:cnn" and w.session.data.spec == "demo:digits"
    path = tmp_path / "mlp.pt2"
    demo.export("mlp", tmp_path)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (str(path), True))
    w.actions["open_spec"].trigger()
    assert w.session.spec == str(path) and w.session.data.spec == "demo:digits"  # the data is kept


def test_save_session_then_open_it_gives_back_every_step(window, tmp_path, monkeypatch):
    w = window
    s = w.session
    s.prune(0.3, scope="global")
    s.prune_neurons(w.layer, [2, 5])
    s.prune_weights(w.layer, [0, 1])
    s.undo()
    path = tmp_path / "lesson.pvz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    w.actions["save_session"].trigger()
    assert path.exists()
    w.files.open_spec("demo:cnn")
    assert w.session.spec == "demo:cnn"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    w.actions["open_session"].trigger()
    r = w.session
    assert r.spec == "demo:mlp" and r.history.labels == s.history.labels and r.history.index == s.history.index
    for k, v in s.model.state_dict().items():
        assert torch.equal(r.model.state_dict()[k], v), k
    assert [w.history.item(i).text() for i in range(w.history.count())][1:] == s.history.labels


def test_a_model_without_data_says_so_and_the_demo_data_button_fixes_it(bare_window, qtbot):
    w = bare_window
    acc = w.acc
    assert w.session.data is None and acc.no_data.isVisible()
    assert "accuracy cannot be measured" in acc.no_data_text.text()
    assert not acc.curve_plot.isVisible() and not acc.class_plot.isVisible()
    assert acc.use_demo.text() == "Use the demo data" and acc.open_data.text() == "Open data…"
    acc.use_demo.click()
    assert w.session.data is not None and w.session.data.spec == "demo:digits"
    assert not acc.no_data.isVisible() and acc.curve_plot.isVisible()
    qtbot.waitUntil(lambda: acc.current is not None and acc.baseline is not None, timeout=30_000)


def test_open_data_button_opens_the_data_dialog(bare_window, monkeypatch, tmp_path):
    w = bare_window
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: asked.append(a[1]) or ("", ""))
    w.acc.open_data.click()
    assert asked == ["Open evaluation data"] and w.session.data is None


def test_prune_dialog_says_what_global_means_for_the_layers_ticked(window):
    from pruneviz.qt.controls import PruneDialog

    w = window
    s = w.session
    d = PruneDialog(s, w.layer, w)
    assert d.args().layers == [w.layer]
    d.scope.setCurrentText("global")
    assert "one layer" in d.scope_note.text() and "same as per layer" in d.scope_note.text()
    d.all_layers.click()
    assert d.args().layers == [layer.name for layer in s.layers]
    assert "Global: one ranking over all layers" in d.scope_note.text()
    d.granularity.setCurrentText("neuron")
    d.all_layers.click()  # the output layer is never neuron-pruned unless named alone
    assert d.args().layers == [layer.name for layer in s.layers if not layer.is_output]
    d.only_current.click()
    assert d.args().layers == [w.layer]
    d.scope.setCurrentText("layer")
    assert d.scope_note.text().startswith(f"Per layer: each of layer {w.layer} only")
