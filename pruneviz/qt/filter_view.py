"""The per-neuron panel: one conv filter as a grid of kh×kw kernel tiles, or a Linear neuron's
incoming weights as bars.

For a conv filter every input channel's kernel is one tile, drawn with the heatmap's diverging
colour map and symmetric levels, pruned weights darkened as the heatmap's overlay darkens them.
The tiles are one RGBA image with transparent gaps (one item however many channels), scaled so
one weight is one unit: a click maps straight to (channel, kernel position). Clicking a tile
prunes that kernel's weights, or restores them when all are pruned, through
``Session.prune_weights`` / ``Session.restore_weights`` (one undo step each); the panel redraws
from the session when the window tells it to (after every change, undo included).

A Linear neuron has no kernels: the panel shows its incoming weights as bars (pruned ones as
grey marks at 0), or as one line when there are more than :data:`MAX_BARS` of them (thousands of
bars cost a paint each). When the neuron reads the model's input and that input is a square
image flattened (64 inputs of the 8×8 digits), its weights are drawn as that image instead, and
a click on a pixel prunes (or restores) that one weight.

With no filter selected in a 2-D conv layer that reads the model's input (few input channels),
the panel shows every filter at once as a tile grid (one tile per filter and input channel); a
click on a tile selects that filter (``neuronPicked``).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from pruneviz.core.errors import PrunevizError

from .filter_tiles import GAP_PX, MAX_SIDE_PX, PX_PER_WEIGHT, image_side, tile_grid, tiles_rgba
from .kernels import KernelLayout
from .plain import esc

MAX_BARS = 512  #: more incoming weights than this are drawn as one line, not as bars
MAX_OVERVIEW_TILES = 256  #: all filters at once only up to this many kernels


class FilterPanel(QWidget):
    """Kernels of one selected conv filter (or incoming weights of one Linear neuron).

    Call :meth:`show_neuron` with the session, the layer and the selected row (None: nothing to
    show); the panel edits only through Session verbs and reports refusals on ``failed`` and
    notes on ``message``.
    """

    failed = Signal(str)
    message = Signal(str)
    neuronPicked = Signal(int)  #: a filter's tile was clicked in the all-filters overview

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = None
        self.layer: str | None = None
        self.row: int | None = None
        self.kernels = KernelLayout(1)
        self.tiles = np.zeros((0, 0, 0), dtype=np.float32)  #: (C, kh, kw) effective weights shown
        self.tile_pruned = np.zeros((0, 0, 0), dtype=bool)  #: (C, kh, kw) True = pruned
        self.levels = (-1.0, 1.0)
        self.cmap = pg.colormap.get("CET-D1A")
        self._pitch = (1.0, 1.0)  # view units from one tile to the next (rows, columns)
        self.mode = "empty"  #: "tiles" (one filter), "overview" (all filters), "image", "bars", "line", "empty"
        self.input_image = False  #: the layer reads the model's input as a flattened square image

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.readout = QLabel(" ")
        self.readout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.tile_view = pg.GraphicsLayoutWidget()
        self.tile_view.ci.layout.setContentsMargins(2, 2, 2, 2)
        self.vb = self.tile_view.addViewBox()
        self.vb.invertY(True)
        self.vb.setAspectLocked(True)
        self.vb.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.tile_view.scene().sigMouseClicked.connect(self._on_click)
        self.tile_view.scene().sigMouseMoved.connect(self._on_move)

        self.bar_plot = pg.PlotWidget()
        self.bar_plot.setLabel("bottom", "input")
        self.bar_plot.setLabel("left", "weight")
        self.bar_plot.setMouseEnabled(x=True, y=False)
        for ax in ("left", "bottom"):
            self.bar_plot.getAxis(ax).enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.85, pen=None)
        self.bar_plot.addItem(self.bars)
        self.line = pg.PlotDataItem(pen=pg.mkPen((60, 110, 200), width=1))
        self.line_pruned = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((110, 110, 110), width=1))
        self.bar_plot.addItem(self.line)
        self.bar_plot.addItem(self.line_pruned)
        self.bar_plot.addItem(pg.InfiniteLine(0.0, angle=0, pen=pg.mkPen((128, 128, 128))))

        self.stack = QStackedWidget()
        self.stack.addWidget(self.tile_view)
        self.stack.addWidget(self.bar_plot)
        # text beside the tiles, not above them: the lower pane is short, the tiles need its height
        side = QVBoxLayout()
        side.addWidget(self.info)
        side.addWidget(self.readout)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(340)
        side.setContentsMargins(0, 0, 0, 0)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(self.stack, 3)
        lay.addWidget(side_w, 2)
        self.show_neuron(None, None, None)

    # ------------------------------------------------------------------ data
    @property
    def tile_count(self) -> int:
        """Kernel tiles of the one selected filter (0 in any other mode)."""
        return int(self.tiles.shape[0]) if self.mode == "tiles" else 0

    def show_neuron(self, session, layer: str | None, row: int | None, levels: tuple[float, float] | None = None, values=None, input_image: bool = False) -> None:
        """Show neuron ``row`` of ``layer`` (None clears); ``levels`` = the heatmap's weight levels;
        ``values`` = (weights, pruned) of that row of the 2-D view when the caller holds them
        already (the window does), else they are read with ``Session.view_rows``.
        ``input_image``: the layer reads the model's input (its first layer): square inputs are
        drawn as an image, and a conv layer's filters all at once when none is selected."""
        self.session, self.layer, self.row = session, layer, row
        self.input_image = input_image
        if levels is not None:
            self.levels = levels
        if session is None or layer is None:
            self._clear("Select a layer.")
            return
        info = session.layer(layer)
        self.kernels = KernelLayout.of(info.shape)
        k = self.kernels
        if row is None and input_image and k.is_conv and len(k.kernel) == 2 and info.shape[0] * k.channels <= MAX_OVERVIEW_TILES:
            self._show_overview(session, layer)
            return
        if row is None:
            what = f"its {k.channels} kernels of {'×'.join(map(str, k.kernel))}" if k.is_conv else "its incoming weights"
            self._clear(f"Select exactly one {'filter' if k.is_conv else 'neuron'} (click a heatmap row) to see {what}.")
            return
        if values is None:
            w, p = session.view_rows(layer, row, row + 1)
            values = (w[0], p[0])
        w, p = np.array(values[0], dtype=np.float32), np.array(values[1], dtype=bool)  # copies: the caller's rows change in place
        if k.is_conv and len(k.kernel) == 2:
            self._show_tiles(w, p, session.neuron_mask(layer)[row].item())
        elif input_image and not k.is_conv and image_side(len(w)):
            self._show_image(layer, w, p)
        elif len(w) > MAX_BARS:
            self._show_line(layer, w, p)
        else:
            self._show_bars(layer, w, p)

    def refresh(self, levels: tuple[float, float] | None = None) -> None:
        """Redraw from the session (after an edit, undo or redo)."""
        self.show_neuron(self.session, self.layer, self.row, levels)

    def _clear(self, text: str) -> None:
        self.tiles = np.zeros((0, 0, 0), dtype=np.float32)
        self.tile_pruned = np.zeros((0, 0, 0), dtype=bool)
        self.mode = "empty"
        self.image.clear()
        self.bars.setOpts(x=[], y0=[], height=[], brushes=[])
        self.line.setData([], [])
        self.line_pruned.setData([], [])
        self.stack.setCurrentWidget(self.tile_view)
        self.info.setText(f"<span style='color:gray'>{text}</span>")
        self.readout.setText(" ")

    def _draw_tiles(self, tiles: np.ndarray, pruned: np.ndarray, mode: str) -> None:
        """Draw ``tiles`` (n, kh, kw) as a near-square grid and remember them for clicks."""
        self.mode = mode
        self.tiles, self.tile_pruned = np.ascontiguousarray(tiles), np.ascontiguousarray(pruned)
        n, kh, kw = tiles.shape
        gr, gc = tile_grid(n)
        px = max(1, min(PX_PER_WEIGHT, MAX_SIDE_PX // max(1, gc * kw, gr * kh)))
        gap = GAP_PX if px >= 4 and n > 1 else 0
        img = tiles_rgba(self.tiles, self.tile_pruned, self.levels, self.cmap, px, gap)
        self.image.setImage(img, autoLevels=False)
        self.image.setRect(QRectF(0, 0, img.shape[1] / px, img.shape[0] / px))
        self._pitch = (kh + gap / px, kw + gap / px)
        self.vb.autoRange(padding=0.02)
        self.stack.setCurrentWidget(self.tile_view)

    def _show_overview(self, session, layer: str) -> None:
        """Every filter of a first conv layer at once: one tile per (filter, input channel)."""
        info = session.layer(layer)
        k = self.kernels
        kh, kw = k.kernel
        w, p = session.view_rows(layer, 0, info.shape[0])
        self._draw_tiles(w.reshape(-1, kh, kw), p.reshape(-1, kh, kw), "overview")
        per = f", {k.channels} tiles (input channels) per filter, side by side" if k.channels > 1 else ""
        self.info.setText(
            f"All <b>{info.shape[0]}</b> filters of layer <b>{esc(layer)}</b> ({kh}×{kw}{per}). "
            "<span style='color:gray'>Click a filter to select it.</span>"
        )

    def _show_image(self, layer: str, w: np.ndarray, p: np.ndarray) -> None:
        """A first-layer neuron over a flattened square image: its weights as that image."""
        side = image_side(len(w))
        self._draw_tiles(w.reshape(1, side, side), p.reshape(1, side, side), "image")
        self.info.setText(
            f"Neuron <b>{self.row}</b> of layer <b>{esc(layer)}</b>: its {len(w)} incoming weights as the {side}×{side} input image "
            f"({int(p.sum())} pruned, dark). <span style='color:gray'>Click a pixel to prune its weight, again to restore it.</span>"
        )

    def _show_line(self, layer: str, w: np.ndarray, p: np.ndarray) -> None:
        """Many incoming weights: one line (a paint of thousands of bars would cost the window
        a tenth of a second), pruned inputs as grey marks at 0."""
        self.mode = "line"
        self.bars.setOpts(x=[], y0=[], height=[], brushes=[])
        w = np.nan_to_num(w.astype(np.float32))
        x = np.arange(len(w), dtype=np.float32)
        self.line.setData(x, np.where(p, 0.0, w))
        lo, hi = self.levels
        tick = 0.08 * max(abs(lo), abs(hi))
        xs = np.repeat(x[p], 2)
        ys = np.tile(np.array([-tick, tick], dtype=np.float32), int(p.sum()))
        self.line_pruned.setData(xs, ys, connect="pairs")
        self.bar_plot.setXRange(-0.5, len(w) - 0.5, padding=0.01)
        m = float(np.abs(w).max()) if w.size else 0.0
        self.bar_plot.setYRange(-(m or hi), m or hi, padding=0.08)
        self.stack.setCurrentWidget(self.bar_plot)
        self.info.setText(f"Neuron <b>{self.row}</b> of layer <b>{esc(layer)}</b>: its {len(w):,} incoming weights ({int(p.sum()):,} pruned, grey marks at 0).")

    def _show_tiles(self, w: np.ndarray, p: np.ndarray, neuron_kept: bool) -> None:
        k = self.kernels
        kh, kw = k.kernel
        self._draw_tiles(w.reshape(k.channels, kh, kw), p.reshape(k.channels, kh, kw).copy(), "tiles")
        gone = int(self.tile_pruned.all(axis=(1, 2)).sum())
        state = "" if neuron_kept else " <b>(whole filter pruned)</b>"
        self.info.setText(
            f"Filter <b>{self.row}</b> of layer <b>{esc(self.layer)}</b>{state}: {k.channels} input-channel kernels of {kh}×{kw}"
            f"{f', {gone} fully pruned' if gone else ''}. <span style='color:gray'>Click a kernel to prune it, again to restore it.</span>"
        )

    def _show_bars(self, layer: str, w: np.ndarray, p: np.ndarray) -> None:
        self.mode = "bars"
        self.line.setData([], [])
        self.line_pruned.setData([], [])
        lo, hi = self.levels
        w = np.nan_to_num(w.astype(np.float64))
        t = np.clip((w - lo) / max(hi - lo, 1e-12), 0, 1)
        colours = self.cmap.map(t, mode="qcolor")
        grey = pg.mkBrush(110, 110, 110, 200)
        brushes = [grey if pi else pg.mkBrush(c) for c, pi in zip(colours, p)]
        # a pruned input is 0 now: a short grey mark across 0 says where (its old value is gone
        # from this row's effective weights, and reading the originals would copy the whole layer)
        tick = 0.08 * max(abs(lo), abs(hi))
        self.bars.setOpts(x=np.arange(len(w)), y0=np.where(p, -tick, 0.0), height=np.where(p, 2 * tick, w), brushes=brushes)
        shown = w
        self.bar_plot.setXRange(-0.5, len(shown) - 0.5, padding=0.01)
        m = float(np.abs(w).max()) if w.size else 0.0  # colours on the layer's levels, height on this row's
        self.bar_plot.setYRange(-(m or hi), m or hi, padding=0.08)
        self.stack.setCurrentWidget(self.bar_plot)
        kind = self.kernels
        what = "layer" if not kind.is_conv else f"{'×'.join(map(str, kind.kernel))} conv layer"
        self.info.setText(
            f"Neuron <b>{self.row}</b> of {what} <b>{esc(layer)}</b>: its {len(shown):,} incoming weights "
            f"({int(p.sum()):,} pruned, grey marks at 0). <span style='color:gray'>Kernel tiles are for 2-D conv layers.</span>"
        )

    # ----------------------------------------------------------------- mouse
    def tile_at(self, x: float, y: float) -> tuple[int, tuple[int, int]] | None:
        """View coordinates -> (input channel, (kernel row, kernel column)), None in a gap."""
        if self.mode not in ("tiles", "overview", "image"):
            return None
        n, kh, kw = self.tiles.shape
        ph, pw = self._pitch
        gr, gc = tile_grid(n)
        i, j = math.floor(y / ph), math.floor(x / pw)
        u, v = y - i * ph, x - j * pw
        if not (0 <= i < gr and 0 <= j < gc) or u >= kh or v >= kw:
            return None
        ch = i * gc + j
        return (ch, (int(u), int(v))) if ch < n else None

    def tile_center(self, channel: int) -> tuple[float, float]:
        """View coordinates (x, y) of the middle of ``channel``'s tile (for tests and tooltips)."""
        n, kh, kw = self.tiles.shape
        i, j = divmod(channel, tile_grid(n)[1])
        return j * self._pitch[1] + kw / 2, i * self._pitch[0] + kh / 2

    def _hit(self, scene_pos):
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        return self.tile_at(p.x(), p.y())

    def _on_move(self, pos) -> None:
        hit = self._hit(pos)
        if hit is None:
            self.readout.setText(" ")
            return
        ch, (a, b) = hit
        w = float(self.tiles[ch, a, b])
        state = "pruned" if self.tile_pruned[ch, a, b] else "kept"
        if self.mode == "overview":
            f, c = divmod(ch, self.kernels.channels)
            where = f"filter {f}" + (f", channel {c}" if self.kernels.channels > 1 else "") + f", kernel ({a}, {b})"
        elif self.mode == "image":
            where = f"input pixel ({a}, {b}) = input {a * self.tiles.shape[2] + b}"
        else:
            where = f"channel {ch}, kernel ({a}, {b})"
        self.readout.setText(f"{where}: w = {w + 0.0:+.4g} ({state})")

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        hit = self._hit(ev.scenePos())
        if hit is None:
            return
        ev.accept()
        if self.mode == "overview":
            self.neuronPicked.emit(hit[0] // self.kernels.channels)
        elif self.mode == "image":
            a, b = hit[1]
            self.toggle_input(a * self.tiles.shape[2] + b)
        else:
            self.toggle_kernel(hit[0])

    def toggle_input(self, index: int) -> int:
        """Prune incoming weight ``index`` of the shown neuron, or restore it (one undo step)."""
        s, layer, row = self.session, self.layer, self.row
        n_in = self.tiles.size
        if s is None or row is None or self.mode != "image" or not 0 <= index < n_in:
            return 0
        flat = [row * n_in + index]
        prune = not bool(self.tile_pruned.reshape(-1)[index])
        where = f"input {index} of neuron {row} of {layer}"
        try:
            n = s.prune_weights(layer, flat, label=f"prune {where}") if prune else s.restore_weights(layer, flat, label=f"restore {where}")
        except PrunevizError as exc:
            self.failed.emit(str(exc))
            return 0
        if n == 0 and not prune:
            self.message.emit(f"the {where} is pruned with a whole neuron: restore that neuron")
        return n

    def toggle_kernel(self, channel: int) -> int:
        """Prune the kernel of input ``channel`` of the shown filter, or restore it when all its
        weights are pruned (one undo step). Returns the number of weights flipped."""
        s, layer, row, k = self.session, self.layer, self.row, self.kernels
        if s is None or row is None or not self.tile_count or not 0 <= channel < k.channels:
            return 0
        g = k.group
        start = row * k.channels * g + channel * g
        idx = np.arange(start, start + g)
        prune = not bool(self.tile_pruned[channel].all())
        where = f"kernel of input channel {channel} in filter {row} of {layer}"
        try:
            if prune:
                n = s.prune_weights(layer, idx, label=f"prune {where}")
            else:
                n = s.restore_weights(layer, idx, label=f"restore {where}")
        except PrunevizError as exc:
            self.failed.emit(str(exc))
            return 0
        if n == 0 and not prune:
            self.message.emit(f"the {where} is pruned with a whole neuron (this filter, or channel {channel} of the layer before): restore that neuron")
        return n
