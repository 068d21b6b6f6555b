"""The figures of the analyses, built from their JSON results: the app's Decide dock shows them
and ``pruneviz sensitivity|knockout|sweep --plot FILE.png`` renders the same ones offscreen.

Each ``*_plot`` function fills a :class:`pyqtgraph.PlotWidget` (made if not given) from a result
dict (or the partial one the dock builds while points stream in) and returns it.
"""

from __future__ import annotations

import math
from html import escape

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QTableWidget, QTableWidgetItem

#: Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DASHES = [Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine]


def row(*widgets) -> QHBoxLayout:
    """A row of widgets: a str is a label, None a stretch (for the Decide dock's controls)."""
    row = QHBoxLayout()
    for w in widgets:
        if isinstance(w, str):
            row.addWidget(QLabel(w))
        elif w is None:
            row.addStretch(1)
        else:
            row.addWidget(w)
    return row


def ray_field() -> QLineEdit:
    """Where the Decide dock's analyses run: empty here, ``local`` or a Ray cluster's HOST:PORT
    (off, saying why, when Ray is not installed)."""
    ray = QLineEdit()
    ray.setPlaceholderText("this machine")
    ray.setToolTip("run sensitivity, knockout and sweeps on Ray: local starts it here, HOST:PORT joins a cluster; empty runs them here")
    ray.setMaximumWidth(160)
    try:
        import importlib.util

        has_ray = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        has_ray = False
    ray.setEnabled(has_ray)
    if not has_ray:
        ray.setToolTip("Ray is not installed: pip install 'pruneviz[ray]'")
    return ray


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fresh(widget: pg.PlotWidget | None, title: str, xlabel: str, ylabel: str) -> pg.PlotWidget:
    w = widget if widget is not None else pg.PlotWidget(background="w")
    item = w.getPlotItem()
    item.clear()
    if item.legend is not None:
        item.legend.clear()
    else:
        # bottom left (curves fall to the right), on white so lines under it do not cross the text
        item.addLegend(offset=(10, -10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 210))
    item.legend.setVisible(True)
    item.setTitle(title, color="k")
    item.setLabel("bottom", xlabel)
    item.setLabel("left", ylabel)
    item.showGrid(x=True, y=True, alpha=0.2)
    plain_axes(item)
    return w


def plain_axes(item: pg.PlotItem) -> None:
    """Tick values as they are: no SI scaling of fractions to "m" (x0.001)."""
    for side in ("bottom", "left"):
        axis = item.getAxis(side)
        if hasattr(axis, "setSIPrefixEnableRanges"):  # pyqtgraph 0.14 scales even when disabled
            axis.setSIPrefixEnableRanges(())
        axis.enableAutoSIPrefix(False)


