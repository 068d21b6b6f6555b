"""Draw a lesson's chart specs: lines, bars and scatter with pyqtgraph (as the rest of the app
plots); the decision boundary and the network of a generated problem with QPainter.

The same plots serve the app's lesson panel (:func:`plot_widget` / :func:`draw`) and the PNGs of
``pruneviz lesson run`` (:func:`render`: the plot is laid out in a widget that is never shown on
screen and grabbed, so it works offscreen, without a display). The specs are plain dicts made by
the core (:mod:`pruneviz.core.lesson_actions`, :mod:`pruneviz.core.toy`).

One colour per arm: a series (or a bar's category) is coloured by its ``key`` (the method, the
scope, the training schedule), the same in every chart of a lesson (:func:`colour`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

# the generated problem's pictures (painted); re-exported: the playground hit-tests through them
from .lesson_drawings import CLASS_COLOURS, Edge, Node, boundary_image, boundary_square, hit, network_geometry, paint_boundary, paint_network, paint_network_chart  # noqa: F401

#: Okabe–Ito (distinguishable with the common colour-vision deficiencies), then Tol's wine
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442", "#882255"]


def _arm_colours() -> dict[str, str]:
    """Each arm a lesson compares in one fixed colour: its place in the core's own list (criteria,
    scopes, schedules), so a new method or schedule gets a colour without a list here."""
    from pruneviz.core import schedules, units

    out: dict[str, str] = {}
    for family in (units.all_methods(), units.SCOPES, (*schedules.SCHEDULES, "fine-tune")):
        for i, key in enumerate(family):
            out.setdefault(key, COLOURS[i % len(COLOURS)])
    return out


#: the arms lessons compare, each always in its own colour (criteria, scopes, schedules)
ARM_COLOURS = _arm_colours()
#: keys that are not arms (layers of a sensitivity plot, figures of a bar chart): Tol's muted scheme
OTHER_COLOURS = ["#332288", "#117733", "#44AA99", "#88CCEE", "#999933", "#CC6677", "#AA4499", "#DDCC77"]
AXES_KINDS = ("lines", "scatter", "bars")
FG = "#222222"


def ensure_app():
    """An application object for painting text into images (offscreen when there is no display).

    A QApplication, not a bare QGuiApplication: widgets made later in the same process (the
    app, tests) need one, and Qt allows a single application object per process."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([sys.argv[0] if sys.argv else "pruneviz"])
    return app


def colour(key: str, chart_keys: list[str]) -> QColor:
    """The colour of an arm: its fixed one (:data:`ARM_COLOURS`), else by its place among the
    chart's other keys that have none (layers of a sensitivity plot, figures of a bar chart)."""
    if key in ARM_COLOURS:
        return QColor(ARM_COLOURS[key])
    free = OTHER_COLOURS  # never an arm's colour: a layer is not mistaken for a criterion
    others = [k for k in dict.fromkeys(chart_keys) if k not in ARM_COLOURS]
    return QColor(free[others.index(key) % len(free)] if key in others else COLOURS[0])


def _key(series: dict) -> str:
    return str(series.get("key", series.get("name", "")))


def render(chart: dict, width: int = 960, height: int = 540) -> QImage:
    """The chart as an RGB image of ``width`` × ``height`` pixels on white."""
    ensure_app()
    if chart.get("kind") in AXES_KINDS:
        from PySide6.QtWidgets import QApplication

        w = plot_widget(chart, pixel=max(11.0, min(height / 30, width / 45)))
        w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        w.resize(width, height)
        w.show()
        QApplication.processEvents()
        img = w.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
        w.close()
        w.deleteLater()
        return img
    img = QImage(width, height, QImage.Format.Format_RGB32)
    img.fill(QColor("white"))
    p = QPainter(img)
    try:
        paint(p, QRectF(0, 0, width, height), chart)
    finally:
        p.end()
    return img


def save_png(chart: dict, path: str | Path, size: tuple[int, int] = (960, 540)) -> None:
    """Write the chart as a PNG (the renderer ``lesson run`` passes to write_outputs)."""
    if not render(chart, *size).save(str(path), "PNG"):
        from pruneviz.core.errors import PrunevizError

        raise PrunevizError(f"could not write {path}")


