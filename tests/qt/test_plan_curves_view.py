"""The plans tab's compare view draws each plan's curve, measured in the worker, with the branch
point marked; the progress bar counts the points measured."""

from __future__ import annotations

from pruneviz.core.plans import points_to_measure


def test_compare_view_draws_one_curve_per_plan_with_the_measured_values(window, qtbot):
    w, p = window, window.decide
    s = w.session
    s.prune(0.3, layers="0")
    s.prune_neurons("2", [1, 2])
    s.undo()
    s.prune(0.6, scope="global")
    s.prune_neurons("0", [4])
    view = p.plans
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 2)
    kinds = []
    p.jobs.progress.connect(lambda name, item: kinds.append(item["kind"]))
    assert view.run_measure()
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=60_000)
    # start, the shared first step, one step of plan 1, two of plan 2: five points, each once
    assert points_to_measure(s) == 5 and kinds.count("point") == 5 and kinds.count("plan") == 2
    assert p.progress.maximum() == 5 and p.progress.value() == 5
    assert list(view.curves.curves) == ["plan 1", "plan 2"]
    names = [item.name() for item in view.curves.getPlotItem().listDataItems()]
    assert names == ["plan 1 (2 steps)", "plan 2 (3 steps)", "branch point"]
    # the oracle: the real session at each step of each plan, fully evaluated
    drawn = {name: curve.getData() for name, curve in view.curves.curves.items()}
    here = s.history.current_plan
    for name, (xs, ys) in drawn.items():
        s.switch_plan(name)
        want = []
        for k in range(len(s.history.steps) + 1):
            s.goto(k)
            want.append((s.sparsity(), s.evaluate(incremental=False).accuracy))
        assert [(float(x), float(y)) for x, y in zip(xs, ys)] == want
        if name == "plan 1":
            branch = want[1]  # after the shared first step
    s.switch_plan(here)
    assert view.curves.branch == branch
    assert "per-class accuracy" in view.classes.text() and "plan 2" in view.classes.text()
    assert not view.grab().isNull()


def test_compare_without_data_plots_sparsity_by_step(qtbot):
    import pyqtgraph as pg

    from pruneviz.core.analysis import collect
    from pruneviz.core.session import Session
    from pruneviz.qt import decide_plots as dp

    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.5, layers="0")
    s.undo()
    s.prune_neurons("2", [0, 1, 2])
    rows = collect(s.plan_summaries())
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    dp.plan_curves_plot(rows, widget)
    assert "no data" in widget.getPlotItem().titleLabel.text
    for row in rows:
        xs, ys = widget.curves[row["name"]].getData()
        assert list(xs) == [0, 1] and list(ys) == [pt["sparsity"] for pt in row["curve"]] and ys[1] > 0
    assert widget.branch == (0, 0.0)  # the plans share only the start


def test_a_single_plan_shows_its_curve_and_a_new_session_clears_the_view(window, qtbot):
    from tests.qt.conftest import open_demo

    w, p = window, window.decide
    s = w.session
    s.prune(0.4, layers="2")
    view = p.plans
    assert view.run_measure()
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=60_000)
    (name,) = view.curves.curves
    xs, ys = view.curves.curves[name].getData()
    assert len(xs) == 2 and view.curves.branch is None and ys[0] == w.session.baseline().accuracy
    w.set_session(open_demo("cnn"))
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 1 and view.rows == {})
    assert view.curves.getPlotItem().listDataItems() == [] and view.curves.curves == {} and view.classes.text() == ""
