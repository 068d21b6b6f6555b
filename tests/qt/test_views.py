"""What the views show: neuron strip sort, importance mode, neuron threshold, per-class change,
memory and notices in the status bar, pixel-sized pooling and row-wise heatmap refresh."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from PySide6.QtCore import QPointF, Qt

from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.qt.test_main_window import _wait_eval


def test_strip_sort_toggle_orders_by_importance_and_back(window, qtbot):
    w = window
    s = w.session
    s.prune_neurons(w.layer, [4])
    w.view.sort.setChecked(True)
    assert w.strip.sorted
    widths = w.strip.widths
    assert np.all(np.diff(widths) >= 0)  # least important on top
    # a pruned neuron keeps its original score, so it sorts among the others, not to the top
    orig = s.scores(w.layer, "magnitude", "neuron", original=True).numpy()
    pos = int(np.where(w.strip.order == 4)[0][0])
    np.testing.assert_allclose(widths[pos], orig[4], rtol=1e-6)
    # a real click on the top bar selects the least important neuron, not neuron 0
    first = int(w.strip.order[0])
    vb = w.strip.getViewBox()
    x = float(widths.max()) * 0.01
    pt = w.strip.mapFromScene(vb.mapViewToScene(QPointF(x, 0.5)))
    qtbot.mouseClick(w.strip.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    assert w.selected == {first}
    w.view.sort.setChecked(False)
    assert np.array_equal(w.strip.order, np.arange(len(w.strip.scores)))


def test_pruned_neurons_shown_grey_at_original_height(window):
    w = window
    s = w.session
    orig = s.scores(w.layer, "magnitude", "neuron").numpy()
    s.prune_neurons(w.layer, [1, 2])
    assert s.scores(w.layer, "magnitude", "neuron")[1] == 0
    np.testing.assert_allclose(w.strip.widths[[1, 2]], orig[[1, 2]], rtol=1e-6)
    assert not w.strip.kept[1] and w.strip.kept[0]


def test_importance_mode_is_sequential_and_non_negative(window, qtbot):
    w = window
    w.view.mode.setCurrentText("importance")
    w.view.method.setCurrentText("taylor")
    qtbot.waitUntil(w.view.scores_ready, timeout=20_000)  # data-driven scores come from the worker
    lo, hi = w.heatmap.image.levels
    assert 0 <= lo < hi
    assert float(np.min(w.heatmap.image.image)) >= 0
    assert w.heatmap.bar.colorMap().name == "viridis"
    assert w.heatmap.bar.axis.labelText == "importance"
    w.view.mode.setCurrentText("weights")
    lo, hi = w.heatmap.image.levels
    assert lo == -hi and w.heatmap.bar.colorMap().name == "CET-D1A"


def test_neuron_threshold_previews_rows_then_prunes_them(window):
    w = window
    s = w.session
    name = w.layer
    w.editing.thr_gran.setCurrentText("neurons")
    scores = s.scores(name, "magnitude", "neuron").numpy()
    assert w.editing.threshold.maximum() == float(scores.max())
    t = float(np.quantile(scores, 0.25))
    w.editing.threshold.setValue(t)
    would = scores < w.editing.threshold.value()
    assert would.any() and not would.all()
    # the heatmap greys whole rows, the strip marks the same neurons, nothing is edited yet
    rows = w.heatmap.preview.image.reshape(-1) > 0
    assert np.array_equal(rows, would)
    assert np.array_equal(w.strip.preview, would)
    assert s.history.index == 0 and "neuron" in w.editing.thr_info.text()
    w.editing.apply_thr.click()
    assert s.history.index == 1 and "neurons" in s.history.labels[0]
    assert np.array_equal(~s.neuron_mask(name).numpy(), would)
    _, rows = w.heatmap.preview_source
    assert len(rows) == len(would) and not rows.any()  # applied: no neuron left below it


def test_per_class_change_is_drawn(window, qtbot):
    w = window
    s = w.session
    s.prune(0.6, scope="layer", granularity="neuron", layers=[w.layer])
    _wait_eval(qtbot, w)
    b, c = w.acc.baseline, w.acc.current
    d = w.acc.classes.deltas()
    assert d == [(ci - bi) * 100 for bi, ci in zip(b.per_class, c.per_class)]
    labels = w.acc.classes.delta_labels
    shown = [t.isVisible() for t in labels[: len(d)]]
    assert not any(v and abs(x) < 0.05 for v, x in zip(shown, d))  # changed classes only
    worst = int(np.argmin(d))
    assert shown[worst]  # the largest loss is always written
    assert d[worst] < 0 and labels[worst].textItem.toPlainText().startswith("-")
    assert labels[worst].textItem.defaultTextColor().red() > 150  # a loss is red
    heights = w.acc.classes.base_bars.opts["height"], w.acc.classes.cur_bars.opts["height"]
    np.testing.assert_allclose(heights[0], b.per_class)
    np.testing.assert_allclose(heights[1], c.per_class)


def _label_rects(acc):
    return {i: t.sceneBoundingRect() for i, t in enumerate(acc.classes.delta_labels) if t.isVisible()}


def test_per_class_labels_do_not_overlap_in_the_default_dock(window, qtbot):
    w = window
    acc = w.acc
    w.session.prune(0.6, scope="layer", granularity="neuron", layers=[w.layer])
    _wait_eval(qtbot, w)
    d = acc.classes.deltas()
    changed = [i for i, x in enumerate(d) if abs(x) >= 0.05]
    assert len(changed) >= 5

    def check_labels_placed():
        rects = _label_rects(acc)
        assert rects and int(np.argmax(np.abs(d))) in rects
        inside = acc.class_plot.getPlotItem().vb.sceneBoundingRect()
        for i, a in rects.items():
            assert inside.contains(a), i  # not cut by the plot's edge
            for j, b in rects.items():
                assert i == j or not a.intersects(b), (acc.classes.delta_labels[i].textItem.toPlainText(), acc.classes.delta_labels[j].textItem.toPlainText())

    # the dock's first layout and the labels' re-placement after it: wait until they are placed
    qtbot.waitUntil(check_labels_placed, timeout=5_000)
    assert "class" in acc.class_plot.toolTip()  # every class's change, shown or not
    # with room, every changed class is labelled
    w.resize(2400, 800)
    w.resizeDocks([w.dock_acc], [900], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: acc.width() > 600, timeout=5_000)
    qtbot.waitUntil(lambda: sorted(_label_rects(acc)) == changed, timeout=5_000)
    rects = list(_label_rects(acc).values())
    assert not any(a.intersects(b) for k, a in enumerate(rects) for b in rects[k + 1 :])


def test_status_bar_memory_and_notices(window, qtbot):
    w = window
    s = w.session
    text = w.status.memory.text()
    assert "masks" in text and "history 0 B" in text and ("KB" in text or "MB" in text)
    s.prune(0.3, scope="global")
    assert "history 0 B" not in w.status.memory.text()
    s.notices.append("out of cuda memory: retrying with batch size 128")
    w.runner.request()
    _wait_eval(qtbot, w)
    assert "out of cuda memory" in w.statusBar().currentMessage()
    mem = s.memory()
    assert f"cache {_human(mem['cache'])}" in w.status.memory.text()


def test_status_bar_shows_fine_tuning_deltas_kept_on_disk(window, qtbot):
    """Past the in-memory budget, fine-tuning's undo deltas go to disk: the status bar says how much,
    also once that step is on another plan than the current one."""
    from pruneviz.core.training import complete

    s = window.session
    s.weights_budget_bytes = 0
    s.prune(0.5)
    complete(s.finetune(1))
    disk = s.memory()["history_disk"]
    assert disk > 0
    qtbot.waitUntil(lambda: f"(+{_human(disk)} on disk)" in window.status.memory.text(), timeout=10_000)
    assert f"{disk:,} bytes" in window.status.memory.toolTip()
    s.undo()
    s.prune(0.2)  # the fine-tune step now lives on the other plan, still held on disk
    assert s.memory()["history_disk"] == disk
    qtbot.waitUntil(lambda: f"(+{_human(disk)} on disk)" in window.status.memory.text(), timeout=10_000)


def _human(n):
    from pruneviz.qt.main_window import human_bytes

    return human_bytes(n)


def _big_session(rows=2048, cols=2048):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(cols, rows), nn.ReLU(), nn.Linear(rows, 10)).eval()
    x = torch.randn(1, cols)
    loaded = LoadedModel(model=model, spec="big", source="state_dict", arch=None, example_input=x, structured_ok=True)
    return Session(loaded, None, device="cpu")


def test_big_layer_pools_to_pixels_and_edits_refresh_rows(qtbot, monkeypatch):
    from pruneviz.qt.main_window import MainWindow

    w = MainWindow(_big_session(), restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    hv = w.heatmap
    qtbot.waitUntil(lambda: hv.image_shape[0] <= hv.target_shape()[0] + 1 and not hv._repool.isActive(), timeout=5_000)
    px = hv.target_shape()
    assert hv.image_shape[0] <= px[0] and hv.image_shape[1] <= px[1]  # about the plot's pixel size
    assert hv.image_shape[0] >= 2048 // hv.block[0] and hv.block[0] > 1
    full = []
    monkeypatch.setattr(hv, "set_layer", lambda *a, **k: full.append(a))
    fetched = []
    real = w.session.view_rows
    monkeypatch.setattr(w.session, "view_rows", lambda layer, a, b: fetched.append((a, b)) or real(layer, a, b))
    w.editing.select_neurons([1000])
    w.editing.prune_selected()
    assert not full  # no full copy and pooling of 4M weights
    br = 1000 // hv.block[0]
    span = hv.layer_image.row_span(br)
    assert span in fetched  # the heatmap's block row
    assert all(span[0] <= a < b <= span[1] for a, b in fetched)  # scores read only the edited rows too
    assert hv.pruned.image[br].all() and not hv.pruned.image[br + 1].any()
    w.actions["undo"].trigger()
    assert not full and not hv.pruned.image[br].any()
    w.view.mode.setCurrentText("importance")  # not a row edit: a full refresh
    assert full


def test_render_benchmark_helper(qapp):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.heatmap_bench import render_benchmark

    make_app()
    s = _big_session(1024, 1024)
    edits = []
    s.changed.connect(lambda c: edits.append(c.kind))
    ms = render_benchmark(s, "0", repeat=3)
    assert ms > 0 and np.isfinite(ms)
    assert edits == ["edit", "undo"] * 3  # three timed edits, each undone
    assert s.sparsity() == 0 and s.history.index == 0  # the session is left as it was


def test_full_pass_is_said_for_models_that_cannot_be_cached(qtbot):
    import torch

    from pruneviz.core.data import EvalData
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session
    from pruneviz.qt.main_window import MainWindow
    from tests.core import zoo

    x, y = torch.randn(64, 12), torch.randint(0, 4, (64,))  # a forward that branches on the data: no graph
    s = Session(LoadedModel(zoo.branching(), "branching", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu")
    w = MainWindow(s, restore_layout=False)
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.acc.current is not None, timeout=30_000)
    assert "full pass" in w.acc.estimate.text() and not s.incremental
    assert "full pass" in w.status.memory.toolTip()


def test_strip_of_many_neurons_draws_one_segment_per_neuron_in_its_colour(qtbot):
    from pruneviz.qt.neuron_strip import NeuronStrip

    strip = NeuronStrip()
    qtbot.addWidget(strip)
    n = NeuronStrip.MAX_BARS + 100
    scores = np.linspace(1.0, 2.0, n)
    kept = np.ones(n, dtype=bool)
    kept[[3, 9]] = False
    strip.set_neurons(scores, kept, selected={20}, original=scores * 2)
    normal, pruned, _, selected = strip.lines
    xs, ys = pruned.getData()
    assert list(ys) == [3.5, 3.5, 9.5, 9.5] and list(xs) == [0.0, scores[3] * 2, 0.0, scores[9] * 2]
    assert list(selected.getData()[1]) == [20.5, 20.5]
    assert len(normal.getData()[0]) == 2 * (n - 3)
    assert len(strip.bars.opts["width"]) == 0
