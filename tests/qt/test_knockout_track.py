"""The measured knockout beside the neuron strip, on the real window: a knockout run in the
Decide dock reaches the layer view, row for row with the strip (sorted or not), with the
criterion's ranks and faithfulness; it hides for other layers, turns stale when the model
changes, and a click selects like the strip's."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QFontMetrics

from pruneviz.core.analysis import collect
from pruneviz.qt import knockout_track as kt

from .conftest import open_demo

LAYER = "2"  # demo:mlp's hidden layer of 64 neurons: its knockout takes about a second


def avg_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank, counted directly (the oracle)."""
    x = np.asarray(x, dtype=np.float64)
    less = (x[None, :] < x[:, None]).sum(1)
    equal = (x[None, :] == x[:, None]).sum(1)
    return less + (equal + 1) / 2


def pearson(a, b) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def drawn_delta(track) -> np.ndarray:
    """The Δ loss bars as drawn, per row position (NaN where no bar)."""
    out = np.full(len(track.rows), np.nan)
    up, down = track.up.opts, track.down.opts
    out[(np.asarray(up["y"]) - 0.5).astype(int)] = up["width"]
    out[(np.asarray(down["y"]) - 0.5).astype(int)] = -np.asarray(down["width"])
    return out


def global_y(plot_widget_view, vb, y: float) -> float:
    """Screen y of view coordinate ``y`` (through the widget, not pyqtgraph's screenGeometry)."""
    p = plot_widget_view.mapFromScene(vb.mapViewToScene(QPointF(0.0, y)))
    return plot_widget_view.mapToGlobal(p).y()


def run_knockout(w, qtbot):
    w.tree.select(LAYER)
    assert w.knockout_track.isHidden() and w.knockout_track.header.isHidden()
    assert w.decide.run_knockout()
    qtbot.waitUntil(lambda: not w.decide.jobs.busy, timeout=60_000)
    return w.decide.ko_result


def test_knockout_reaches_the_strip_row_for_row_sorted_and_not(window, qtbot):
    w = window
    res = run_knockout(w, qtbot)
    t = w.knockout_track
    assert res == collect(w.session.knockout(LAYER))  # the dock's result is the engine's
    assert not t.isHidden() and not t.header.isHidden() and t.stale is None
    assert len(w.decide.ko_plot.getPlotItem().listDataItems()) > 0  # the dock keeps its plot
    base = res["baseline"]["loss"]
    expected = np.array([n["loss"] - base for n in res["neurons"]])
    n = len(expected)
    scores = w.session.scores(LAYER, "magnitude", "neuron").double().numpy()
    for sort in (False, True):
        w.view.sort.setChecked(sort)
        order = w.strip.order
        assert np.array_equal(order, np.argsort(scores, kind="stable") if sort else np.arange(n))
        assert np.array_equal(t.rows, order)
        np.testing.assert_allclose(t.delta, expected[order], rtol=0, atol=1e-12)
        np.testing.assert_allclose(drawn_delta(t), expected[order], rtol=0, atol=1e-12)
        np.testing.assert_allclose(t.criterion_rank, avg_ranks(scores)[order])
        np.testing.assert_allclose(t.measured_rank, avg_ranks(expected)[order])
        np.testing.assert_allclose(t.crit_dots.getData()[0], t.criterion_rank)
        np.testing.assert_allclose(t.meas_ticks.getData()[0], t.measured_rank)
        if sort:  # least important on top: the criterion's ranks go down the rows
            assert np.all(np.diff(t.criterion_rank) >= 0)
        # the ranks drawn give the faithfulness the header reports
        f = res["faithfulness"]["magnitude"]
        assert pearson(t.criterion_rank, t.measured_rank) == pytest.approx(f["spearman"], abs=1e-9)
        text = t.header.text()
        assert f"ρ {f['spearman']:+.2f}" in text and f"top-10 overlap {f['top10_overlap']:.0%}" in text
        tip = t.header.toolTip()
        assert all(f"<td>{m}</td>" in tip or f"<b>{m}</b>" in tip for m in res["faithfulness"]) and "<b>magnitude</b>" in tip
        assert f"{res['faithfulness']['taylor']['spearman']:+.3f}" in tip
        # rows line up with the strip's (and the heatmap's, unsorted) on screen, zoomed too
        svb, kvb = w.strip.getViewBox(), t.rank_plot.getViewBox()
        for zoom in (None, (10.0, 20.0)):
            if zoom:
                svb.setYRange(*zoom, padding=0)
            lo, hi = svb.viewRange()[1]
            for y in (lo + 0.5, (lo + hi) / 2, hi - 0.5):
                assert abs(global_y(w.strip, svb, y) - global_y(t, kvb, y)) <= 1.5
                if not sort:
                    assert abs(global_y(w.heatmap, w.heatmap.vb, y) - global_y(t, kvb, y)) <= 1.5
        svb.autoRange(padding=0.01)
    pos = int(np.argmax(t.delta))
    assert t.row_text(pos).startswith(f"neuron {t.rows[pos]}: loss {expected[t.rows[pos]]:+.4g} when removed alone")
    # another criterion: its ranks and its figures
    w.view.method.setCurrentText("random")
    rnd = w.session.scores(LAYER, "random", "neuron").double().numpy()
    np.testing.assert_allclose(t.criterion_rank, avg_ranks(rnd)[w.strip.order])
    f = res["faithfulness"]["random"]
    assert f"ρ {f['spearman']:+.2f}" in t.header.text() and "<b>random</b>" in t.header.toolTip()
    # presentation mode: larger figures and markers, and the window no wider for them
    size, pt = t.crit_dots.opts["size"], t.header.font().pointSizeF()
    w.presentation.set_enabled(True)
    assert t.header.font().pointSizeF() > pt and t.crit_dots.opts["size"] > size
    # as large as fits: its two lines never make the controls' row (and the window) taller
    assert 2 * QFontMetrics(t.header.font()).lineSpacing() <= w.view.method.sizeHint().height() == t.header.maximumHeight()
    assert t.header.minimumSizeHint().width() <= 1


