"""What the window does between a click and its paint: cached scores and histogram counts
updated from the edited rows, the threshold preview from them, data-driven scores in the worker,
the first estimate of each request shown at once."""

from __future__ import annotations

import numpy as np

from pruneviz.core import display


def test_histogram_counts_follow_edits_and_undo_exactly(window):
    w = window
    s = w.session
    name = w.layer

    def full_counts():
        v = display.as_2d(s.scores(name).numpy())
        kept = display.as_2d(s.mask(name).numpy())
        return np.histogram(v[kept], w.view.hist_edges())[0]

    before = w.hist.counts.copy()
    np.testing.assert_array_equal(before, full_counts())
    w.editing.select_neurons([3, 4])
    w.actions["prune"].trigger()
    assert w.hist.counts.sum() == before.sum() - 2 * s.layer(name).view_shape[1]
    np.testing.assert_array_equal(w.hist.counts, full_counts())
    s.prune_weights(name, [0, 1, 2, 700])
    np.testing.assert_array_equal(w.hist.counts, full_counts())
    w.actions["undo"].trigger()
    w.actions["undo"].trigger()
    np.testing.assert_array_equal(w.hist.counts, before)


def test_threshold_label_shows_the_value_and_the_preview_equals_preview_below(window):
    w = window
    s = w.session
    t = float(np.quantile(s.scores(w.layer).numpy(), 0.3))
    w.editing.threshold.setValue(t)
    assert w.hist.threshold_label == f"{w.editing.threshold.value():.3g}" != "0"
    cells, _ = w.heatmap.preview_source
    np.testing.assert_array_equal(cells, display.as_2d(s.preview_below(w.layer, w.editing.threshold.value()).numpy()))
    assert w.editing.thr_info.text() == f"would prune {int(cells.sum()):,} more"


def test_data_driven_scores_are_computed_in_the_worker(window, qtbot, monkeypatch):
    import threading

    w = window
    s = w.session
    threads = []
    real = s.scores

    def spy(*a, **k):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*a, **k)

    monkeypatch.setattr(s, "scores", spy)
    w.view.method.setCurrentText("obd")
    assert not w.view.scores_ready()  # the window did not wait for them
    assert w.hist.getPlotItem().getAxis("bottom").labelText.startswith("computing obd scores")
    qtbot.waitUntil(w.view.scores_ready, timeout=20_000)
    assert threads and not any(threads)  # every obd score came from the worker thread
    assert w.hist.counts.sum() == int(s.mask(w.layer).sum())
    threads.clear()
    w.editing.select_neurons([1])
    w.actions["prune"].trigger()  # an edit makes them stale: recomputed in the worker again
    assert not w.view.scores_ready()
    qtbot.waitUntil(w.view.scores_ready, timeout=20_000)
    assert threads and not any(threads)
    np.testing.assert_allclose(w.view.scores_view().values, display.as_2d(real(w.layer, "obd").numpy()), rtol=1e-6)


def test_the_first_estimate_of_each_request_is_shown_even_right_after_another(window, qtbot):
    """The runner shows at most ~25 estimates a second, but never drops a request's first one
    (its first, small batch): that is what the user waits for after a click."""
    from pruneviz.core.evaluate import Progress
    from pruneviz.qt.live_eval import JOB, Request

    w = window
    r = w.runner
    qtbot.waitUntil(lambda: not r.busy, timeout=20_000)
    shown = []
    r.progress.connect(lambda req, p: shown.append((req.id, p.done)))
    v = w.session.version
    for rid in (100, 101):  # two requests' worker reports, well within 40 ms of each other
        r._current = Request(rid, 0, 0.0, v)  # the job the runner says started
        r._on_item(JOB, Progress(32, 360, 0.9, 0.8, 0.95))
        r._on_item(JOB, Progress(64, 360, 0.9, 0.8, 0.95))  # throttled: same request, too soon
    assert shown == [(100, 32), (101, 32)]
