"""Presentation mode: a window a class can read from the back of the room.

View > Presentation mode (F11) scales the window's fonts, the plots' tick labels and axis titles,
line widths, the accuracy read-out and the selection highlight by :data:`PRESENTATION_SCALE`;
View > Larger / Smaller (Ctrl + / Ctrl −) step the scale, Ctrl 0 goes back to normal. Nothing
is saved: the next start is normal size unless ``pruneviz gui --presentation``.

:class:`Presentation` is a small controller: it takes the window and touches only the views it
names, through their public items.

Example::

    window.presentation.set_enabled(True)   # or press F11
    window.presentation.scale               # 1.5
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QDockWidget

from .heatmap_view import overlay_lut

PRESENTATION_SCALE = 1.5
STEP = 0.1
LIMITS = (0.8, 2.5)
SELECTION_RGB = (0, 200, 255)


class Presentation(QObject):
    """Scales what the window shows; ``changed(scale)`` after every change."""

    changed = Signal(float)

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.scale = 1.0
        self._base = QFont(window.font())
        self._fixed: dict[int, tuple[object, QFont]] = {}  # widgets with a font of their own
        self._more_plots: list = []

    @property
    def enabled(self) -> bool:
        return self.scale != 1.0

    def add_actions(self, actions) -> None:
        """View menu entries in the action registry: Presentation mode (F11), Larger, Smaller, Normal size."""
        self.act_toggle = actions.add("presentation", "&Presentation mode", lambda: self.set_enabled(not self.enabled), menu="view",
                                      shortcut="F11", checkable=True, tip="Larger fonts, lines and read-outs for a projector")
        actions.add("larger", "&Larger", lambda: self.zoom(+1), menu="view", shortcut=["Ctrl++", "Ctrl+="])
        actions.add("smaller", "&Smaller", lambda: self.zoom(-1), menu="view", shortcut="Ctrl+-")
        actions.add("normal_size", "&Normal size", lambda: self.set_scale(1.0), menu="view", shortcut="Ctrl+0")

    def set_enabled(self, on: bool) -> None:
        """Presentation mode on (:data:`PRESENTATION_SCALE`) or off (normal size)."""
        self.set_scale(PRESENTATION_SCALE if on else 1.0)

    def zoom(self, steps: int) -> None:
        """One step larger (+1) or smaller (−1)."""
        self.set_scale(self.scale + steps * STEP)

    def set_scale(self, scale: float) -> None:
        scale = round(min(max(scale, LIMITS[0]), LIMITS[1]), 2)
        self.scale = scale
        self._apply()
        if hasattr(self, "act_toggle"):
            self.act_toggle.setChecked(self.enabled)
        self.changed.emit(scale)

    # ------------------------------------------------------------------ apply
    def font(self, factor: float = 1.0) -> QFont:
        """The window's base font at the current scale (times ``factor``)."""
        f = QFont(self._base)
        size = self._base.pointSizeF() if self._base.pointSizeF() > 0 else QApplication.font().pointSizeF()
        f.setPointSizeF(size * self.scale * factor)
        return f

    def _scaled(self, widget) -> None:
        """A widget that set its own font (bold title, read-out cells): scaled from that font."""
        key = id(widget)
        if key not in self._fixed:
            self._fixed[key] = (widget, QFont(widget.font()))
        _, base = self._fixed[key]
        f = QFont(base)
        f.setPointSizeF(base.pointSizeF() * self.scale)
        widget.setFont(f)

    def _plots(self):
        w = self.w
        plots = [w.heatmap.plot, w.hist.getPlotItem(), w.strip.getPlotItem(), w.acc.curve_plot.getPlotItem(), w.acc.class_plot.getPlotItem(), w.filter.bar_plot.getPlotItem()]
        return plots + [p.getPlotItem() for p in self._more_plots]

    def add_plots(self, *plots) -> None:
        """More plot widgets whose axes scale too (Decide's: they are read from the back row too)."""
        self._more_plots.extend(plots)

    def _apply(self) -> None:
        w, s = self.w, self.scale
        w.setFont(self.font())
        # a floated dock is a window of its own, and Qt does not pass fonts on to windows: each
        # dock gets the scaled font itself, so a floated Decide or Accuracy keeps the large text
        for dock in w.findChildren(QDockWidget):
            dock.setFont(self.font())
        for widget in [w.view.title, *w.acc.cells.values()]:
            self._scaled(widget)
        w.acc.estimate.setFixedHeight(w.acc.estimate.fontMetrics().height() + 4)
        tick = self.font(0.9)
        size = f"{tick.pointSizeF():.1f}pt"
        axes = [plot.getAxis(name) for plot in self._plots() for name in ("left", "bottom") if plot.getAxis(name).isVisible()]
        axes.append(w.heatmap.bar.axis)
        for ax in axes:
            ax.setStyle(tickFont=tick)
            ax.labelStyle = {**ax.labelStyle, "font-size": size}
            ax._updateLabel()
            ax.picture = None
            ax.update()
        # lines: the accuracy curve, the threshold, the histogram's outline
        acc = w.acc
        acc.curve.setPen(pg.mkPen(acc.accent, width=2 * s))
        acc.curve.setSymbolSize(6 * s)
        acc.here.setSize(13 * s)
        acc.here.setPen(pg.mkPen((255, 140, 0), width=2 * s))
        w.hist.line.setPen(pg.mkPen((255, 140, 0), width=2 * s))
        w.hist.kept.setPen(pg.mkPen(w.hist.kept.opts["pen"].color(), width=max(1.0, s)))
        # the layer list keeps what a class needs at the larger size: name, shape, sparsity, share
        from .layer_tree import COLUMNS

        for col in ("Kind", "Params"):
            w.tree.tree.setColumnHidden(COLUMNS.index(col), self.enabled)
        # the selection: a stronger highlight
        alpha = int(min(200, 80 * s * s))
        w.heatmap.selection.setLookupTable(overlay_lut((*SELECTION_RGB, alpha)))
        w.heatmap.selection.update()

    @property
    def selection_alpha(self) -> int:
        """Opacity of the heatmap's selection highlight now (0-255)."""
        return int(self.w.heatmap.selection.lut[1][3])
