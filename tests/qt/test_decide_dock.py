"""The Decide dock on the real window: analyses stream in through the JobRunner, the window
stays usable, Cancel works, results equal the engine's, and the plans tab switches plans."""

from __future__ import annotations

import torch

from pruneviz.core.analysis import collect


def idle(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=60_000)


def masks(s):
    return {n: m.clone() for n, m in s.masks.elem.items()}, {n: m.clone() for n, m in s.masks.chan.items()}, s.history.index


def test_sensitivity_streams_into_the_plot_and_a_click_selects_the_layer(window, qtbot):
    w, p = window, window.decide
    s = w.session
    assert w.dock_decide.windowTitle() == "Decide" and w.dock_decide.isHidden()
    toggle = w.actions["decide"]
    assert toggle in w.actions.menu("view").actions() and toggle.text() == "Decide"
    toggle.trigger()
    assert w.dock_decide.isVisible()
    p.sens_levels.setText("0.5,0.9")
    seen = []
    p.jobs.progress.connect(lambda name, item: seen.append(item))
    before = masks(s)
    assert p.run_sensitivity()
    idle(qtbot, p)
    assert len(seen) == 6 and p.status.text() == "sensitivity: done"
    want = collect(s.sensitivity(None, [0.5, 0.9]))
    assert p.sens_result == want
    for name, curve in p.sens_plot.curves.items():
        xs, ys = curve.getData()
        assert list(ys) == [pt["accuracy"] for pt in want["layers"][name]]
    p.sens_plot.curves["4"].sigClicked.emit(p.sens_plot.curves["4"], None)
    assert w.layer == "4"
    after = masks(s)
    assert all(torch.equal(a, b) for a, b in zip(before[0].values(), after[0].values())) and before[2] == after[2]


def test_window_stays_usable_and_cancel_leaves_the_session(window, qtbot):
    w, p = window, window.decide
    s = w.session
    p.sweep_levels.setText(",".join(str(x / 100) for x in range(5, 100, 5)))
    p.sweep_scopes["global"].setChecked(True)
    before = masks(s)
    assert p.run_sweeps() and p.cancel.isEnabled()
    w.tree.select("2")  # the window responds while the worker measures
    assert w.layer == "2"
    with qtbot.waitSignal(p.jobs.cancelled, timeout=30_000):
        p.cancel.click()
    idle(qtbot, p)
    assert p.status.text() == "sweeps: cancelled" and not p.cancel.isEnabled()
    after = masks(s)
    assert all(torch.equal(before[0][n], after[0][n]) for n in before[0]) and all(torch.equal(before[1][n], after[1][n]) for n in before[1])
    # a full sweep overlays one curve per method and scope
    p.sweep_levels.setText("0.3,0.6")
    assert p.run_sweeps()
    idle(qtbot, p)
    names = [i.name() for i in p.sweep_plot.getPlotItem().listDataItems()]
    assert names == ["magnitude · layer · weights", "magnitude · global · weights", "random · layer · weights", "random · global · weights"]


def test_knockout_and_criteria_tabs(window, qtbot):
    w, p = window, window.decide
    w.tree.select("2")
    assert p.run_knockout()
    idle(qtbot, p)
    res = p.ko_result
    assert res == collect(w.session.knockout("2"))
    from pruneviz.core.importance import NEURON_METHODS

    assert p.ko_table.rowCount() == len(res["faithfulness"]) == len(NEURON_METHODS)  # every neuron criterion
    rhos = [float(p.ko_table.item(r, 1).text()) for r in range(len(NEURON_METHODS))]
    assert rhos == sorted(rhos, reverse=True)  # criteria ranked by faithfulness
    p.ko_method.setCurrentText("taylor")
    assert "taylor: Spearman" in p.ko_plot.getPlotItem().titleLabel.text
    w.session.prune(0.4, layers="0")
    w.tree.select("0")
    p.criteria.a.setCurrentText("magnitude")
    p.criteria.b.setCurrentText("taylor")
    assert p.run_compare()
    idle(qtbot, p)
    assert p.criteria.result["agreement"] == collect(w.session.compare_criteria("0", "magnitude", "taylor"))["agreement"]
    assert p.criteria.imgs[0].image.shape == (128, 64) and "taylor (" in p.criteria.titles[1].titleLabel.text
    p.criteria.scale.setCurrentText("rank")
    assert p.criteria.titles[0].titleLabel.text == "magnitude (rank)"
    grey = p.criteria.masks[0].image[..., 3] > 0
    assert torch.equal(torch.from_numpy(grey), ~w.session.mask("0"))


