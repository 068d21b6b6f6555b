"""Time the heatmap's own path offscreen: an edit, the touched rows re-pooled, a full paint.

Example::

    from pruneviz.qt.app import make_app
    make_app()
    print(render_benchmark(Session.open("demo:mlp"), "0", repeat=10))
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg

from pruneviz.core import display

from .heatmap_view import HeatmapView


def render_benchmark(session, layer: str, repeat: int = 10, size: tuple[int, int] = (1200, 900), full: bool = False) -> float:
    """Median milliseconds to refresh and paint the heatmap of ``layer`` after an edit, offscreen.

    Builds a :class:`HeatmapView` of ``size`` (shown, so it pools to its pixel size), shows the
    layer once, then ``repeat`` times: prunes the weights of one neuron row (untimed, a Session
    edit), and times :meth:`HeatmapView.update_rows` for that row plus ``grab()`` (a full paint
    into a pixmap); each edit is undone afterwards. With ``full=True`` it times what opening the
    layer costs instead: ``set_layer`` from the session's arrays plus ``grab()``.
    Needs a QApplication (``pruneviz.qt.app.make_app()``); the session is left as it was.

    Example::

        s = Session.open("big.pt", arch="mymodels:big", device="cpu")
        print(render_benchmark(s, "fc1", repeat=10))
    """
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("render_benchmark needs a QApplication")
    view = HeatmapView()
    view.resize(*size)
    view.show()
    app.processEvents()

    def load():
        w = display.as_2d(session.weight(layer).numpy())
        pruned = display.as_2d(~session.mask(layer).numpy())
        view.set_layer(w, pruned, "weights", reset_view=True)

    load()
    view.grab()
    rows, cols = session.layer(layer).view_shape
    times = []
    try:
        for i in range(max(1, repeat)):
            if full:
                t0 = time.perf_counter()
                load()
                view.grab()
                times.append(time.perf_counter() - t0)
                continue
            row = (i * 7919 + 13) % rows
            start = session.history.index
            session.prune_weights(layer, np.arange(row * cols, (row + 1) * cols), label="benchmark")
            t0 = time.perf_counter()
            view.update_rows([row], lambda a, b: session.view_rows(layer, a, b))
            view.grab()
            times.append(time.perf_counter() - t0)
            if session.history.index > start:
                session.undo()
                view.update_rows([row], lambda a, b: session.view_rows(layer, a, b))
    finally:
        view.close()
        view.deleteLater()
    return float(np.median(times) * 1000.0)
