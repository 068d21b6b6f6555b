"""A layer name from a file is shown as the text it is, never rendered as HTML: a layer named
``<img src=x><b>bold</b>`` reads exactly that in tooltips, labels, plot legends and titles."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtGui import QTextDocument, Qt
from torch import nn

from pruneviz.core.analysis import collect
from pruneviz.core.data import open_data
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.qt.conftest import demo_opener

NAME = "<img src=x><b>bold</b>"


def shown(text: str) -> str:
    """What Qt displays for a tooltip or an auto-format label: HTML when it looks like HTML."""
    doc = QTextDocument()
    if Qt.mightBeRichText(text):
        doc.setHtml(text)
    else:
        doc.setPlainText(text)
    return doc.toPlainText()


def test_literal_shows_every_text_as_itself():
    from pruneviz.qt.plain import literal

    for text in (NAME, "fc1: Linear (16, 64)", "a &lt; b", "  two  spaces\n<i>second</i> line", "x <b", ""):
        assert shown(literal(text)) == text
    assert literal("fc1: Linear") == "fc1: Linear"  # plain text stays as it was
    assert shown(NAME) != NAME  # what Qt does without it


def _session() -> Session:
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module(NAME, nn.Linear(64, 16))
    m.add_module("relu", nn.ReLU())
    m.add_module("out", nn.Linear(16, 10))
    return Session(LoadedModel(m, "html-names", "state_dict", None, torch.zeros(1, 64), True), open_data("demo:digits"), device="cpu")


@pytest.fixture
def html_window(qtbot):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(_session(), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None, timeout=30_000)
    yield w
    w.runner.shutdown(5000)


@pytest.mark.slow
def test_layer_name_tooltips_and_labels_are_plain_text(html_window, qtbot):
    w = html_window
    tip = w.tree.items[NAME].toolTip(0)
    assert shown(tip).startswith(f"{NAME}: Linear (16, 64)")
    w.tree.select(NAME)
    title = w.view.title
    assert title.textFormat() == Qt.TextFormat.PlainText and NAME in title.text()
    title.resize(40, title.height())  # elided: the whole text goes to the tooltip
    assert shown(title.toolTip()).startswith(f"Layer {NAME}")
    w.session.prune_neurons(NAME, [0])
    qtbot.waitUntil(lambda: w.actions["undo"].isEnabled())
    assert NAME in shown(w.actions["undo"].toolTip()) or shown(w.actions["undo"].toolTip()) == w.actions["undo"].text()
    # the knockout: the dock's label, the track's header tooltip, the plot's title
    assert w.decide.ko_layer.textFormat() == Qt.TextFormat.PlainText
    assert w.decide.run_knockout()
    qtbot.waitUntil(lambda: not w.decide.jobs.busy, timeout=60_000)
    assert f"Knockout of layer {NAME}" in shown(w.knockout_track.header.toolTip())
    assert w.decide.ko_layer.text() == f"layer {NAME}"
    from pruneviz.qt import decide_plots as dp

    res = collect(w.session.sensitivity(levels=[0.5]))
    plot = dp.sensitivity_plot(res)
    labels = [shown(label.text) for _sample, label in plot.getPlotItem().legend.items]
    assert NAME in labels
    ko = dp.knockout_plot(w.decide.ko_result)
    assert shown(ko.getPlotItem().titleLabel.text).startswith(f"Knockout of layer {NAME}")
