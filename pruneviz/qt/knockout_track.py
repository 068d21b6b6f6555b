"""The measured knockout beside the neuron strip: what removing each neuron alone did to the loss,
next to the rank that the strip's criterion gives the neuron.

A knockout (:func:`pruneviz.core.analysis.knockout`, run from the Decide dock) measures every
neuron of one layer. :class:`KnockoutTrack` draws it as a column beside the neuron strip, row for
row with the strip and the heatmap: it follows the strip's order (sorted or not) and its zoom.

* **Δ loss**: the loss increase when the neuron is removed alone (a bar; a decrease goes left).
  Neurons that were already pruned when it was measured are grey bands.
* **rank** (1 = the first to prune): a blue dot at the rank the strip's criterion gives the
  neuron, a vermillion tick at the rank its measured Δ loss gives it, a line between them. A
  faithful criterion puts dots on ticks; a long line is a neuron the criterion misjudges.

The header gives the faithfulness of the criterion the strip shows (Spearman ρ and top-10 overlap,
as the knockout reported them); hovering it lists every criterion, hovering a row describes that
neuron. A knockout describes the model it measured: after any change (an edit in any layer, undo
or redo to another step, other evaluation data) the track says it is stale and greys its bars,
until the history is back at that step or the knockout runs again. Clicking a row selects the
neuron, as a click on the strip does. The window puts it right of the strip and its header in
the view controls' row (:func:`pruneviz.qt.window_layout.place_knockout_track`); its header's
text is :func:`pruneviz.qt.knockout_header.header_texts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics
from shiboken6 import isValid

from pruneviz.core.analysis import ranks

from .decide_plots import plain_axes
from .knockout_header import CRITERION, MEASURED, HeaderLabel, header_texts
from .plain import literal

LOWER = "#009E73"  #: removing the neuron lowered the loss
STALE = "#9a9a9a"


@dataclass(eq=False)
class Measured:
    """A knockout result and the state it describes."""

    result: dict
    node: object  #: the history node (model state) it was measured at
    data_gen: int  #: which evaluation data it was measured on (the track counts data changes)


def _nice_step(x: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50, … that is at least ``x``."""
    step = 1.0
    while step < x:
        for f in (2.0, 2.5, 2.0):  # 1 → 2 → 5 → 10 → …
            step *= f
            if step >= x:
                break
    return step