def paint(p: QPainter, rect: QRectF, chart: dict, fg: QColor | None = None) -> None:
    """Paint ``chart`` into ``rect`` (boundary and network; a plot is drawn as its rendered image)."""
    fg = fg or QColor(FG)
    kind = chart.get("kind")
    if kind in AXES_KINDS:
        p.drawImage(rect, render(chart, max(1, int(rect.width())), max(1, int(rect.height()))))
        return
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    size = max(8.0, min(rect.height() / 30, rect.width() / 45))
    font = QFont(p.font())
    font.setPointSizeF(size)
    p.setFont(font)
    title_h = size * 2.2
    title = chart.get("title", "")
    if title:
        f2 = QFont(font)
        f2.setBold(True)
        p.setFont(f2)
        p.setPen(fg)
        p.drawText(QRectF(rect.left(), rect.top(), rect.width(), title_h), Qt.AlignmentFlag.AlignCenter, title)
        p.setFont(font)
    body = QRectF(rect.left(), rect.top() + (title_h if title else 0), rect.width(), rect.height() - (title_h if title else 0))
    if kind == "boundary":
        paint_boundary(p, body, chart, size)
    elif kind == "network":
        paint_network_chart(p, body, chart, fg)


# ------------------------------------------------------------------------------- pyqtgraph
def plot_widget(chart: dict, pixel: float = 14.0, parent=None):
    """A white pyqtgraph PlotWidget drawing ``chart`` (lines, scatter or bars); text ``pixel`` px."""
    import pyqtgraph as pg

    w = pg.PlotWidget(parent=parent, background="w")
    w.setMinimumSize(240, 160)
    draw(w.getPlotItem(), chart, pixel)
    return w


def _axis_font(pixel: float) -> QFont:
    f = QFont()
    f.setPixelSize(max(8, round(pixel)))
    return f


