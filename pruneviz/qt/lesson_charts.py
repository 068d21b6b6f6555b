"""Draw a lesson's chart specs (lines, bars, scatter, decision boundary, network) with QPainter.

One painter for the app's lesson panel and for the PNGs of ``pruneviz lesson run`` (a
``QImage`` needs no window: offscreen works without a display). The specs are plain dicts made
by the core (:mod:`pruneviz.core.lesson_actions`, :mod:`pruneviz.core.toy`).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen

#: Okabe–Ito: distinguishable with the common colour-vision deficiencies
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]
CLASS_COLOURS = ((0, 114, 178), (230, 159, 0))


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


def render(chart: dict, width: int = 960, height: int = 540) -> QImage:
    """The chart as an RGB image of ``width`` × ``height`` pixels on white."""
    ensure_app()
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
    """Paint ``chart`` into ``rect``."""
    fg = fg or QColor("#222")
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
    kind = chart.get("kind")
    if kind in ("lines", "scatter"):
        _xy(p, body, chart, fg, size, lines=kind == "lines")
    elif kind == "bars":
        _bars(p, body, chart, fg, size)
    elif kind == "boundary":
        _boundary(p, body, chart, size)
    elif kind == "network":
        _network(p, body, chart, fg)


# ------------------------------------------------------------------------------------- axes
def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt_tick(v: float, pct: bool) -> str:
    return f"{v:.0%}" if pct else (f"{v:g}" if abs(v) < 1e4 else f"{v:.0e}")


def _axes(p: QPainter, body: QRectF, fg: QColor, size: float, xr, yr, xlabel: str, ylabel: str, xpct: bool, ypct: bool, ymax: float | None = None) -> QRectF:
    """Draw axes, ticks and labels; returns the plot area."""
    left, bottom = size * 6.5, size * 4.2
    plot = QRectF(body.left() + left, body.top() + size * 0.6, body.width() - left - size * 1.5, body.height() - bottom - size * 0.6)
    grid = QPen(QColor(0, 0, 0, 28), 1)
    p.setPen(fg)
    for v in _nice_ticks(*xr):
        x = plot.left() + (v - xr[0]) / (xr[1] - xr[0] or 1) * plot.width()
        p.setPen(grid)
        p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        p.setPen(fg)
        p.drawText(QRectF(x - size * 4, plot.bottom() + size * 0.3, size * 8, size * 1.6), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, _fmt_tick(v, xpct))
    for v in _nice_ticks(*yr):
        if ymax is not None and v > ymax + 1e-9:
            continue
        y = plot.bottom() - (v - yr[0]) / (yr[1] - yr[0] or 1) * plot.height()
        p.setPen(grid)
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(fg)
        p.drawText(QRectF(body.left(), y - size, left - size * 0.6, size * 2), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, _fmt_tick(v, ypct))
    p.setPen(QPen(fg, 1.2))
    p.drawLine(plot.bottomLeft(), plot.bottomRight())
    p.drawLine(plot.bottomLeft(), plot.topLeft())
    p.drawText(QRectF(plot.left(), plot.bottom() + size * 2.0, plot.width(), size * 2), Qt.AlignmentFlag.AlignCenter, xlabel)
    p.save()
    p.translate(body.left() + size * 0.9, plot.center().y())
    p.rotate(-90)
    p.drawText(QRectF(-plot.height() / 2, -size, plot.height(), size * 2), Qt.AlignmentFlag.AlignCenter, ylabel)
    p.restore()
    return plot


def _legend(p: QPainter, plot: QRectF, names: list[str], size: float, fg: QColor, where: str = "bottom-left") -> None:
    if not names:
        return
    metrics_w = max(len(n) for n in names) * size * 0.62 + size * 3
    h = size * 1.6
    box = QRectF(plot.left() + size, plot.bottom() - h * len(names) - size, metrics_w, h * len(names) + size * 0.4)
    if where == "top-right":
        box.moveTopRight(QPointF(plot.right() - size, plot.top() + size))
    p.setPen(QPen(QColor(0, 0, 0, 60)))
    p.setBrush(QColor(255, 255, 255, 225))
    p.drawRect(box)
    for i, n in enumerate(names):
        y = box.top() + size * 0.2 + h * i + h / 2
        c = QColor(COLOURS[i % len(COLOURS)])
        p.setPen(QPen(c, 3))
        p.drawLine(QPointF(box.left() + size * 0.5, y), QPointF(box.left() + size * 2, y))
        p.setPen(fg)
        p.drawText(QRectF(box.left() + size * 2.4, y - h / 2, box.width(), h), Qt.AlignmentFlag.AlignVCenter, n)
    p.setBrush(Qt.BrushStyle.NoBrush)


def _xy(p: QPainter, body: QRectF, chart: dict, fg: QColor, size: float, lines: bool) -> None:
    series = [s for s in chart.get("series", []) if len(s["x"])]
    xs = [v for s in series for v in s["x"]] or [0, 1]
    ys = [v for s in series for v in s["y"] if math.isfinite(v)] or [0, 1]
    xr = (min(xs), max(xs)) if max(xs) > min(xs) else (min(xs) - 0.5, min(xs) + 0.5)
    yr = tuple(chart["ylim"]) if chart.get("ylim") else (min(ys), max(ys)) if max(ys) > min(ys) else (min(ys) - 0.5, min(ys) + 0.5)
    if lines and not chart.get("xlim") and 0 <= xr[0] and xr[1] <= 1:
        xr = (0.0, 1.0) if xr[1] - xr[0] > 0.3 else xr
    pct_x = "sparsity" in chart.get("xlabel", "")
    pct_y = "accuracy" in chart.get("ylabel", "") or "sparsity" in chart.get("ylabel", "")
    plot = _axes(p, body, fg, size, xr, yr, chart.get("xlabel", ""), chart.get("ylabel", ""), pct_x, pct_y)

    def at(x, y):
        return QPointF(plot.left() + (x - xr[0]) / (xr[1] - xr[0]) * plot.width(), plot.bottom() - (y - yr[0]) / (yr[1] - yr[0]) * plot.height())

    for i, s in enumerate(series):  # the spread first, under the means: one faint line per seed
        faint = QColor(COLOURS[i % len(COLOURS)])
        faint.setAlpha(70)
        for ys_seed in s.get("seeds", []) if lines else []:
            pts = [at(x, y) for x, y in zip(s["x"], ys_seed) if math.isfinite(y)]
            if len(pts) > 1:
                p.setPen(QPen(faint, max(1.0, size / 8)))
                path = QPainterPath(pts[0])
                for q in pts[1:]:
                    path.lineTo(q)
                p.drawPath(path)
    for i, s in enumerate(series):
        c = QColor(COLOURS[i % len(COLOURS)])
        pts = [at(x, y) for x, y in zip(s["x"], s["y"]) if math.isfinite(y)]
        if lines and len(pts) > 1:
            p.setPen(QPen(c, max(2.0, size / 4)))
            path = QPainterPath(pts[0])
            for q in pts[1:]:
                path.lineTo(q)
            p.drawPath(path)
        p.setPen(QPen(c.darker(120), 1))
        p.setBrush(c)
        r = size * (0.32 if lines and len(pts) > 30 else 0.45)
        if not lines or len(pts) <= 30:
            for q in pts:
                p.drawEllipse(q, r, r)
        p.setBrush(Qt.BrushStyle.NoBrush)
    for m in chart.get("marks", []):
        x = at(m["x"], yr[0]).x()
        p.setPen(QPen(QColor("#D55E00"), 2, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        p.setPen(QColor("#D55E00"))
        p.drawText(QRectF(x + size * 0.4, plot.top() + size * 0.2, size * 14, size * 1.8), Qt.AlignmentFlag.AlignLeft, m.get("label", ""))
    _legend(p, plot, [s["name"] for s in series] if len(series) > 1 else [], size, fg, "top-right" if not lines else "bottom-left")


def _bars(p: QPainter, body: QRectF, chart: dict, fg: QColor, size: float) -> None:
    cats = chart.get("categories", [])
    series = chart.get("series", [])
    vals = [v for s in series for v in s["values"]] or [1]
    percent = chart.get("percent", True)
    top = 1.0 if percent or max(vals) <= 1 else max(vals)
    yr = (min(0.0, min(vals) * 1.2), top * (1.3 if len(series) > 1 else 1.12))  # room for the legend and labels
    plot = _axes(p, body, fg, size, (0, 1), yr, "", chart.get("ylabel", ""), False, percent, ymax=top)
    # the x axis names categories, not numbers: cover the numeric tick labels
    p.fillRect(QRectF(plot.left() - size * 3, plot.bottom() + 1, plot.width() + size * 6, size * 1.9), QColor("white"))
    n, k = max(1, len(cats)), max(1, len(series))
    slot = plot.width() / n
    bw = slot * 0.8 / k
    for ci, cat in enumerate(cats):
        for si, s in enumerate(series):
            v = s["values"][ci]
            x = plot.left() + slot * ci + slot * 0.1 + bw * si
            zero = plot.bottom() - (0 - yr[0]) / (yr[1] - yr[0]) * plot.height()
            h = v / (yr[1] - yr[0]) * plot.height()
            c = QColor(COLOURS[(si if k > 1 else ci) % len(COLOURS)])
            p.fillRect(QRectF(x, zero - h, bw * 0.92, h), c)
            err = s.get("errors", [0.0] * len(s["values"]))[ci]
            if err and math.isfinite(err):  # ± one standard deviation over the seeds
                e = err / (yr[1] - yr[0]) * plot.height()
                mid = x + bw * 0.46
                p.setPen(QPen(fg, max(1.5, size / 6)))
                p.drawLine(QPointF(mid, zero - h - e), QPointF(mid, zero - h + e))
                for yy in (zero - h - e, zero - h + e):
                    p.drawLine(QPointF(mid - bw * 0.15, yy), QPointF(mid + bw * 0.15, yy))
            p.setPen(fg)
            lift = (err / (yr[1] - yr[0]) * plot.height()) if err and math.isfinite(err) else 0.0
            label_y = zero - h - lift - size * 1.7 if v >= 0 else zero - h + size * 0.1
            p.drawText(QRectF(x - size, label_y, bw + 2 * size, size * 1.6), Qt.AlignmentFlag.AlignCenter, f"{v:.0%}" if percent else f"{v:.2f}")
        p.setPen(fg)
        p.drawText(QRectF(plot.left() + slot * ci, plot.bottom() + size * 0.3, slot, size * 1.6), Qt.AlignmentFlag.AlignCenter, cat)
    if k > 1:
        _legend(p, plot, [s["name"] for s in series], size, fg, "top-right")


# --------------------------------------------------------------------------------- boundary
def boundary_image(grid: np.ndarray) -> QImage:
    """P(class 1) on a grid -> a light two-colour image with the 0.5 contour dark (row 0 at the bottom)."""
    g = np.clip(np.asarray(grid, dtype=np.float32), 0, 1)[::-1]
    c0, c1 = np.array(CLASS_COLOURS[0], np.float32), np.array(CLASS_COLOURS[1], np.float32)
    conf = np.abs(g - 0.5)[..., None] * 2  # 0 at the boundary, 1 when sure
    base = np.where(g[..., None] < 0.5, c0, c1)
    rgb = 255 - (255 - base) * (0.18 + 0.42 * conf)
    side = g >= 0.5
    edge = np.zeros_like(side)
    edge[:-1] |= side[:-1] != side[1:]
    edge[:, :-1] |= side[:, :-1] != side[:, 1:]
    rgb[edge] = (40, 40, 40)
    rgba = np.dstack([rgb.astype(np.uint8), np.full(g.shape, 255, np.uint8)])
    rgba = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])  # BGRA for Format_RGB32 on little-endian
    img = QImage(rgba.data, g.shape[1], g.shape[0], 4 * g.shape[1], QImage.Format.Format_RGB32)
    return img.copy()


def boundary_square(body: QRectF) -> QRectF:
    side = min(body.width(), body.height())
    return QRectF(body.center().x() - side / 2, body.center().y() - side / 2, side, side)


def _boundary(p: QPainter, body: QRectF, chart: dict, size: float) -> None:
    sq = boundary_square(body)
    img = boundary_image(chart["grid"])
    p.drawImage(sq, img.scaled(int(sq.width()), int(sq.height()), Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation))
    x0, x1, y0, y1 = chart["bounds"]
    x, y = np.asarray(chart["x"]), np.asarray(chart["y"])
    r = max(2.0, sq.width() / 120)
    for cls in (0, 1):
        c = QColor(*CLASS_COLOURS[cls])
        p.setPen(QPen(QColor("white"), 1))
        p.setBrush(c)
        for px, py in x[y == cls]:
            q = QPointF(sq.left() + (px - x0) / (x1 - x0) * sq.width(), sq.bottom() - (py - y0) / (y1 - y0) * sq.height())
            if sq.contains(q):
                p.drawEllipse(q, r, r)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(QPen(QColor("#444"), 1))
    p.drawRect(sq)


# ---------------------------------------------------------------------------------- network
@dataclass
class Node:
    column: int  #: 0 = inputs
    index: int
    at: QPointF
    radius: float
    layer: str | None  #: the layer whose output this node is (None for inputs)
    kept: bool
    output: bool


@dataclass
class Edge:
    layer: str
    row: int  #: output neuron
    col: int  #: input
    a: QPointF
    b: QPointF
    width: float
    kept: bool


def network_geometry(chart: dict, rect: QRectF) -> tuple[list[Node], list[Edge]]:
    """Where each node and edge of a network chart goes in ``rect`` (also for hit tests)."""
    layers = chart["layers"]
    sizes = [len(layers[0]["w"][0])] + [len(layer["w"]) for layer in layers]
    ncol = len(sizes)
    margin = min(rect.width(), rect.height()) * 0.08
    dx = (rect.width() - 2 * margin) / max(1, ncol - 1)
    cols: list[list[Node]] = []
    for c, n in enumerate(sizes):
        dy = (rect.height() - 2 * margin) / max(1, n)
        radius = max(3.0, min(dy * 0.32, dx * 0.08, 18.0))
        x = rect.left() + margin + dx * c
        col = []
        for i in range(n):
            y = rect.top() + margin + dy * (i + 0.5)
            layer = layers[c - 1] if c else None
            col.append(Node(c, i, QPointF(x, y), radius, layer["name"] if layer else None, bool(layer["neurons"][i]) if layer else True, bool(layer and layer["output"])))
        cols.append(col)
    wmax = max((abs(v) for layer in layers for row in layer["w"] for v in row), default=1.0) or 1.0
    edges = []
    for li, layer in enumerate(layers):
        for i, row in enumerate(layer["w"]):
            for j, v in enumerate(row):
                a, b = cols[li][j], cols[li + 1][i]
                edges.append(Edge(layer["name"], i, j, a.at, b.at, 0.4 + 5.0 * abs(v) / wmax, bool(layer["mask"][i][j])))
    return [n for col in cols for n in col], edges


def _network(p: QPainter, body: QRectF, chart: dict, fg: QColor, hover=None) -> None:
    nodes, edges = network_geometry(chart, body)
    paint_network(p, nodes, edges, fg, hover)


def paint_network(p: QPainter, nodes: list[Node], edges: list[Edge], fg: QColor, hover=None) -> None:
    """Edges (width = |w|; pruned ones thin, grey and dashed) under nodes (pruned ones hollow)."""
    for e in sorted(edges, key=lambda e: e.kept):
        if e.kept:
            pen = QPen(QColor(0, 114, 178, 190), e.width)
        else:
            pen = QPen(QColor(150, 150, 150, 200), 1.2, Qt.PenStyle.DashLine)
        if hover is e:
            pen.setColor(QColor("#D55E00"))
        p.setPen(pen)
        p.drawLine(e.a, e.b)
    for n in nodes:
        colour = QColor("#444") if n.column == 0 else QColor("#E69F00") if n.output else QColor("#009E73")
        if hover is n:
            colour = QColor("#D55E00")
        p.setPen(QPen(colour.darker(130), 1.5))
        p.setBrush(QBrush(colour) if n.kept else QBrush(QColor("white")))
        p.drawEllipse(n.at, n.radius, n.radius)
        if not n.kept:
            d = n.radius * 0.6
            p.drawLine(n.at + QPointF(-d, -d), n.at + QPointF(d, d))
            p.drawLine(n.at + QPointF(-d, d), n.at + QPointF(d, -d))
    p.setBrush(Qt.BrushStyle.NoBrush)


def hit(nodes: list[Node], edges: list[Edge], pos: QPointF):
    """The node under ``pos`` (first), else the nearest edge within a few pixels, else None."""
    for n in nodes:
        if (n.at - pos).manhattanLength() <= n.radius * 1.4:
            return n
    best, best_d = None, 6.0
    for e in edges:
        ax, ay, bx, by = e.a.x(), e.a.y(), e.b.x(), e.b.y()
        vx, vy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((pos.x() - ax) * vx + (pos.y() - ay) * vy) / (vx * vx + vy * vy or 1)))
        d = math.hypot(ax + t * vx - pos.x(), ay + t * vy - pos.y())
        if d < best_d and 0.05 < t < 0.95:
            best, best_d = e, d
    return best