def test_allocation_plan_and_apply_as_one_undo_step(window, qtbot):
    w, p = window, window.decide
    p.alloc_target.setValue(50.0)
    assert p.run_allocation()
    idle(qtbot, p)
    assert p.plan is not None and p.alloc_apply.isEnabled()
    steps = w.session.history.index
    p.alloc_apply.click()
    assert w.session.history.index == steps + 1 and abs(w.session.sparsity() - 0.5) <= 0.005
    assert not p.alloc_apply.isEnabled()
    w.actions["undo"].trigger()
    assert w.session.sparsity() == 0.0


def test_plans_tab_lists_measures_switches_and_renames(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: shown.append(text))
    w, p = window, window.decide
    s = w.session
    s.prune(0.3)
    s.undo()
    s.prune_neurons("0", [1, 2, 3])
    qtbot.waitUntil(lambda: p.plans.tree.topLevelItemCount() == 2)
    view = p.plans
    assert view.run_measure()
    idle(qtbot, p)
    rows = {r["name"]: r for r in collect(s.plan_summaries())}
    for i in range(2):
        item = view.tree.topLevelItem(i)
        assert item.text(4) == f"{rows[item.text(0)]['accuracy']:.4f}" and item.text(3) == f"{rows[item.text(0)]['params']:,}"
    assert len(view.plot.getPlotItem().items) >= 2 and "plan 1" in view.classes.text()
    qtbot.waitUntil(lambda: 1 in w.acc.points and not w.runner.busy, timeout=30_000)
    plan2_point = w.acc.points[1]
    view.tree.itemDoubleClicked.emit(view.tree.topLevelItem(0), 0)
    assert s.history.current_plan == "plan 1" and s.history.labels == ["prune 30% weights in 0, 2, 4 by magnitude"]
    assert w.acc.points.get(1) != plan2_point  # the other plan's accuracy is not shown for this one
    item = view.tree.topLevelItem(0)
    item.setText(0, "gentle")
    assert [pl["name"] for pl in s.plans()] == ["gentle", "plan 2"]
    qtbot.waitUntil(lambda: view.tree.topLevelItem(0).font(0).bold())  # rebuilt: the current plan in bold
    assert view.tree.topLevelItem(0).text(0) == "gentle" and not view.tree.topLevelItem(1).font(0).bold()
    item = view.tree.topLevelItem(1)
    item.setText(0, "gentle")  # taken: refused with a dialog, nothing renamed
    assert [pl["name"] for pl in s.plans()] == ["gentle", "plan 2"] and "exists already" in shown[-1]
    qtbot.waitUntil(lambda: view.tree.topLevelItem(1).text(0) == "plan 2")


def test_closing_mid_analysis_leaves_no_thread(qtbot, mlp_session):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    w = MainWindow(mlp_session, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    w.decide.sweep_levels.setText(",".join(str(x / 100) for x in range(5, 100, 5)))
    assert w.decide.run_sweeps()
    w.close()
    assert not w.decide.jobs.busy or w.decide.jobs.wait(5000)
    w.runner.shutdown(5000)


def test_ray_setting_reaches_the_engine(window, qtbot, monkeypatch):
    from pruneviz.core import analysis, workers

    calls = []
    real = workers.run_edits

    def recording(probe, edits, ray=None, cancel=None):
        calls.append(ray)
        return real(probe, edits, None, cancel)  # measured here: the setting is what is tested

    monkeypatch.setattr(analysis, "run_edits", recording)
    p = window.decide
    p.sens_levels.setText("0.5")
    p.sweep_levels.setText("0.5")
    p.run_sensitivity()
    idle(qtbot, p)
    p.ray.setText("local")
    p.run_sensitivity()
    idle(qtbot, p)
    p.run_sweeps()
    idle(qtbot, p)
    assert calls == [None, "local", "local"]