def test_hidden_for_other_layers_stale_after_a_change_and_gone_with_the_session(window, qtbot):
    w = window
    run_knockout(w, qtbot)
    t = w.knockout_track
    w.tree.select("0")
    assert t.isHidden() and t.header.isHidden() and len(t.rows) == 0
    w.tree.select(LAYER)
    assert not t.isHidden() and t.stale is None
    assert t.up.opts["brush"].color().name() == kt.MEASURED.lower()
    # an edit of this layer: the measurement no longer describes the model, and says so
    w.session.prune_neurons(LAYER, [1, 2])
    assert t.stale is not None and "prune neurons 1, 2 of 2" in t.stale
    assert "stale" in t.header.text() and "Stale" in t.header.toolTip()
    assert t.up.opts["brush"].color().name() == kt.STALE.lower()
    w.actions["undo"].trigger()  # back at the state it measured: valid again
    assert t.stale is None and "stale" not in t.header.text()
    # an edit elsewhere changes every loss too
    w.session.prune_neurons("0", [0])
    assert t.stale is not None
    w.actions["undo"].trigger()
    assert t.stale is None
    w.session.set_data(w.session.data)  # new evaluation data: measured on other data
    assert t.stale is not None and "data" in t.stale
    old = w.session
    w.set_session(open_demo("mlp"))  # a new model: no knockout of it yet
    w.tree.select("0")
    w.tree.select(LAYER)
    assert t.isHidden() and t.result(LAYER) is None
    t.measuring(old)  # a run of the previous session that ends late is not taken for this one's
    t.add_result(collect(old.knockout(LAYER, methods=["magnitude"])))
    assert t.result(LAYER) is None and t.isHidden()


def test_a_click_on_the_track_selects_that_neuron(window, qtbot):
    w = window
    run_knockout(w, qtbot)
    t = w.knockout_track
    w.view.sort.setChecked(True)
    vb = t.rank_plot.getViewBox()

    def click(pos: int, mods=Qt.KeyboardModifier.NoModifier):
        x = sum(vb.viewRange()[0]) / 2
        pt = t.mapFromScene(vb.mapViewToScene(QPointF(x, pos + 0.5)))
        qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, mods, QPoint(pt.x(), pt.y()))

    click(3)
    assert w.selected == {int(w.strip.order[3])}
    assert list(t.rank_sel.opts["y"]) == [3.5] and list(t.sel_bands.opts["y"]) == [3.5]
    click(7, Qt.KeyboardModifier.ControlModifier)
    assert w.selected == {int(w.strip.order[3]), int(w.strip.order[7])}
