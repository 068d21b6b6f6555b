"""File handling in the window: trust and architecture prompts, Export…, heatmap PNG, recent
files, drag and drop. Dialogs are monkeypatched to answer, and the tests assert on what they showed."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox

from pruneviz.core import demo
from tests.core import models


class _Boxes:
    """Records every QMessageBox.exec() (the trust prompt) and answers with ``answer``."""

    def __init__(self, monkeypatch, answer):
        self.shown = []

        def exec_(box):
            self.shown.append((box.windowTitle(), box.text(), box.informativeText()))
            return answer

        monkeypatch.setattr(QMessageBox, "exec", exec_)


def test_trust_prompt_lists_imports_and_accept_opens(bare_window, tmp_path, monkeypatch):
    w = bare_window
    path = tmp_path / "full.pt"
    torch.save(models.mlp(), path)
    boxes = _Boxes(monkeypatch, QMessageBox.StandardButton.Yes)
    assert w.files.open_path(str(path)) is True
    title, text, info = boxes.shown[0]
    assert title == "Trust this file?" and "full.pt" in text
    assert "torch.nn.modules.linear.Linear" in info and "torch.nn.modules.container.Sequential" in info
    assert w.session.spec == str(path) and w.session.loaded.source == "pickle"
    assert [layer.name for layer in w.session.layers] == ["0", "2", "4"]
    assert w.heatmap.shape == (20, 12)


def test_trust_prompt_refused_keeps_session(bare_window, tmp_path, monkeypatch):
    w = bare_window
    s = w.session
    s.prune_neurons(w.layer, [2])
    path = tmp_path / "full.pt"
    torch.save(models.mlp(), path)
    boxes = _Boxes(monkeypatch, QMessageBox.StandardButton.No)
    assert w.files.open_path(str(path)) is False
    assert len(boxes.shown) == 1 and "Linear" in boxes.shown[0][2]
    assert w.session is s and s.history.index == 1 and not s.neuron_mask(w.layer)[2]


def test_state_dict_asks_for_architecture_then_opens(bare_window, tmp_path, monkeypatch):
    w = bare_window
    path = tmp_path / "weights.pt"
    torch.save(models.mlp().state_dict(), path)
    asked = []

    def get_text(parent, title, label, *a, **k):
        asked.append((title, label))
        return "tests.core.models:mlp", True

    monkeypatch.setattr(QInputDialog, "getText", get_text)
    assert w.files.open_path(str(path)) is True
    assert len(asked) == 1
    assert asked[0][0] == "Architecture needed" and "state_dict" in asked[0][1] and "package.module:function" in asked[0][1]
    assert w.session.arch == "tests.core.models:mlp"
    assert torch.equal(w.session.weight("0"), models.mlp()[0].weight.detach())


def test_state_dict_architecture_cancelled_keeps_session(bare_window, tmp_path, monkeypatch):
    w = bare_window
    s = w.session
    path = tmp_path / "weights.pt"
    torch.save(models.mlp().state_dict(), path)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("", False))
    errors = []
    w.errorShown.connect(errors.append)
    assert w.files.open_path(str(path)) is False
    assert w.session is s and not errors  # cancelling is not an error


def test_export_writes_loadable_state_dict_and_report(window, tmp_path, monkeypatch):
    w = window
    s = w.session
    s.prune(0.5, scope="global")
    s.prune_neurons(w.layer, [0, 5])
    out = tmp_path / "pruned.pt"
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "state_dict (*.pt)"))

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    w.files.export_dialog()
    assert asked and "Remove pruned neurons" in asked[0]
    state = torch.load(out, weights_only=True)
    fresh = demo.build("mlp")
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.state_dict()["0.weight"], s.weight("0"))
    assert int((fresh.state_dict()["0.weight"] == 0).sum()) >= int((~s.mask("0")).sum())
    report = json.loads((tmp_path / "pruned.report.json").read_text())
    assert report  # the JSON report sits beside the model
    assert "exported" in w.statusBar().currentMessage()


def test_save_heatmap_png(window, tmp_path, monkeypatch):
    w = window
    w.session.prune(0.4, scope="layer", layers=[w.layer])
    out = tmp_path / "heat.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, name, flt: (str(out), flt))
    w.files.save_heatmap_dialog()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = QImage(str(out))
    assert img.width() >= 300 and img.height() >= 200
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 50  # a drawn heatmap, not a blank widget


def test_recent_files_list_and_reopen(window):
    w = window
    assert w.files.open_path("demo:cnn") is True
    assert w.session.spec == "demo:cnn"
    assert w.files.open_path("demo:mlp") is True
    assert QSettings().value("recent")[:2] == ["demo:mlp", "demo:cnn"]
    actions = w.files.recent_menu.actions()
    assert [a.toolTip() for a in actions[:2]] == ["demo:mlp", "demo:cnn"]
    actions[1].trigger()  # reopen demo:cnn from File > Open recent
    assert w.session.spec == "demo:cnn"
    assert QSettings().value("recent")[:2] == ["demo:cnn", "demo:mlp"]


def _drop(widget, path):
    """Drag a file URL onto ``widget`` and drop it, as Qt delivers it (enter, then drop)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    with warnings.catch_warnings():  # PySide6 marks the QPoint constructor deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()  # the window takes file URLs
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)


def test_drop_model_file_opens_it(bare_window, tmp_path, monkeypatch):
    w = bare_window
    path = tmp_path / "dropped.pt"
    torch.save(models.mlp().state_dict(), path)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("tests.core.models:mlp", True))
    with_session = []
    w.sessionChanged.connect(with_session.append)
    _drop(w, path)
    assert with_session and w.session.spec == str(path)


def test_drop_data_file_attaches_it(bare_window, tmp_path, qtbot):
    w = bare_window
    x, y = demo.load_digits("test")
    path = tmp_path / "digits.npz"
    np.savez(path, x=x.numpy(), y=y.numpy())
    assert w.session.data is None and not w.acc.has_data and w.acc.no_data.isVisible()
    _drop(w, path)
    assert w.session.data is not None and w.acc.has_data and not w.acc.no_data.isVisible()
    assert "taylor" in [w.view.method.itemText(i) for i in range(w.view.method.count())]  # data methods offered
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None, timeout=30_000)
