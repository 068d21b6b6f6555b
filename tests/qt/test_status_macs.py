"""MACs of the original and the masked model in the status bar: counted once per session in a
worker, the masked figure following every edit."""

from __future__ import annotations

import threading

from pruneviz.core import cost
from pruneviz.qt import window_status
from pruneviz.qt.window_status import human_count, macs_text
from tests.qt.conftest import demo_opener, open_demo


def _cnn_macs_by_hand(s) -> dict[str, int]:
    """demo:cnn on 8×8 inputs: a conv's MACs are weight cells × output positions, plus one per
    output value for the bias (as Torch-Pruning counts); a Linear's in × out + out."""
    side = {"1": 8, "4": 8, "8": 4}
    out = {}
    for layer in s.layers:
        w = s.weight(layer.name)
        if layer.kind == "Conv2d":
            pos = side[layer.name] ** 2
            out[layer.name] = w.numel() * pos + w.shape[0] * pos
        else:
            out[layer.name] = w.numel() + w.shape[0]
    return out


def test_status_bar_shows_original_and_masked_macs(qtbot, monkeypatch):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    counted_in = []
    real = cost.original_macs

    def spy(session):
        counted_in.append(threading.current_thread() is threading.main_thread())
        return real(session)

    monkeypatch.setattr(cost, "original_macs", spy)
    monkeypatch.setattr(window_status, "SYNC_MACS_PARAMS", 0)  # demo models count in the worker here
    make_app()
    s = open_demo("cnn")
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    st = w.status
    qtbot.waitUntil(lambda: st.macs_count is not None, timeout=30_000)
    assert counted_in == [False]  # counted once, in the worker, not on the GUI thread
    total, per = st.macs_count
    hand = _cnn_macs_by_hand(s)
    assert {k: per[k] for k in hand} == hand
    assert st.macs.text() == macs_text(total, total) and "0.0% saved" in st.macs.text()
    # an edit: the masked figure follows at once, without another count
    s.prune(0.5, scope="layer")
    want = total - sum(hand[n] * s.sparsity(n) for n in hand)
    assert st.macs.text() == macs_text(total, round(want))
    assert st.macs.text() == macs_text(cost.session_macs(s)["macs_before"], cost.session_macs(s)["macs_masked"])
    assert not st.macs_jobs.busy
    s.undo()
    assert "0.0% saved" in st.macs.text()
    # a new session is counted again
    w.set_session(open_demo("mlp"))
    qtbot.waitUntil(lambda: st.macs_count is not None and "…" not in st.macs.text(), timeout=30_000)
    assert counted_in.count(False) == 2  # (the True ones: this test's own oracle calls)
    mlp_total = real(w.session)[0]
    assert st.macs.text() == macs_text(mlp_total, mlp_total)
    w.close()
    w.runner.shutdown(5000)


def test_human_count():
    assert human_count(501_514) == "502 K"
    assert human_count(1_234_567_890) == "1.23 G"
    assert human_count(950) == "950"
    assert macs_text(1000, 500) == "  MACs 1 K → 500 (50.0% saved)  "


def test_small_models_are_counted_on_the_gui_thread_after_the_window_updates(qtbot, monkeypatch):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    counted_in = []
    real = cost.original_macs
    monkeypatch.setattr(cost, "original_macs", lambda s: counted_in.append(threading.current_thread() is threading.main_thread()) or real(s))
    make_app()
    s = open_demo("cnn")
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    st = w.status
    assert st.macs_count is None and counted_in == []  # not while the window is being built
    qtbot.waitUntil(lambda: st.macs_count is not None, timeout=10_000)
    assert counted_in == [True] and not st.macs_jobs.busy
    total = real(s)[0]
    assert st.macs.text() == macs_text(total, total)
    w.close()
    w.runner.shutdown(5000)


def test_measure_the_shrunk_model_shows_what_export_reports_until_the_next_edit(qtbot, tmp_path):
    """Prune > Measure the shrunk model: built in a worker, its MACs and parameters equal what
    `export(shrink=True)` reports, the speed-up is shown, and the next edit takes them away."""
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    s = open_demo("cnn")
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    s.prune(0.3, granularity="neuron")
    qtbot.waitUntil(lambda: w.status.macs_count is not None, timeout=30_000)
    assert w.actions["measure_shrunk"].text() == "Measure the shrunk model"
    w.actions["measure_shrunk"].trigger()
    qtbot.waitUntil(lambda: w.status.shrunk is not None, timeout=60_000)
    rep = s.export(tmp_path / "cnn.pt", shrink=True)
    m = w.status.shrunk
    assert m["macs"] == rep["macs_shrunk"] and m["params"] == rep["params_after"] < s.original_params
    assert m["latency"]["speedup"] > 0 and m["latency"]["device"] == "cpu"
    assert f"shrunk {human_count(rep['macs_shrunk'])}" in w.status.macs.text() and "faster" in w.status.macs.text()
    s.prune_neurons("4", [int(s.neuron_mask("4").nonzero()[0])])  # the measurement was of another mask
    qtbot.waitUntil(lambda: "shrunk" not in w.status.macs.text(), timeout=10_000)
    assert w.status.macs.text().startswith("  MACs ")


def test_measuring_weight_pruning_only_gives_a_model_of_the_same_size(qtbot):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    s = open_demo("mlp")
    s.prune(0.5)  # weights only: no neuron to remove, so nothing shrinks
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    assert w.status.measure_shrunk()
    qtbot.waitUntil(lambda: not w.status.shrunk_jobs.busy, timeout=60_000)
    assert w.status.shrunk is not None and w.status.shrunk["params"] == s.original_params


def test_an_edit_while_measuring_drops_the_measurement(qtbot):
    """The measurement is keyed by Session.version (the runner's one staleness rule): an edit
    made while it runs cancels it and its figures are never shown."""
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    make_app()
    s = open_demo("cnn")
    s.prune(0.3, granularity="neuron")
    w = MainWindow(s, open_session=demo_opener, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    finished = []
    w.status.shrunk_jobs.finished.connect(lambda name, m: finished.append(m))
    assert w.status.measure_shrunk()
    with qtbot.waitSignal(w.status.shrunk_jobs.dropped, timeout=60_000):
        s.prune_neurons("4", [int(s.neuron_mask("4").nonzero()[0])])  # straight through the session
    qtbot.waitUntil(lambda: not w.status.shrunk_jobs.busy, timeout=60_000)
    assert finished == [] and w.status.shrunk is None
    assert "measure again" in w.statusBar().currentMessage()
    assert w.status.measure_shrunk()  # measuring again, at the new version, is kept
    qtbot.waitUntil(lambda: w.status.shrunk is not None, timeout=60_000)
    assert w.status.shrunk["version"] == s.version
    w.runner.shutdown(5000)
