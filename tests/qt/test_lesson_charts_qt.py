"""Lesson charts drawn with pyqtgraph: integral ticks on an epoch axis, the 0 % tick of a bar
chart inside the view, one colour per arm in every chart of a lesson, PNGs offscreen."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor

from pruneviz.qt import lesson_charts as lc


def _epochs(last: int) -> dict:
    return {"kind": "lines", "title": "t", "xlabel": "epoch", "ylabel": "accuracy", "ylim": [0, 1], "integer_x": True, "series": [{"name": "fine-tune", "key": "fine-tune", "x": list(range(1, last + 1)), "y": [0.5] * last}], "marks": []}


@pytest.mark.parametrize("last", [2, 3, 4, 7, 30])
def test_an_epoch_axis_has_whole_number_ticks(qapp, last):
    """Epochs 1..3 used to be labelled 1, 1.5, 2, 2.5, 3."""
    w = lc.plot_widget(_epochs(last))
    axis = w.getPlotItem().getAxis("bottom")
    values = [v for level in axis._tickLevels for v, _ in level]  # what the axis was told to draw
    labels = [t for level in axis._tickLevels for _, t in level]
    assert values and all(float(v).is_integer() for v in values), values
    assert all("." not in t for t in labels) and len(values) >= 2
    w.deleteLater()


def test_a_bar_chart_shows_its_zero_tick_inside_the_view(qapp):
    bars = {"kind": "bars", "title": "t", "ylabel": "accuracy", "categories": ["a", "b"], "series": [{"name": "accuracy", "values": [0.0, 0.7]}]}
    w = lc.plot_widget(bars)
    plot = w.getPlotItem()
    (ylo, yhi) = plot.viewRange()[1]
    zero = [t for level in plot.getAxis("left")._tickLevels for v, t in level if v == 0]
    assert zero == ["0%"] and ylo < 0 < yhi  # the 0 % label sits inside the plot, not cut by its edge
    w.deleteLater()


def test_one_colour_per_arm_whatever_the_chart(qapp):
    """criteria's sweep, faithful's ρ bars and its scatter draw magnitude in one colour; a
    scope or a schedule keeps its colour whichever other arms share the chart."""
    for arm in ("magnitude", "random", "taylor", "obd", "layer", "global", "before", "during", "after", "fine-tune", "regrow"):
        seen = {lc.colour(arm, keys).name() for keys in ([arm], [arm, "x"], ["y", "z", arm], ["layer 0", "layer 2", arm])}
        assert len(seen) == 1, (arm, seen)
    assert len({lc.colour(a, []).name() for a in ("before", "during", "after")}) == 3
    assert len({lc.colour(a, []).name() for a in ("magnitude", "taylor", "obd", "random")}) == 4
    # keys without a fixed colour (the layers of a sensitivity plot) avoid the fixed arms' colours
    layers = ["layer 0", "layer 2", "layer 4"]
    assert not {lc.colour(k, layers).name() for k in layers} & {lc.colour(a, []).name() for a in ("layer", "global")}


def _count(img, colour: str, tol: int = 30) -> int:
    want = QColor(colour)
    n = 0
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = QColor(img.pixel(x, y))
            n += abs(c.red() - want.red()) + abs(c.green() - want.green()) + abs(c.blue() - want.blue()) < tol
    return n


def test_rendered_png_draws_each_arm_in_its_colour_offscreen(qapp, tmp_path):
    chart = {"kind": "bars", "title": "ρ", "ylabel": "Spearman ρ", "percent": False, "categories": ["random", "magnitude"], "keys": ["random", "magnitude"], "series": [{"name": "ρ", "values": [0.1, 0.8]}]}
    path = tmp_path / "c.png"
    lc.save_png(chart, path)
    from PySide6.QtGui import QImage

    img = QImage(str(path))
    assert (img.width(), img.height()) == (960, 540)
    assert _count(img, lc.ARM_COLOURS["magnitude"]) > 1000 and _count(img, lc.ARM_COLOURS["random"]) > 100
