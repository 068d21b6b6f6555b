"""The pictures of a generated problem, painted with QPainter: its decision boundary with the
held-out points, and the network as nodes and edges (edge width = |w|; pruned edges grey and
dashed, pruned neurons hollow), with the geometry the playground hit-tests clicks against."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen

CLASS_COLOURS = ((0, 114, 178), (230, 159, 0))


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


def paint_boundary(p: QPainter, body: QRectF, chart: dict, size: float) -> None:
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


def paint_network_chart(p: QPainter, body: QRectF, chart: dict, fg: QColor, hover=None) -> None:
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
