"""Conv layers read as filters: channel separators and channel/kernel hover in the heatmap, the
per-filter kernel tiles (click to prune/restore a kernel, following undo), and the accuracy
panel's text staying inside its dock."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from pruneviz.qt.kernels import KernelLayout
from tests.qt.conftest import demo_opener, open_demo


@pytest.fixture
def cnn_window(qtbot):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(open_demo("cnn"), open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None, timeout=30_000)
    yield w
    w.runner.shutdown(5000)


def _show(w, qtbot, layer):
    w.tree.select(layer)
    assert w.layer == layer
    qtbot.waitUntil(lambda: w.heatmap.vb.width() > 100)


def test_kernel_layout_locates_columns():
    k = KernelLayout.of((32, 16, 3, 3))
    assert (k.channels, k.kernel, k.group) == (16, (3, 3), 9)
    assert k.locate(14) == (1, (1, 2))
    assert k.describe(12, 3 * 9 + 5) == "neuron 12, input channel 3, kernel (1, 2)"
    assert KernelLayout.of((64, 512)).describe(12, 40) == "neuron 12, input 40"


def test_conv_heatmap_has_channel_separators_linear_has_none(cnn_window, qtbot):
    w = cnn_window
    _show(w, qtbot, "4")
    h = w.heatmap
    assert h.separators.isVisible()
    np.testing.assert_array_equal(h.separator_columns, 9 * np.arange(1, 16))
    assert h.separator_spacing_px >= 4
    assert "channel" in h.plot.getAxis("bottom").labelText
    _show(w, qtbot, "12")
    assert not h.separators.isVisible() and h.separator_columns.size == 0
    assert h.plot.getAxis("bottom").labelText == "input"


def test_separators_hide_when_denser_than_4_pixels(qtbot):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.heatmap_view import HeatmapView

    make_app()
    v = HeatmapView()
    qtbot.addWidget(v)
    v.resize(500, 300)
    v.show()
    qtbot.waitUntil(lambda: v.vb.width() > 100)
    v.set_kernels(KernelLayout(400, (3, 3)))  # 3600 columns in a few hundred pixels
    v.set_layer(np.ones((4, 3600), np.float32), np.zeros((4, 3600), bool))
    assert v.separator_spacing_px < 4 and not v.separators.isVisible()
    v.vb.setXRange(0, 90, padding=0)  # zoomed in on 10 channels: separators come back
    assert v.separators.isVisible()
    cols = v.separator_columns
    assert cols.min() >= 9 and cols.max() <= 99 and np.all(cols % 9 == 0)


def test_hover_names_channel_and_kernel_position(cnn_window, qtbot):
    w = cnn_window
    _show(w, qtbot, "4")
    scene = w.heatmap.vb.mapViewToScene(QPointF(3 * 9 + 5 + 0.5, 12.5))
    w.heatmap._on_move(scene)
    wt = float(w.session.weight("4")[12, 3, 1, 2])
    assert w.status.hover.text().startswith(f"neuron 12, input channel 3, kernel (1, 2), w = {wt + 0.0:+.4g}")
    _show(w, qtbot, "12")
    w.heatmap._on_move(w.heatmap.vb.mapViewToScene(QPointF(40.5, 12.5)))
    assert w.status.hover.text().startswith("neuron 12, input 40, w = ")


def _click_tile(qtbot, panel, channel):
    x, y = panel.tile_center(channel)
    scene = panel.vb.mapViewToScene(QPointF(x, y))
    pos = panel.tile_view.mapFromScene(scene)
    qtbot.mouseClick(panel.tile_view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_one_filter_shows_tiles_click_prunes_and_restores_a_kernel(cnn_window, qtbot):
    w = cnn_window
    s = w.session
    _show(w, qtbot, "4")
    panel = w.filter
    assert panel.tile_count == 0  # nothing selected
    w.editing.select_neurons([5])
    assert w.lower_tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: panel.vb.width() > 20)
    assert panel.tile_count == 16 and panel.tiles.shape == (16, 3, 3)
    np.testing.assert_array_equal(panel.tiles, s.weight("4")[5].numpy())
    assert panel.levels == w.heatmap.levels  # same symmetric levels as the heatmap
    assert panel.tile_at(*panel.tile_center(3))[0] == 3

    start = s.history.index
    orig = s.weight("4")[5, 3].clone()
    _click_tile(qtbot, panel, 3)
    assert s.history.index == start + 1
    mask = s.mask("4")
    assert not mask[5, 3].any() and int((~mask).sum()) == 9  # exactly that kernel's 9 weights
    assert panel.tile_pruned[3].all() and not panel.tile_pruned[2].any()
    assert w.heatmap.pruned_src[5, 27:36].all()

    _click_tile(qtbot, panel, 3)  # all pruned -> restore, bit-identical
    assert s.history.index == start + 2 and bool(s.mask("4").all())
    assert bool((s.weight("4")[5, 3] == orig).all()) and not panel.tile_pruned[3].any()

    s.undo()  # the panel follows the session: the kernel is pruned again
    assert panel.tile_pruned[3].all() and float(np.abs(panel.tiles[3]).sum()) == 0
    s.undo()
    assert not panel.tile_pruned.any() and s.history.index == start

    w.editing.select_neurons([5, 6])  # more than one filter: no tiles, the histogram comes back
    assert panel.tile_count == 0 and w.lower_tabs.currentWidget() is w.hist


def test_linear_neuron_panel_shows_its_incoming_weights(cnn_window, qtbot):
    w = cnn_window
    _show(w, qtbot, "12")
    w.editing.select_neurons([7])
    panel = w.filter
    assert panel.tile_count == 0 and panel.stack.currentWidget() is panel.bar_plot
    assert len(panel.bars.opts["height"]) == 512
    assert "conv" in panel.info.text() and w.lower_tabs.tabText(1) == "Neuron inputs"


def test_accuracy_text_elides_and_baseline_label_stays_inside(cnn_window, qtbot):
    w = cnn_window
    acc = w.acc
    long = "360 samples on cpu (from cached layer features.very.long.module.name.that.goes.on)"
    acc.estimate.setText(long)
    w.resizeDocks([w.dock_acc], [220], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: acc.width() <= 260)
    assert acc.estimate.text() == long and acc.estimate.elided
    assert acc.estimate.toolTip() == long
    label = acc.base_line.label
    assert label.isVisible()
    inner = acc.curve_plot.getPlotItem().vb.sceneBoundingRect()
    assert inner.contains(label.sceneBoundingRect())


def _click_at(qtbot, panel, x, y):
    scene = panel.vb.mapViewToScene(QPointF(x, y))
    qtbot.mouseClick(panel.tile_view.viewport(), Qt.MouseButton.LeftButton, pos=panel.tile_view.mapFromScene(scene))


def test_first_conv_layer_shows_every_filter_and_a_click_selects_one(cnn_window, qtbot):
    w = cnn_window
    s = w.session
    first = s.layers[0].name
    _show(w, qtbot, first)
    panel = w.filter
    w.lower_tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.vb.width() > 20)
    assert panel.mode == "overview" and panel.tiles.shape == (16, 3, 3)
    np.testing.assert_array_equal(panel.tiles, s.weight(first).numpy().reshape(16, 3, 3))
    _click_at(qtbot, panel, *panel.tile_center(6))
    assert w.selected == {6} and panel.mode == "tiles" and panel.row == 6
    _show(w, qtbot, "4")  # not the first layer: no overview
    w.lower_tabs.setCurrentWidget(panel)
    assert panel.mode == "empty"


def test_first_mlp_neuron_shows_its_inputs_as_the_8x8_image_and_a_pixel_click_prunes_it(window, qtbot):
    w = window
    s = w.session
    first = s.layers[0].name
    assert w.layer == first and s.layer(first).shape == (128, 64)
    w.editing.select_neurons([3])
    panel = w.filter
    qtbot.waitUntil(lambda: panel.vb.width() > 20)
    assert panel.mode == "image" and panel.tiles.shape == (1, 8, 8)
    np.testing.assert_array_equal(panel.tiles[0], s.weight(first)[3].numpy().reshape(8, 8))
    start = s.history.index
    _click_at(qtbot, panel, 2.5, 5.5)  # x = column 2, y = row 5 -> input 5 * 8 + 2
    assert s.history.index == start + 1
    mask = s.mask(first)
    assert not bool(mask[3, 42]) and int((~mask).sum()) == 1
    assert panel.tile_pruned[0, 5, 2]
    _click_at(qtbot, panel, 2.5, 5.5)
    assert bool(s.mask(first).all()) and s.history.index == start + 2
    w.tree.select(s.layers[1].name)  # a hidden layer's neuron: bars, not an image
    w.editing.select_neurons([0])
    assert panel.mode == "bars"


def test_many_incoming_weights_draw_one_line_not_thousands_of_bars(qtbot):
    import torch
    import torch.nn as nn

    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session
    from pruneviz.qt.filter_view import MAX_BARS, FilterPanel

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2000, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    s = Session(LoadedModel(model=model, spec="t", source="state_dict", arch=None, example_input=torch.randn(1, 2000), structured_ok=True), None, device="cpu")
    s.prune_weights("0", [5, 7])
    panel = FilterPanel()
    qtbot.addWidget(panel)
    panel.show_neuron(s, "0", 0)
    assert 2000 > MAX_BARS and panel.mode == "line"
    assert len(panel.bars.opts["height"]) == 0
    x, y = panel.line.getData()
    np.testing.assert_array_equal(y, s.weight("0")[0].numpy())
    assert list(panel.line_pruned.getData()[0]) == [5, 5, 7, 7]