def ticks(lo: float, hi: float, percent: bool, integer: bool, n: int = 5) -> list[tuple[float, str]]:
    """Tick positions and labels over [lo, hi]: whole numbers only on an integral axis (epochs),
    percents on a share axis; the ends are included when they fall on a tick (0 %)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [(lo, f"{lo:g}")]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, round(step)) if step >= 1 else 1
    start = math.ceil(lo / step - 1e-9) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        v = round(v, 10)
        out.append((v, f"{v:.0%}" if percent else (str(int(round(v))) if integer or float(v).is_integer() else f"{v:g}")))
        v += step
    return out


def draw(plot, chart: dict, pixel: float = 14.0) -> None:
    """Draw ``chart`` into a pyqtgraph PlotItem (cleared first)."""
    import pyqtgraph as pg

    plot.clear()
    if plot.legend is not None:
        plot.legend.scene() and plot.legend.scene().removeItem(plot.legend)
        plot.legend = None
    font = _axis_font(pixel)
    fg = QColor(FG)
    plot.setTitle(chart.get("title", ""), color=FG, size=f"{round(pixel * 1.1)}px", bold=True)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    for name in ("left", "bottom"):
        ax = plot.getAxis(name)
        ax.setPen(pg.mkPen(fg))
        ax.setTextPen(pg.mkPen(fg))
        ax.setStyle(tickFont=font, tickTextOffset=max(3, round(pixel / 3)))
    kind = chart.get("kind")
    if kind == "bars":
        _bars(plot, chart, pixel)
    else:
        _xy(plot, chart, pixel, lines=kind == "lines")


def _label(plot, side: str, text: str, pixel: float) -> None:
    plot.setLabel(side, text, color=FG, **{"font-size": f"{round(pixel)}px"})


def _xy(plot, chart: dict, pixel: float, lines: bool) -> None:
    import pyqtgraph as pg

    series = [s for s in chart.get("series", []) if len(s["x"])]
    keys = [_key(s) for s in series]
    xs = [v for s in series for v in s["x"]] or [0, 1]
    ys = [v for s in series for v in s["y"] if math.isfinite(v)] or [0, 1]
    xr = (min(xs), max(xs)) if max(xs) > min(xs) else (min(xs) - 0.5, min(xs) + 0.5)
    yr = tuple(chart["ylim"]) if chart.get("ylim") else (min(ys), max(ys)) if max(ys) > min(ys) else (min(ys) - 0.5, min(ys) + 0.5)
    if lines and not chart.get("xlim") and 0 <= xr[0] and xr[1] <= 1 and xr[1] - xr[0] > 0.3:
        xr = (0.0, 1.0)
    pct_x = "sparsity" in chart.get("xlabel", "")
    pct_y = "accuracy" in chart.get("ylabel", "") or "sparsity" in chart.get("ylabel", "")
    integer_x = bool(chart.get("integer_x")) or chart.get("xlabel") == "epoch"
    _label(plot, "bottom", chart.get("xlabel", ""), pixel)
    _label(plot, "left", chart.get("ylabel", ""), pixel)
    plot.showGrid(x=True, y=True, alpha=0.12)
    if len(series) > 1:
        corner = {"bottom-left": (10, -10), "bottom-right": (-10, -10), "top-right": (-10, 10), "top-left": (10, 10)}
        legend = plot.addLegend(offset=corner.get(chart.get("legend", ""), (10, -10) if lines else (-10, 10)), labelTextColor=FG, labelTextSize=f"{round(pixel)}px", brush=pg.mkBrush(255, 255, 255, 225), pen=pg.mkPen(0, 0, 0, 60))
        legend.setZValue(10)
    width = max(2.0, pixel / 5)
    for s, key in zip(series, keys):  # the spread first, under the means: one faint line per seed
        if not lines:
            continue
        faint = colour(key, keys)
        faint.setAlpha(70)
        for ys_seed in s.get("seeds", []):
            pts = [(x, y) for x, y in zip(s["x"], ys_seed) if math.isfinite(y)]
            if len(pts) > 1:
                plot.addItem(pg.PlotDataItem([p[0] for p in pts], [p[1] for p in pts], pen=pg.mkPen(faint, width=max(1.0, width / 2))))
    for s, key in zip(series, keys):
        c = colour(key, keys)
        pts = [(x, y) for x, y in zip(s["x"], s["y"]) if math.isfinite(y)]
        px, py = [p[0] for p in pts], [p[1] for p in pts]
        symbol = "o" if (not lines or len(pts) <= 30) else None
        size = pixel * (0.65 if lines else 0.55)
        item = pg.PlotDataItem(px, py, pen=pg.mkPen(c, width=width) if lines else None, symbol=symbol, symbolSize=size, symbolBrush=pg.mkBrush(c), symbolPen=pg.mkPen(c.darker(120)), name=s["name"] if len(series) > 1 else None)
        plot.addItem(item)
    for h in chart.get("hlines", []):
        line = pg.InfiniteLine(pos=h["y"], angle=0, pen=pg.mkPen("#555555", width=max(1.5, width * 0.7), style=Qt.PenStyle.DashLine), label=h.get("label", ""), labelOpts={"position": 0.02, "color": "#333333", "anchors": [(0, 1), (0, 1)]})
        line.label.setFont(font_px(pixel))
        plot.addItem(line)
    for m in chart.get("marks", []):
        line = pg.InfiniteLine(pos=m["x"], angle=90, pen=pg.mkPen("#D55E00", width=2, style=Qt.PenStyle.DashLine), label=m.get("label", ""), labelOpts={"position": 0.96, "color": "#D55E00", "anchors": [(0, 0), (0, 0)]})
        line.label.setFont(font_px(pixel))
        plot.addItem(line)
    pad_x = (xr[1] - xr[0]) * 0.03
    pad_y = (yr[1] - yr[0]) * 0.04
    plot.setXRange(xr[0] - pad_x, xr[1] + pad_x, padding=0)
    plot.setYRange(yr[0] - pad_y, yr[1] + pad_y, padding=0)
    plot.getAxis("bottom").setTicks([ticks(xr[0], xr[1], pct_x, integer_x)])
    plot.getAxis("left").setTicks([ticks(yr[0], yr[1], pct_y, False)])


def font_px(pixel: float, bold: bool = False) -> QFont:
    f = _axis_font(pixel)
    f.setBold(bold)
    return f


def _bars(plot, chart: dict, pixel: float) -> None:
    import pyqtgraph as pg

    cats = chart.get("categories", [])
    series = chart.get("series", [])
    vals = [v for s in series for v in s["values"] if math.isfinite(v)] or [1]
    errs = [e for s in series for e in s.get("errors", []) if math.isfinite(e)] or [0]
    percent = chart.get("percent", True)
    top = 1.0 if percent or max(vals) <= 1 else max(vals)
    lo = min(0.0, min(vals) - max(errs))
    if lo < 0:  # room under a negative bar for its value label
        lo -= 0.12 * (top - lo)
    room = 1.3 if len(series) > 1 else 1.15  # the value labels and the legend above the bars
    n, k = max(1, len(cats)), max(1, len(series))
    bw = 0.8 / k
    single = k == 1
    keys = chart.get("keys") or list(cats)
    skeys = [_key(s) for s in series]
    _label(plot, "left", chart.get("ylabel", ""), pixel)
    plot.showGrid(x=False, y=True, alpha=0.12)
    if not single:
        plot.addLegend(offset=(-10, 10), labelTextColor=FG, labelTextSize=f"{round(pixel)}px", brush=pg.mkBrush(255, 255, 255, 225), pen=pg.mkPen(0, 0, 0, 60)).setZValue(10)
    for si, s in enumerate(series):
        xs = [ci - 0.4 + bw * si + bw / 2 for ci in range(len(s["values"]))]
        brushes = [pg.mkBrush(colour(keys[ci] if single and ci < len(keys) else skeys[si], keys if single else skeys)) for ci in range(len(s["values"]))]
        item = pg.BarGraphItem(x=xs, height=list(s["values"]), width=bw * 0.92, brushes=brushes, pen=pg.mkPen(None))
        plot.addItem(item)
        if not single:  # a legend entry in the series' colour
            plot.legend.addItem(pg.BarGraphItem(x=[0], height=[0], width=0, brush=brushes[0]), s["name"])
        errors = s.get("errors") or [0.0] * len(s["values"])
        with_err = [(x, v, e) for x, v, e in zip(xs, s["values"], errors) if math.isfinite(e) and e > 1e-6 * max(1.0, abs(top))]
        if with_err:  # ± one standard deviation over the seeds
            plot.addItem(pg.ErrorBarItem(x=np.array([w[0] for w in with_err]), y=np.array([w[1] for w in with_err]), height=np.array([2 * w[2] for w in with_err]), beam=bw * 0.3, pen=pg.mkPen(FG, width=max(1.5, pixel / 6))))
        for x, v, e in zip(xs, s["values"], errors):
            lift = (e if math.isfinite(e) and e > 1e-6 * max(1.0, abs(top)) else 0.0) + 0.01 * (top - lo)
            text = pg.TextItem(f"{v:.0%}" if percent else f"{v:.2f}", color=FG, anchor=(0.5, 1.0 if v >= 0 else 0.0))
            text.setFont(font_px(pixel * 0.9))
            text.setPos(x, v + lift if v >= 0 else v - lift)
            plot.addItem(text)
    bottom = plot.getAxis("bottom")
    lines_per_label = max((c.count("\n") + 1 for c in cats), default=1)
    bottom.setHeight(pixel * (1.6 * lines_per_label + 0.8))
    bottom.setTicks([[(ci, c) for ci, c in enumerate(cats)]])
    hi = top * room
    pad = (hi - lo) * 0.03
    plot.setXRange(-0.55, n - 0.45, padding=0)
    plot.setYRange(lo - pad, hi, padding=0)  # the 0 % tick inside the view, not on its edge
    plot.getAxis("left").setTicks([[t for t in ticks(lo, top, percent, False)]])
