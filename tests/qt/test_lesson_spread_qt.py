"""Lesson charts draw the spread over seeds: a faint line per seed under a line chart's mean, an
error bar of ± one standard deviation on a bar chart (pixels read back from the rendered image)."""

from __future__ import annotations

from PySide6.QtGui import QColor

from pruneviz.qt import lesson_charts as lc


def _column_colours(img, x: int) -> list[tuple[int, int, int]]:
    return [QColor(img.pixel(x, y)).getRgb()[:3] for y in range(img.height())]


def _line(seeds=None):
    series = {"name": "gradual", "x": [0, 1, 2, 3], "y": [0.5, 0.5, 0.5, 0.5]}
    if seeds is not None:
        series["seeds"] = seeds
    return {"kind": "lines", "title": "t", "xlabel": "epoch", "ylabel": "accuracy", "ylim": [0, 1], "series": [series], "marks": []}


def test_a_line_chart_draws_one_faint_line_per_seed_under_the_mean():
    plain = lc.render(_line())
    spread = lc.render(_line([[0.2, 0.2, 0.2, 0.2], [0.8, 0.8, 0.8, 0.8]]))
    x = plain.width() // 2
    # the mean is drawn in both; only the spread image has pixels at the seeds' heights
    before, after = _column_colours(plain, x), _column_colours(spread, x)
    changed = [y for y, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed, "no seed line drawn"
    top, bottom = min(changed), max(changed)
    assert bottom - top > spread.height() * 0.3  # lines near 20 % and 80 %, far apart
    # faint: the seed lines are lighter than the solid mean (blended towards the white background)
    assert all(sum(after[y]) > 3 * 120 for y in changed)


def test_a_bar_chart_draws_error_bars():
    bars = {"kind": "bars", "title": "t", "ylabel": "accuracy", "categories": ["a", "b"], "series": [{"name": "accuracy", "values": [0.5, 0.7]}]}
    plain = lc.render(bars)
    with_err = lc.render({**bars, "series": [{"name": "accuracy", "values": [0.5, 0.7], "errors": [0.1, 0.0]}]})
    differ = sum(1 for x in range(0, plain.width(), 2) for y in range(0, plain.height(), 2) if plain.pixel(x, y) != with_err.pixel(x, y))
    assert differ > 20
    # no error drawn where the error is 0: the right half (bar b) is unchanged apart from nothing
    right = sum(1 for x in range(plain.width() * 3 // 5, plain.width(), 2) for y in range(0, plain.height(), 2) if plain.pixel(x, y) != with_err.pixel(x, y))
    assert right == 0
