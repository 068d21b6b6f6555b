"""Per-class accuracy with 1,000 classes: the largest changes only, by class index, and every
class in a table; with 10 classes the plot is as before (one bar pair per class)."""

from __future__ import annotations

import numpy as np

from pruneviz.core.evaluate import EvalResult
from pruneviz.qt.class_bars import MAX_CLASS_BARS


def _result(per_class) -> EvalResult:
    per_class = [float(v) for v in per_class]
    return EvalResult(accuracy=float(np.nanmean(per_class)), loss=1.0, samples=50_000, device="cpu", per_class=per_class, correct=0)


def _panel(qtbot):
    from pruneviz.qt.accuracy_plot import AccuracyPanel
    from pruneviz.qt.app import make_app

    make_app()
    p = AccuracyPanel()
    qtbot.addWidget(p)
    p.resize(420, 640)
    p.show()
    return p


class _Req:
    step, sparsity = 1, 0.5


def test_thousand_classes_show_the_largest_changes(qtbot, tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 1000)
    cur = base + rng.normal(0, 0.01, 1000)  # small noise everywhere ...
    planted = {17: -0.45, 503: -0.3, 999: +0.2, 250: -0.25}  # ... and four real changes
    for k, v in planted.items():
        cur[k] = base[k] + v
    p = _panel(qtbot)
    p.set_baseline(_result(base))
    k = p.classes.bar_budget()
    assert 5 <= k <= MAX_CLASS_BARS
    # before any change: the least accurate classes
    assert p.classes.shown_classes == [int(i) for i in np.argsort(base, kind="stable")[:k]]
    p.set_result(_Req(), _result(cur))
    d = p.classes.deltas()
    assert len(d) == 1000
    order = np.argsort(-np.abs(d), kind="stable")[:k]
    assert p.classes.shown_classes == [int(i) for i in order]
    assert p.classes.shown_classes[:4] == [17, 503, 250, 999]  # oracle: the planted changes, largest first
    np.testing.assert_allclose(p.classes.cur_bars.opts["height"], cur[order])
    np.testing.assert_allclose(p.classes.base_bars.opts["height"], base[order])
    ticks = p.class_plot.getAxis("bottom")._tickLevels[0]
    assert [t for _, t in ticks][:4] == ["17", "503", "250", "999"]  # bars labelled by class index
    assert p.classes.delta_labels[0].isVisible() and p.classes.delta_labels[0].textItem.toPlainText() == "-45"
    assert p.class_plot.getAxis("bottom").labelText == f"class: {k} largest |Δ| of 1,000"
    assert p.classes.all_classes.isVisible()
    tip = p.class_plot.toolTip().splitlines()
    assert len(tip) == k + 1 and tip[1].startswith("class 17:")
    # the tick labels (class indices) do not overlap: each bar has room for the widest one
    from PySide6.QtGui import QFontMetrics

    assert p.class_plot.getPlotItem().vb.width() / k >= QFontMetrics(p.class_plot.font()).horizontalAdvance("999")
    # a wider panel draws more of the largest changes, up to MAX_CLASS_BARS
    p.resize(1400, 640)
    qtbot.waitUntil(lambda: len(p.classes.shown_classes) == MAX_CLASS_BARS, timeout=5_000)
    assert p.classes.shown_classes == [int(i) for i in np.argsort(-np.abs(d), kind="stable")[:MAX_CLASS_BARS]]
    p.resize(420, 640)
    qtbot.waitUntil(lambda: len(p.classes.shown_classes) == k, timeout=5_000)
    # the full table: every class, sorted largest loss first, sortable by class
    table = p.classes.show_class_table()
    qtbot.addWidget(table)
    t = table.table
    assert t.rowCount() == 1000
    assert t.item(0, 0).data(0) == 17 and abs(t.item(0, 3).data(0) - round(d[17], 2)) < 1e-9
    t.sortItems(0)
    assert [t.item(r, 0).data(0) for r in range(1000)] == list(range(1000))
    assert abs(t.item(503, 2).data(0) - round(cur[503] * 100, 2)) < 1e-9
    assert p.grab().save(str(tmp_path / "classes.png"))


def test_ten_classes_keep_one_bar_pair_each(qtbot):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 0.9, 10)
    cur = base - np.linspace(0, 0.3, 10)
    p = _panel(qtbot)
    p.set_baseline(_result(base))
    p.set_result(_Req(), _result(cur))
    assert p.classes.shown_classes == list(range(10))
    np.testing.assert_allclose(p.classes.cur_bars.opts["height"], cur)
    assert [t for _, t in p.class_plot.getAxis("bottom")._tickLevels[0]] == [str(i) for i in range(10)]
    assert not p.classes.all_classes.isVisible() and not p.class_plot.getAxis("bottom").label.isVisible()
    assert len(p.class_plot.toolTip().splitlines()) == 10


def test_classes_without_samples_are_left_out(qtbot):
    base = np.full(500, np.nan)
    base[[3, 40, 41, 200, 201, 202, 499]] = [0.9, 0.5, 0.7, 0.8, 0.1, 0.6, 0.95]
    cur = base.copy()
    p = _panel(qtbot)
    p.set_baseline(_result(base))
    p.set_result(_Req(), _result(cur))  # no change: the least accurate classes with samples
    assert p.classes.shown_classes[:7] == [201, 40, 202, 41, 200, 3, 499]
    cur[499] = 0.5  # one change: first, then the rest by accuracy
    p.set_result(_Req(), _result(cur))
    assert p.classes.shown_classes[:3] == [499, 201, 40]
    assert not np.isnan(p.classes.cur_bars.opts["height"]).any()