def sensitivity_plot(result: dict, widget: pg.PlotWidget | None = None, selected: str | None = None) -> pg.PlotWidget:
    """Accuracy vs the layer's sparsity, one line per layer (the ``selected`` one drawn thicker);
    each curve's ``layer`` attribute names its layer (for click-to-select)."""
    w = _fresh(widget, f"Layer sensitivity ({result.get('granularity', 'weight')}s by {result.get('method', 'magnitude')})", "sparsity of the layer", "accuracy")
    base = result.get("baseline")
    if base:
        w.addItem(pg.InfiniteLine(base["accuracy"], angle=0, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine)))
    w.curves = {}
    for i, (name, points) in enumerate(result.get("layers", {}).items()):
        points = sorted(points, key=lambda p: p["sparsity"])
        pen = pg.mkPen(color(i), width=4 if name == selected else 2, style=DASHES[(i // len(PALETTE)) % len(DASHES)])
        curve = w.plot([p["sparsity"] for p in points], [p["accuracy"] for p in points], pen=pen, symbol="o", symbolSize=5,
                       symbolBrush=color(i), symbolPen=None, name=escape(name))  # legends are HTML
        curve.layer = name
        curve.setCurveClickable(True, width=8)
        w.curves[name] = curve
    # entries side by side: a column of them ran off the top of the short Decide dock
    w.getPlotItem().legend.setColumnCount(min(max(len(w.curves), 1), 8))
    w.setYRange(0, 1.02)
    return w


def sweep_plot(result: dict, widget: pg.PlotWidget | None = None) -> pg.PlotWidget:
    """Accuracy vs overall sparsity, one line per (method, scope, granularity), with a legend."""
    w = _fresh(widget, "One-shot sweeps", "sparsity of all prunable weights", "accuracy")
    for i, c in enumerate(result.get("curves", [])):
        points = sorted(c["points"], key=lambda p: p["sparsity"])
        scopes = sorted({cc["scope"] for cc in result["curves"]})
        pen = pg.mkPen(color(i), width=2, style=DASHES[scopes.index(c["scope"]) % len(DASHES)])
        w.plot([p["sparsity"] for p in points], [p["accuracy"] for p in points], pen=pen, symbol="o", symbolSize=5,
               symbolBrush=color(i), symbolPen=None, name=f"{c['method']} · {c['scope']} · {c['granularity']}s")
    w.getPlotItem().legend.setColumnCount(min(max(len(result.get("curves", [])), 1), 3))
    w.setYRange(0, 1.02)
    return w


def knockout_plot(result: dict, widget: pg.PlotWidget | None = None, scores=None, method: str | None = None) -> pg.PlotWidget:
    """Measured loss increase of removing each neuron (bars) and, with ``scores``, the criterion's
    score of each neuron scaled to the same height (dots); the title gives the faithfulness."""
    faith = result.get("faithfulness", {}).get(method) if method else None
    title = f"Knockout of layer {escape(str(result.get('layer')))}"  # titles are HTML
    if faith:
        rho = faith["spearman"]
        title += f" · {method}: Spearman {'n/a' if rho is None else f'{rho:.2f}'}, top-10 overlap {faith['top10_overlap']:.0%}"
    w = _fresh(widget, title, "neuron", "loss increase when removed (bars)" + (f" · {method} score, scaled (dots)" if scores is not None else ""))
    w.getPlotItem().legend.setVisible(False)  # bars span the plot: the axis label says what is what
    base = result.get("baseline", {}).get("loss", 0.0)
    neurons = [n for n in result.get("neurons", []) if not n.get("pruned")]
    xs = [n["index"] for n in neurons]
    ys = [n["loss"] - base for n in neurons]
    if xs:
        w.addItem(pg.BarGraphItem(x=xs, height=ys, width=0.8, brush=color(0)))
    if scores is not None and xs:
        s = [float(scores[i]) for i in xs]
        top, smax = max(max(ys), 1e-12), max(max(s), 1e-30)
        w.plot(xs, [v / smax * top for v in s], pen=None, symbol="o", symbolSize=6, symbolBrush=color(1), symbolPen=None,
               name=f"{method} score (scaled)")
    return w


def faithfulness_table(result: dict, table: QTableWidget) -> QTableWidget:
    """Every criterion's faithfulness to the knockout (Spearman rho, top-10 % overlap), best first."""
    rows = sorted(result["faithfulness"].items(), key=lambda kv: -(kv[1]["spearman"] if kv[1]["spearman"] is not None else -2))
    table.setRowCount(len(rows))
    for r, (m, f) in enumerate(rows):
        rho = "n/a" if f["spearman"] is None else f"{f['spearman']:+.3f}"
        for c, text in enumerate((m, rho, f"{f['top10_overlap']:.0%}")):
            table.setItem(r, c, QTableWidgetItem(text))
    return table


def plans_plot(rows: list[dict], layers: list[str], widget: pg.PlotWidget | None = None) -> pg.PlotWidget:
    """Per-layer sparsity of each plan as grouped bars (plans side by side)."""
    # the key is in the title: a legend box would cover bars near 1.0 in the short Decide dock
    key = "  ".join(f"<span style='color:{color(i)}'>&#9632;</span> {escape(r['name'])}" for i, r in enumerate(rows))
    w = _fresh(widget, f"Sparsity per layer: {key}", "layer", "sparsity")
    w.getPlotItem().legend.setVisible(False)
    n = max(len(rows), 1)
    for i, row in enumerate(rows):
        xs = [j + (i - (n - 1) / 2) * 0.8 / n for j in range(len(layers))]
        w.addItem(pg.BarGraphItem(x=xs, height=[row["layer_sparsity"].get(name, 0.0) for name in layers], width=0.8 / n, brush=color(i), name=row["name"]))
    w.getPlotItem().getAxis("bottom").setTicks([list(enumerate(layers))])
    w.setYRange(0, 1.02)
    return w


def plan_curves_plot(rows: list[dict], widget: pg.PlotWidget | None = None) -> pg.PlotWidget:
    """Each plan's curve (``row["curve"]``, from :func:`pruneviz.core.plans.summaries`): accuracy
    vs sparsity after every step, one line per plan with a marker per step, overlaid; the last
    step the plans share (where they branch) is ringed and labelled. Without data (no accuracy):
    sparsity vs step. ``widget.curves`` maps plan names to their lines, ``widget.branch`` is the
    branch point's ``(x, y)`` or None."""
    curves = [r.get("curve") or [] for r in rows]
    measured = any(p["accuracy"] is not None for c in curves for p in c)
    if measured:
        w = _fresh(widget, "Accuracy after each step of each plan", "sparsity of all prunable weights", "accuracy")
        xy = lambda p: (p["sparsity"], p["accuracy"])  # noqa: E731
    else:
        w = _fresh(widget, "Sparsity after each step of each plan (no data)", "step", "sparsity")
        xy = lambda p: (p["step"], p["sparsity"])  # noqa: E731
        w.getPlotItem().legend.setOffset((10, 10))  # top left: sparsity rises to the right
        steps = max((len(c) for c in curves), default=1)
        w.getPlotItem().getAxis("bottom").setTicks([[(k, str(k)) for k in range(steps)]])
    w.curves = {}
    for i, (row, curve) in enumerate(zip(rows, curves)):
        pts = [xy(p) for p in curve if xy(p)[1] is not None]
        w.curves[row["name"]] = w.plot([x for x, _ in pts], [y for _, y in pts], pen=pg.mkPen(color(i), width=2, style=DASHES[i % len(DASHES)]),
                                       symbol="o", symbolSize=7, symbolBrush=color(i), symbolPen=None, name=f"{escape(row['name'])} ({len(curve) - 1} steps)")
    w.branch = None
    shared = _shared_prefix([[p["id"] for p in c] for c in curves]) if len(curves) >= 2 else 0
    if shared:
        p = curves[0][shared - 1]
        x, y = xy(p)
        if y is not None:
            w.branch = (x, y)
            w.plot([x], [y], pen=None, symbol="o", symbolSize=16, symbolBrush=None, symbolPen=pg.mkPen("k", width=2), name="branch point")
            xs = [xy(q)[0] for c in curves for q in c]
            left = x - min(xs) > (max(xs) - min(xs)) / 3  # room on its left: the plans run on to its right
            text = pg.TextItem("branch: at the start" if p["step"] == 0 else f"branch: after step {p['step']}", color="k", anchor=(1, -0.1) if left else (-0.05, -0.1))
            text.setPos(x, y)
            w.addItem(text)
    return w


def _shared_prefix(seqs: list[list]) -> int:
    n = 0
    while all(len(s) > n for s in seqs) and len({s[n] for s in seqs}) == 1:
        n += 1
    return n


def allocation_plot(plan: dict[str, float], current: dict[str, float], widget: pg.PlotWidget | None = None, target: float | None = None) -> pg.PlotWidget:
    """Planned sparsity per layer (bars) beside the current one."""
    title = "Allocation" + (f" for {target:.0%} sparsity" if target is not None and math.isfinite(target) else "")
    w = _fresh(widget, title, "layer", "sparsity")
    names = list(plan)
    w.addItem(pg.BarGraphItem(x=[i - 0.2 for i in range(len(names))], height=[current.get(n, 0.0) for n in names], width=0.4, brush="#bbbbbb", name="now"))
    w.addItem(pg.BarGraphItem(x=[i + 0.2 for i in range(len(names))], height=[plan[n] for n in names], width=0.4, brush=color(0), name="plan"))
    w.getPlotItem().getAxis("bottom").setTicks([list(enumerate(names))])
    w.setYRange(0, 1.02)
    return w


def save_png(widget: pg.PlotWidget, path, size: tuple[int, int] = (900, 560)) -> None:
    """Render ``widget`` to a PNG with pyqtgraph's ImageExporter (works offscreen), atomically."""
    from pyqtgraph.exporters import ImageExporter

    from pruneviz.core.export import atomic_path

    widget.resize(*size)
    widget.getPlotItem().resize(*size)
    exporter = ImageExporter(widget.getPlotItem())
    exporter.parameters()["width"] = size[0]
    image = exporter.export(toBytes=True)
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"cannot write the image {path}")
