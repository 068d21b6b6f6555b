"""What the window shows of the current layer: heatmap, neuron strip, histogram, filter panel, hover.

``show_layer`` switches layers; ``_refresh_layer`` redraws after a change, and when the change's
history step touched only some neuron rows of this layer (``_rows_touched``), the heatmap
re-pools just those rows (``Session.view_rows``) instead of the whole layer. The view controls
above the heatmap (Show weights/importance, by method, sort neurons) live here too.

:class:`LayerViewer` is a mixin of :class:`~pruneviz.qt.main_window.MainWindow`: it expects the
window's ``session``, ``layer``, ``selected``, the views (``heatmap``, ``strip``, ``hist``,
``filter``, ``lower_tabs``), ``hover``, ``sel_label``, ``show_error`` and ``_refresh_threshold``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel

from pruneviz.core import display
from pruneviz.core.errors import PrunevizError

from .kernels import KernelLayout


class LayerViewer:
    """The current layer's views and their controls."""

    def _build_view_controls(self) -> None:
        """Title, Show [weights|importance] by [method], sort neurons."""
        self.mode = QComboBox()
        self.mode.addItems(["weights", "importance"])
        self.method = QComboBox()
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sort = QCheckBox("sort neurons")
        self.title = QLabel()
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.2)
        f.setBold(True)
        self.title.setFont(f)
        self.mode.currentTextChanged.connect(lambda _: self._refresh_layer(reset_view=False))
        self.method.currentTextChanged.connect(lambda _: self._refresh_layer(reset_view=False))
        self.sort.toggled.connect(lambda on: self.strip.set_sorted(on, self.heatmap.vb))
        self.heatmap.hovered.connect(self._hover)

    def show_layer(self, name: str) -> None:
        """Show layer ``name`` in the heatmap, strip and histogram."""
        if name == self.layer:
            return
        self.layer = name
        self.selected = set()
        if self._filter_auto:
            self.lower_tabs.setCurrentWidget(self.hist)
            self._filter_auto = False
        info = self.session.layer(name)
        self.kernels = KernelLayout.of(info.shape)
        self.heatmap.set_kernels(self.kernels)
        self.lower_tabs.setTabText(1, "Filter kernels" if self.kernels.is_conv else "Neuron inputs")
        self.title.setText(f"Layer {name}  <span style='font-weight:normal'>— {info.kind} {'×'.join(map(str, info.shape))}, view {info.view_shape[0]} neurons × {info.view_shape[1]} inputs</span>")
        self._refresh_layer(reset_view=True)

    def _method(self) -> str:
        return self.method.currentText() or "magnitude"

    def _refresh_layer(self, reset_view: bool = False, rows=None) -> None:
        """Redraw the shown layer; with ``rows`` (neuron rows an edit touched) the heatmap re-pools
        only those rows in weights mode, instead of copying and pooling the whole layer."""
        s, name = self.session, self.layer
        if s is None or name is None:
            return
        method = self._method()
        weights_mode = self.mode.currentText() == "weights"
        try:
            scores = s.scores(name, method, "weight").float().numpy()
            if rows is not None and weights_mode and self.heatmap.can_update_rows and self.heatmap.shape == s.layer(name).view_shape:
                self.heatmap.update_rows(rows, lambda a, b: s.view_rows(name, a, b))
                self._w2d, self._pruned2d = self.heatmap.values, self.heatmap.pruned_src
            else:
                self._w2d = display.as_2d(s.weight(name).numpy())
                self._pruned2d = display.as_2d(~s.mask(name).numpy())
                rows = None
        except PrunevizError as exc:
            self.show_error(str(exc))
            return
        self._scores2d = display.as_2d(scores)
        if rows is None:
            values = self._w2d if weights_mode else self._scores2d
            # zoomed in, the heatmap reads the weight rows in view from the session (scores it holds)
            fetch = (lambda a, b: s.view_rows(name, a, b)) if weights_mode else None
            self.heatmap.set_layer(values, self._pruned2d, self.mode.currentText(), reset_view=reset_view, fetch=fetch)
        self.heatmap.set_selection(sorted(self.selected))
        kept = ~self._pruned2d
        self.hist.set_scores(scores, kept, "|w|" if method == "magnitude" else f"{method} score")
        self._refresh_threshold(reset=reset_view)

    def _rows_touched(self, change):
        """Neuron rows of the shown layer that the step behind ``change`` touched, or None when
        it may have touched more (other layers' neurons change this layer's inputs, i.e. columns)."""
        s, name = self.session, self.layer
        h = s.history
        if change.kind in ("edit", "redo"):
            step = h.steps[h.index - 1] if h.index > 0 else None
        elif change.kind == "undo":
            step = h.steps[h.index] if h.index < len(h.steps) else None
        else:
            return None
        if step is None or step.label != change.label or any(f.layer != name for f in step.flips):
            return None
        cols = s.layer(name).view_shape[1]
        rows = []
        for f in step.flips:
            idx = f.idx.numpy()
            if f.store == "elem":
                rows.append(idx // cols)
            else:
                coupling = s.coupling[name] if s.coupling else None
                weight = s.layer(name).weight
                if coupling is not None and (coupling.coupled or any(e.param == weight and e.dim != 0 for e in coupling.effects)):
                    return None
                rows.append(idx)
        return np.unique(np.concatenate(rows)) if rows else None

    def _neuron_scores(self, original: bool = False):
        s, name = self.session, self.layer
        try:
            return s.scores(name, self._method(), "neuron", original=original).float().numpy()
        except PrunevizError:
            return None

    def _refresh_strip(self, preview=None) -> None:
        s, name = self.session, self.layer
        kept = s.neuron_mask(name).numpy()
        ns = self._neuron_scores()
        if ns is None:
            ns = np.abs(self._w2d).sum(1)
            orig = None
        else:
            orig = self._neuron_scores(original=True) if not kept.all() else ns
        self.strip.set_neurons(ns, kept, self.selected, original=orig, preview=preview)
        if not self.strip.sorted:
            # the strip's limits changed with the layer after the linked heatmap set its range:
            # line the rows up again
            self.strip.getViewBox().linkedViewChanged(self.heatmap.vb, self.strip.getViewBox().YAxis)
        self.heatmap.set_selection(sorted(self.selected))
        self._refresh_filter()
        n = len(self.selected)
        self.sel_label.setText("no neuron selected" if not n else f"{n} neuron{'s' if n > 1 else ''} selected")

    def _refresh_filter(self) -> None:
        """The filter tab follows the selection and every change: one neuron -> its kernels."""
        row = next(iter(self.selected)) if len(self.selected) == 1 else None
        if row is not None and not 0 <= row < self._w2d.shape[0]:
            row = None  # a stale or out-of-range selection: the engine refuses it on use
        levels = self.heatmap.levels if self.heatmap.mode == "weights" else display.symmetric_levels(self._w2d)
        values = (self._w2d[row], self._pruned2d[row]) if row is not None else None  # current rows, no second fetch
        self.filter.show_neuron(self.session, self.layer, row, levels, values)

    def _hover(self, r: int, c: int) -> None:
        if r < 0:
            self.hover.setText(" ")
            return
        w = float(self._w2d[r, c])
        imp = float(self._scores2d[r, c])
        state = "pruned" if self._pruned2d[r, c] else "kept"
        self.hover.setText(f"{self.kernels.describe(r, c)}, w = {w + 0.0:+.4g} · {self.method.currentText()} {imp:.4g} · {state}")