class KnockoutTrack(pg.GraphicsLayoutWidget):
    """Knockout of the shown layer (Δ loss and ranks) beside a :class:`NeuronStrip`.

    Feed it results with :meth:`add_result` (after :meth:`measuring` when the run started) and
    call :meth:`show_layer` whenever the strip redraws; it hides itself when the shown layer has
    no knockout. ``rowsClicked(neuron, modifiers)`` as the strip's.
    """

    rowsClicked = Signal(int, object)

    def __init__(self, strip, parent=None):
        super().__init__(parent)
        self.strip = strip
        self.setMinimumWidth(150)
        self.setMaximumWidth(220)
        self.ci.setContentsMargins(0, 0, 2, 0)
        self.ci.setSpacing(0)
        # the figures go in a label *above* the plots' row (the window puts it in the view
        # controls' row): a title inside this widget would push its rows below the strip's
        # and hide the top neurons
        self.header = HeaderLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        f = self.header.font()
        f.setPointSizeF(f.pointSizeF() * 0.9)
        self.header.setFont(f)
        self.header.hide()
        self.loss_plot = self.addPlot(row=0, col=0)
        self.rank_plot = self.addPlot(row=0, col=1)
        self._scale = 1.0  # presentation mode's
        self._labels = {}
        ranks_label = f"rank <span style='color:{CRITERION}'>●</span> <span style='color:{MEASURED}'><b>|</b></span>"
        for p, label in ((self.loss_plot, "Δ loss"), (self.rank_plot, ranks_label)):
            self._labels[p] = label
            p.hideAxis("left")
            p.invertY(True)
            p.setMouseEnabled(x=False, y=True)
            p.setMenuEnabled(False)
            p.hideButtons()
            p.setLabel("bottom", label)
            plain_axes(p)
            p.getAxis("bottom").setStyle(maxTickLevel=0)
            p.setYLink(strip.getViewBox())
        self.bands = pg.BarGraphItem(x0=[], y=[], height=1.0, width=[])  # pruned neurons
        self.sel_bands = pg.BarGraphItem(x0=[], y=[], height=1.0, width=[])
        self.up = pg.BarGraphItem(x0=[], y=[], height=0.8, width=[])
        self.down = pg.BarGraphItem(x0=[], y=[], height=0.8, width=[])
        for item in (self.sel_bands, self.bands):
            item.setZValue(-10)
        for item in (self.sel_bands, self.bands, self.up, self.down):
            self.loss_plot.addItem(item)
        self.rank_bands = pg.BarGraphItem(x0=[], y=[], height=1.0, width=[])
        self.rank_sel = pg.BarGraphItem(x0=[], y=[], height=1.0, width=[])
        for item in (self.rank_sel, self.rank_bands):
            item.setZValue(-10)
        self.links = pg.PlotCurveItem(connect="pairs")
        self.crit_dots = pg.ScatterPlotItem(symbol="o", pen=None)
        self.meas_ticks = pg.ScatterPlotItem(symbol="|")
        for item in (self.rank_sel, self.rank_bands, self.links, self.meas_ticks, self.crit_dots):
            self.rank_plot.addItem(item)
        self.session = None
        self.layer: str | None = None
        self.method = ""
        self._owner = None  # the session the results belong to
        self._subscribed = None  # the session whose ``changed`` this track listens to
        self._results: dict[str, Measured] = {}
        self._pending: tuple | None = None  # (session, node, data_gen) of a run under way
        self._data_gen = 0
        self._key = None
        # what is drawn, in row order (row position -> neuron), for the tooltip and tests
        self.rows = np.zeros(0, dtype=int)
        self.delta = np.zeros(0)  #: loss − baseline loss when removed alone (NaN: pruned when measured)
        self.criterion_rank = np.zeros(0)  #: 1 = the criterion's least important (NaN: pruned)
        self.measured_rank = np.zeros(0)  #: 1 = the smallest measured loss increase (NaN: pruned)
        self.stale: str | None = None  #: why the shown knockout no longer describes the model
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)
        strip.getViewBox().sigYRangeChanged.connect(lambda *_: self._size_symbols())
        self.hide()

    # ------------------------------------------------------------- results
    def set_session(self, session) -> None:
        """Follow ``session``: the knockouts of the previous one are dropped."""
        self._unsubscribe()
        if session is not self._owner:
            self._results.clear()
            self._pending = None
        self.session = self._owner = session
        session.changed.connect(self._on_changed)
        self._subscribed = session
        self._key = None
        self._redraw()

    def _unsubscribe(self) -> None:
        if self._subscribed is not None:
            try:
                self._subscribed.changed.disconnect(self._on_changed)
            except (TypeError, ValueError, RuntimeError):
                pass
            self._subscribed = None

    def measuring(self, session) -> None:
        """A knockout of ``session`` starts now: its result describes the model as it is now."""
        self._pending = (session, session.history.position, self._data_gen)

    def add_result(self, result: dict) -> None:
        """Keep ``result`` (``Session.knockout``'s dict) for its layer and show it when that
        layer is shown; it describes the state recorded by :meth:`measuring` (else the current one)."""
        s = self.session
        if s is None:
            return
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is not s:
            return  # measured on a session this window no longer shows
        node, gen = (pending[1], pending[2]) if pending is not None else (s.history.position, self._data_gen)
        self._results[result["layer"]] = Measured(result, node, gen)
        self._key = None
        self._redraw()

    def result(self, layer: str) -> dict | None:
        """The knockout kept for ``layer`` (None: none measured)."""
        m = self._results.get(layer)
        return m.result if m is not None else None

    def stale_reason(self, layer: str) -> str | None:
        """Why the knockout of ``layer`` no longer describes the model (None: it does)."""
        m = self._results.get(layer)
        s = self.session
        if m is None or s is None:
            return None
        if m.data_gen != self._data_gen:
            return "the evaluation data changed since it was measured"
        if s.history.position is not m.node:
            h = s.history
            now = f" (now after “{h.labels[h.index - 1]}”)" if h.index else " (now at the unpruned model)"
            return "the model changed since it was measured" + now
        return None

    def _on_changed(self, change) -> None:
        if not isValid(self):  # the window is gone; the session outlives it
            self._unsubscribe()
            return
        if change.kind in ("data", "load"):
            self._data_gen += 1  # other data (or a loaded state): every knockout is stale
        self._redraw()

    # ------------------------------------------------------------- drawing
    def show_layer(self, session, layer: str | None, method: str) -> None:
        """Show the knockout of ``layer`` (if any) in the strip's current order; ``method`` is
        the criterion the strip shows."""
        self.session, self.layer, self.method = session, layer, method
        self._redraw()

    def _redraw(self) -> None:
        s, layer = self.session, self.layer
        m = self._results.get(layer) if s is not None and s is self._owner and layer is not None else None
        strip = self.strip
        n = len(strip.order)
        if m is None or len(m.result["neurons"]) != n or len(strip.scores) != n:
            self._key = None
            self.rows = np.zeros(0, dtype=int)
            self.delta = self.criterion_rank = self.measured_rank = np.zeros(0)
            self.stale = None
            self._set_shown(False)
            return
        stale = self.stale_reason(layer)
        key = (id(m), stale, self.method, strip.order.tobytes(), strip.shown_scores().tobytes(), frozenset(strip.selected))
        if key == self._key and not self.isHidden():
            return
        self._key = key
        self.stale = stale
        res = m.result
        base = float(res["baseline"]["loss"])
        delta = np.full(n, np.nan)
        for nn in res["neurons"]:
            if not nn.get("pruned"):
                delta[int(nn["index"])] = float(nn["loss"]) - base
        ok = ~np.isnan(delta)
        crank, mrank = np.full(n, np.nan), np.full(n, np.nan)
        if ok.any():
            mrank[ok] = ranks(torch.from_numpy(delta[ok])).numpy()
            crank[ok] = ranks(torch.from_numpy(strip.shown_scores()[ok])).numpy()
        order = strip.order
        self.rows = order.copy()
        self.delta, self.criterion_rank, self.measured_rank = delta[order], crank[order], mrank[order]
        self._draw(res, int(ok.sum()))
        if self.isHidden():
            self._set_shown(True)
            for p in (self.loss_plot, self.rank_plot):  # line the rows up with the strip's again
                p.getViewBox().linkedViewChanged(strip.getViewBox(), pg.ViewBox.YAxis)

    def _set_shown(self, on: bool) -> None:
        self.setVisible(on)
        self.header.setVisible(on)

    def _draw(self, res: dict, kept: int) -> None:
        n = len(self.rows)
        ys = np.arange(n) + 0.5
        d = self.delta
        ok = ~np.isnan(d)
        height = 0.8 if n < 400 else 1.0
        grey = self.stale is not None
        up, down = ok & (d >= 0), ok & (d < 0)
        lo = min(0.0, float(np.nanmin(d))) if ok.any() else 0.0
        hi = max(float(np.nanmax(d)) if ok.any() else 0.0, 1e-9)
        pad = 0.04 * (hi - lo)
        lo, hi = lo - (pad if lo < 0 else 0.0), hi + pad
        self.up.setOpts(x0=np.zeros(int(up.sum())), y=ys[up], width=d[up], height=height, brush=pg.mkBrush(STALE if grey else MEASURED), pen=pg.mkPen(None))
        self.down.setOpts(x0=d[down], y=ys[down], width=-d[down], height=height, brush=pg.mkBrush(STALE if grey else LOWER), pen=pg.mkPen(None))
        band = QColor(128, 128, 128, 90)
        sel = np.zeros(n, dtype=bool)
        chosen = [p for p, i in enumerate(self.rows) if int(i) in self.strip.selected]
        sel[chosen] = True
        selected = QColor(255, 140, 0, 110)
        for item, rows, x0, x1, colour in ((self.bands, ~ok, lo, hi, band), (self.sel_bands, sel, lo, hi, selected),
                                           (self.rank_bands, ~ok, 0.0, kept + 1.0, band), (self.rank_sel, sel, 0.0, kept + 1.0, selected)):
            k = int(rows.sum())
            item.setOpts(x0=np.full(k, x0), y=ys[rows], width=np.full(k, x1 - x0), height=1.0, brush=pg.mkBrush(colour), pen=pg.mkPen(None))
        self.loss_plot.setXRange(lo, hi, padding=0)
        cr, mr = self.criterion_rank[ok], self.measured_rank[ok]
        xs = np.empty(2 * len(cr))
        xs[0::2], xs[1::2] = cr, mr
        self.links.setData(xs, np.repeat(ys[ok], 2), connect="pairs", pen=pg.mkPen(STALE, width=1.5 * self._scale))
        self.crit_dots.setData(x=cr, y=ys[ok], brush=pg.mkBrush(STALE if grey else CRITERION))
        self.meas_ticks.setData(x=mr, y=ys[ok], pen=pg.mkPen(STALE if grey else MEASURED, width=2 * self._scale), brush=None)
        self.rank_plot.setXRange(0.0, kept + 1.0, padding=0)
        # two or three rank ticks: automatic ones ran into each other in a narrow track
        self.rank_plot.getAxis("bottom").setTickSpacing(major=_nice_step(kept / 2.5), minor=_nice_step(kept / 2.5))
        self._size_symbols()
        self._header(res, kept)

    def _size_symbols(self) -> None:
        """Markers as tall as a row (3 to 9 px): they neither vanish nor smear into their neighbours."""
        if not len(self.rows):
            return
        vb = self.rank_plot.getViewBox()
        lo, hi = vb.viewRange()[1]
        px = vb.height() / max(hi - lo, 1e-9)
        size = float(np.clip(px * 0.9, 3.0, 9.0)) * self._scale
        self.crit_dots.setSize(size)
        self.meas_ticks.setSize(size + 2)

    def fit_header(self) -> None:
        """Keep the header's two lines within the height of the row it sits in (``row_height``,
        set where the window places the track): a taller header made the row, and so the window,
        taller than a 1280×720 screen in presentation mode."""
        h = getattr(self, "row_height", None)
        if not h:
            return
        f = QFont(self.header.font())
        while f.pointSizeF() > 6 and 2 * QFontMetrics(f).lineSpacing() > h:
            f.setPointSizeF(f.pointSizeF() - 0.5)
        self.header.setFont(f)
        self.header.setMaximumHeight(h)

    def set_scale(self, scale: float, font: QFont) -> None:
        """Presentation mode: the header, ticks and axis titles in ``font`` (the window's scaled
        font), markers ``scale`` times larger."""
        self._scale = scale
        small = QFont(font)
        small.setPointSizeF(font.pointSizeF() * 0.9)
        self.header.setFont(small)
        self.fit_header()
        for p, label in self._labels.items():
            ax = p.getAxis("bottom")
            ax.setStyle(tickFont=small)
            p.setLabel("bottom", label, **{"font-size": f"{small.pointSizeF():.1f}pt"})
        self._key = None
        self._redraw()

    def _header(self, res: dict, kept: int) -> None:
        text, tip = header_texts(res, self.method, self.stale)
        self.header.setText(text)
        self.header.setToolTip(tip)

    # ---------------------------------------------------------------- mouse
    def _row_at(self, scene_pos) -> int | None:
        for p in (self.loss_plot, self.rank_plot):
            vb = p.getViewBox()
            if vb.sceneBoundingRect().contains(scene_pos):
                pos = int(np.floor(vb.mapSceneToView(scene_pos).y()))
                return pos if 0 <= pos < len(self.rows) else None
        return None

    def row_text(self, pos: int) -> str:
        """What the tooltip says of the neuron at row position ``pos``."""
        i = int(self.rows[pos])
        if np.isnan(self.delta[pos]):
            return f"neuron {i}: already pruned when measured"
        n = int(np.count_nonzero(~np.isnan(self.delta)))
        text = (f"neuron {i}: loss {self.delta[pos]:+.4g} when removed alone\n"
                f"measured rank {self.measured_rank[pos]:g} of {n}, {self.method} rank {self.criterion_rank[pos]:g} of {n} (1 = first to prune)")
        return text + ("\nstale: " + self.stale if self.stale else "")

    def _on_move(self, scene_pos) -> None:
        pos = self._row_at(scene_pos)
        tip = self.row_text(pos) if pos is not None else ""
        for p in (self.loss_plot, self.rank_plot):
            p.getViewBox().setToolTip(literal(tip))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        pos = self._row_at(ev.scenePos())
        if pos is not None:
            self.rowsClicked.emit(int(self.rows[pos]), ev.modifiers())
