"""What the user waits for, measured through the real window.

Each figure drives a real :class:`~pruneviz.qt.main_window.MainWindow` with everything connected
(runner, histogram, strip, tree, history, status bar): the edit goes through the window's own
action, then ``processEvents()`` and a ``grab()`` of the whole window (every widget painted).
Figures are the median of ``repeat`` edits after a warm-up, with their min and max.

    window_click_to_painted_ms_4096      prune one neuron of a 4096×4096 Linear → window painted
    window_threshold_preview_ms_4096     threshold slider one step → preview painted
    window_switch_layer_ms_4096          select the big layer → window painted
    window_first_layer_to_estimate_ms_cnn  prune a filter of demo:cnn's first conv → first
                                         accuracy estimate painted (and ``_last_`` for its last layer)
    global_magnitude_vs_kthvalue_ratio   Session.prune(global magnitude) / a plain torch.kthvalue
                                         mask over the concatenated |w|
"""

from __future__ import annotations

import statistics
import time

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from pruneviz.core.session import Session


def session_for(model: nn.Module, x: torch.Tensor) -> "Session":
    """A CPU session over ``model`` with no evaluation data (``x[:1]`` is the example input)."""
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    loaded = LoadedModel(model=model, spec="bench", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    return Session(loaded, None, device="cpu")


def spread(key: str, times_ms: list[float]) -> dict:
    """``{key: median, key_min: min, key_max: max}`` of a list of milliseconds."""
    return {key: statistics.median(times_ms), f"{key}_min": min(times_ms), f"{key}_max": max(times_ms)}


def _window(session, size=(1280, 720)):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow

    app = make_app()
    w = MainWindow(session, restore_layout=False)
    w.resize(*size)
    w.show()
    for _ in range(3):
        app.processEvents()
    w.grab()
    return app, w


def _close(w) -> None:
    w.runner.shutdown(5000)
    w.close()
    w.deleteLater()


def big_window(quick: bool, n: int = 4096, repeat: int | None = None) -> dict:
    """Click, threshold and layer-switch figures on an n×n Linear (no data: nothing evaluates)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n, n), nn.ReLU(), nn.Linear(n, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    s = session_for(model, torch.randn(4, n))
    app, w = _window(s)
    repeat = repeat or (4 if quick else 20)
    out: dict = {}
    try:
        w.view.show_layer("0")
        app.processEvents()
        w.grab()

        def painted():
            app.processEvents()
            w.grab()

        # click: select a neuron row and prune it through the window's Edit action
        times = []
        for i in range(repeat + 2):
            w.editing.select_neurons([(i * 97 + 5) % n])
            painted()
            t0 = time.perf_counter()
            w.actions["prune"].trigger()
            painted()
            times.append((time.perf_counter() - t0) * 1000)
            w.actions["undo"].trigger()
            painted()
        out.update(spread("window_click_to_painted_ms_4096", times[2:]))

        # threshold: one slider step (the preview of what Apply would prune)
        w.editing.select_neurons([])
        hi = w.editing.threshold.maximum()
        times = []
        for i in range(repeat + 2):
            v = hi * (0.05 + 0.01 * (i % 10))
            t0 = time.perf_counter()
            w.editing.threshold.setValue(v)
            painted()
            times.append((time.perf_counter() - t0) * 1000)
        w.editing.threshold.setValue(0.0)
        painted()
        out.update(spread("window_threshold_preview_ms_4096", times[2:]))

        # switch: from a small layer to the big one
        times = []
        for _ in range(max(5, repeat // 2) + 1):
            w.tree.select("2")
            painted()
            t0 = time.perf_counter()
            w.tree.select("0")
            painted()
            times.append((time.perf_counter() - t0) * 1000)
        out.update(spread("window_switch_layer_ms_4096", times[1:]))
        out["window_pruned_after_clicks"] = int(s.history.index)  # every click was undone: 0
    finally:
        _close(w)
    return out


def cnn_estimate(quick: bool, repeat: int | None = None) -> dict:
    """demo:cnn with its held-out digits: prune a filter of the first (or last) layer through the
    window → the first accuracy estimate (or result) of that step painted in the accuracy panel."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from pruneviz.core.session import Session

    s = Session.open("demo:cnn", data="demo:digits", device="cpu")
    app, w = _window(s)
    repeat = repeat or (4 if quick else 20)
    out: dict = {}

    def wait(cond, timeout_ms=30_000):
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(0)
        poll.timeout.connect(lambda: loop.quit() if cond() else None)
        poll.start()
        clock = QElapsedTimer()
        clock.start()
        while not cond() and clock.elapsed() < timeout_ms:
            loop.exec()
        poll.stop()
        if not cond():
            raise RuntimeError("no estimate within the timeout")

    try:
        wait(lambda: w.acc.current is not None and w.acc.baseline is not None and not w.runner.busy)
        layers = [layer.name for layer in s.layers]
        for key, name in (("window_first_layer_to_estimate_ms_cnn", layers[0]), ("window_last_layer_to_estimate_ms_cnn", layers[-2])):
            w.tree.select(name)
            app.processEvents()
            rows = s.layer(name).out_channels
            times = []
            for i in range(repeat + 2):
                seen: list = []
                step_of = lambda req, *_: seen.append(req.step)  # noqa: E731
                w.runner.progress.connect(step_of)
                w.runner.finished.connect(step_of)
                w.editing.select_neurons([i % rows])
                app.processEvents()
                t0 = time.perf_counter()
                w.actions["prune"].trigger()
                target = s.history.index
                wait(lambda: target in seen)
                w.grab()
                times.append((time.perf_counter() - t0) * 1000)
                w.runner.progress.disconnect(step_of)
                w.runner.finished.disconnect(step_of)
                wait(lambda: not w.runner.busy)
                w.actions["undo"].trigger()
                wait(lambda: not w.runner.busy)
            out.update(spread(key, times[2:]))
    finally:
        _close(w)
    return out


def global_vs_kthvalue(quick: bool, dims: list[int] | None = None) -> dict:
    """Global magnitude prune of 50% against the fastest simple baseline: |w| of every layer
    concatenated, ``torch.kthvalue``, one compare per layer (best of a few, after a warm-up)."""
    torch.manual_seed(0)
    dims = dims or ([2048, 4096, 2048, 4096] if not quick else [2048, 4096, 2048, 2560])
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    s = session_for(model, torch.randn(2, dims[0]))
    weights = [m.weight.detach() for m in model if isinstance(m, nn.Linear)]

    def baseline():
        flat = torch.cat([w.abs().reshape(-1) for w in weights])
        k = round(0.5 * flat.numel())
        thr = flat.kthvalue(k).values
        return [w.abs() > thr for w in weights]

    ours_t, base_t = [], []
    baseline()
    for _ in range(2 if quick else 5):  # interleaved
        t0 = time.perf_counter()
        keep = baseline()
        base_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s.prune(0.5, scope="global")
        ours_t.append(time.perf_counter() - t0)
        s.undo()
    s.redo()
    agree = sum(int((s.mask(layer.name) == k).sum()) for layer, k in zip(s.layers, keep))
    total = sum(k.numel() for k in keep)
    return {
        "global_magnitude_vs_kthvalue_ratio": min(ours_t) / min(base_t),
        "global_kthvalue_ms": min(base_t) * 1000,
        "global_prune_ms": min(ours_t) * 1000,
        "global_kthvalue_mask_agreement": agree / total,
    }


def history_bytes_held(history) -> int:
    """Memory the undo history holds, measured: every distinct tensor storage its steps reference
    (a view into a larger tensor keeps all of it alive, so the storage counts, not the view) plus
    the Python objects (steps, flips, lists, labels)."""
    import sys

    seen: set[int] = set()
    total = sys.getsizeof(history.steps)
    for step in history.steps:
        total += sys.getsizeof(step) + sys.getsizeof(step.label) + sys.getsizeof(step.flips)
        for f in step.flips:
            total += sys.getsizeof(f) + sys.getsizeof(f.idx)
            st = f.idx.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
    return total


def undo_memory(quick: bool) -> dict:
    """A known edit sequence on a 2048×2048 (quick: 1024×1024) MLP: a global 50% prune, 20 neuron
    prunes, 10 blocks, 10 single weights, 3 undos (their steps stay, for redo). Measured bytes
    held by the history / weights changed by all its steps."""
    torch.manual_seed(0)
    n = 1024 if quick else 2048
    model = nn.Sequential(nn.Linear(n, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, 10)).eval()
    s = session_for(model, torch.randn(2, n))
    s.prune(0.5, scope="global")
    for i in range(20):
        s.prune_neurons("2", [i])
    for i in range(10):
        s.prune_rect("0", (i * 8, i * 8 + 8), (0, 64))
    for i in range(10):
        s.prune_weights("4", [i * 7])
    for _ in range(3):
        s.undo()
    changed = sum(step.changed for step in s.history.steps)
    held = history_bytes_held(s.history)
    return {"undo_bytes_per_changed_weight": held / changed, "undo_history_bytes": held, "undo_changed_weights": changed}


GOALS = {
    "window_click_to_painted_ms_4096": ("<=", 50),
    "window_threshold_preview_ms_4096": ("<=", 50),
    "window_first_layer_to_estimate_ms_cnn": ("<=", 100),
    "window_last_layer_to_estimate_ms_cnn": ("<=", 100),
    "global_magnitude_vs_kthvalue_ratio": ("<=", 1.2),
}


def run_all(quick: bool, ui: bool = True) -> dict:
    out = global_vs_kthvalue(quick)
    out.update(undo_memory(quick))
    if ui:
        out.update(big_window(quick))
        out.update(cnn_estimate(quick))
    return out
