"""What the window shows of the current layer: heatmap, neuron strip, histogram, filter panel, hover.

``show_layer`` switches layers; ``refresh_layer`` redraws after a change, and when the change's
history step touched only some neuron rows of this layer (``rows_touched``), the heatmap
re-pools just those rows (``Session.view_rows``) instead of the whole layer. The view controls
above the heatmap (Show weights/importance, by method, sort neurons) live here too.

Scores are held per layer and method (:class:`~pruneviz.core.score_view.LayerScores`, a few at
a time): an edit updates the rows it touched and moves their histogram counts, instead of
scoring and histogramming the whole layer again. Data-driven methods (taylor, obd, wanda) need
the whole model: they are computed by a :class:`~pruneviz.qt.job_runner.JobRunner` in a worker
thread (latest request wins) while the window shows what it had and says "computing…".

:class:`LayerViewer` is a controller object (``window.view``): it takes the
:class:`~pruneviz.qt.window_state.WindowState` (session, layer shown, selection), the views it
draws (``heatmap``, ``strip``, ``hist``, ``filter``, ``lower_tabs``) and the status reports
(hover read-out, messages, errors); it says ``refreshed(reset)`` after each redraw, which the
threshold row follows.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox

from pruneviz.core import display, units
from pruneviz.core.errors import PrunevizError
from pruneviz.core.importance import LOCAL_METHODS
from pruneviz.core.score_view import LayerScores

from .hints import error_text
from .accuracy_plot import ElidedLabel
from .controls import methods
from .job_runner import JobRunner
from .kernels import KernelLayout
from .plain import literal

#: (layer, method) score views kept at once: a 4096×4096 layer's costs 80 MB
MAX_SCORE_VIEWS = 4


class LayerViewer(QObject):
    """The current layer's views, their controls and its score views: a controller that the
    window assembles (``window.view``); the layer shown and the selection are the window state's."""

    #: the shown layer was redrawn (True: a new layer or session, the threshold starts over)
    refreshed = Signal(bool)

    def __init__(self, state, *, heatmap, strip, hist, filter, lower_tabs, status, parent=None):
        super().__init__(parent)
        self.state = state
        self.heatmap, self.strip, self.hist, self.filter, self.lower_tabs = heatmap, strip, hist, filter, lower_tabs
        self.status = status
        self.kernels = KernelLayout(1)
        self._filter_auto = False  # the filter tab came up by itself on a selection
        self._build_view_controls()

    def _build_view_controls(self) -> None:
        """Title, Show [weights|importance] by [method], sort neurons."""
        self.mode = QComboBox()
        self.mode.addItems(["weights", "importance"])
        self.method = QComboBox()
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        # never narrower than its longest entry: a squeezed layout showed "magnitu"
        self.method.setMinimumContentsLength(len("activation") + 2)
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sort = QCheckBox("sort neurons")
        self.title = ElidedLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.2)
        f.setBold(True)
        self.title.setFont(f)
        self.mode.currentTextChanged.connect(lambda _: self.refresh_layer(reset_view=False))
        self.method.currentTextChanged.connect(lambda _: self.refresh_layer(reset_view=False))
        self.sort.toggled.connect(lambda on: self.strip.set_sorted(on, self.heatmap.vb))
        self.heatmap.hovered.connect(self._hover)
        self._score_views: dict[tuple[str, str], LayerScores] = {}
        self._version_before = -1  # the mask version the score views were last brought to
        self._score_wanted: tuple | None = None  # (session, layer, method) the worker should score
        self.score_jobs = JobRunner(self)
        self.score_jobs.finished.connect(self._scores_arrived)
        self.score_jobs.failed.connect(lambda name, msg: self.status.bar.showMessage(f"{name} failed: {msg}", 10_000))

    # ----------------------------------------------------------------- scores
    def scores_view(self) -> LayerScores | None:
        """Scores of the shown layer by the chosen method: up to date, or (data-driven methods
        after an edit) the last ones while the worker computes new ones; None before the first."""
        s, name, method = self.state.session, self.state.layer, self.current_method()
        key = (name, method)
        v = self._score_views.get(key)
        if v is not None and v.version == s.version:
            return v
        if method in LOCAL_METHODS:
            v = LayerScores.compute(s, name, method)  # |w| of one layer: quick enough here
            self._keep_view(key, v)
            return v
        self._request_scores(name, method)
        return v

    def hist_edges(self) -> np.ndarray:
        """Bin edges of the histogram shown (the score view's)."""
        v = self._score_views.get((self.state.layer, self.current_method()))
        return v.edges if v is not None else np.linspace(0, 1, 2)

    def scores_ready(self) -> bool:
        """True when the shown layer's scores by the chosen method are up to date (not computing)."""
        v = self._score_views.get((self.state.layer, self.current_method()))
        return v is not None and v.version == self.state.session.version

    def reset_scores(self) -> None:
        """A new session: no view of the old one is kept."""
        self._score_views.clear()
        self._score_wanted = None
        self.score_jobs.cancel()
        self._version_before = self.state.session.version

    def _keep_view(self, key, v: LayerScores) -> None:
        self._score_views.pop(key, None)
        self._score_views[key] = v  # the newest last
        while len(self._score_views) > MAX_SCORE_VIEWS:
            self._score_views.pop(next(iter(self._score_views)))

    def scores_follow(self, change, rows) -> None:
        """Keep the score views in step with a change: local methods' views of untouched layers
        stay valid, the shown layer's are updated from ``rows`` (when known), others are dropped;
        data-driven views become stale (every edit changes them) and are recomputed on demand."""
        s = self.state.session
        for key, v in list(self._score_views.items()):
            layer, _ = key
            if change.kind == "data" and not v.local:
                del self._score_views[key]
            elif not v.local:
                continue  # stale: shown until the worker brings new ones
            elif v.version != self._version_before:
                del self._score_views[key]  # missed a change: cannot catch up by rows
            elif layer not in change.layers:
                v.version = s.version
            elif layer == self.state.layer and rows is not None:
                v.update_rows(s, rows)
            else:
                del self._score_views[key]
        self._version_before = s.version

    def _request_scores(self, name: str, method: str) -> None:
        s = self.state.session
        want = (s, name, method)
        if self._score_wanted == want and self.score_jobs.busy:
            return  # computing (and again, by the runner's staleness rule, if the model changes)
        self._score_wanted = want

        def job(cancel):
            yield "scoring"
            return s, LayerScores.compute(s, name, method)

        # latest wins; keyed by Session.version: a result for an older version is dropped and
        # the job runs again on the model as it is now
        self.score_jobs.start(f"{method} scores of layer {name}", job, replace=True, session=s, requeue=True)

    def _scores_arrived(self, _name, value) -> None:
        s, v = value
        if s is not self.state.session:
            return
        self._score_wanted = None
        self._keep_view((v.layer, v.method), v)
        if (v.layer, v.method) == (self.state.layer, self.current_method()):
            self.refresh_layer(reset_view=False)

    def show_layer(self, name: str) -> None:
        """Show layer ``name`` in the heatmap, strip and histogram."""
        if name == self.state.layer:
            return
        self.state.set_layer(name)
        self.show_histogram(only_if_auto=True)
        info = self.state.session.layer(name)
        self.kernels = KernelLayout.of(info.shape)
        self.heatmap.set_kernels(self.kernels)
        self.lower_tabs.setTabText(1, "Filter kernels" if self.kernels.is_conv else "Neuron inputs")
        self.title.setText(f"Layer {name} — {info.kind} {'×'.join(map(str, info.shape))}")
        self.title.setToolTip(literal(f"{self.title.text()}: {info.view_shape[0]} neurons × {info.view_shape[1]} inputs"))
        self.refresh_layer(reset_view=True)

    def fill_methods(self, has_data: bool) -> None:
        """The scoring methods the session allows (data-driven ones only with data); keeps the choice."""
        cur = self.method.currentText()
        self.method.blockSignals(True)
        self.method.clear()
        self.method.addItems(methods("weight", has_data))
        if cur and self.method.findText(cur) >= 0:
            self.method.setCurrentText(cur)
        self.method.blockSignals(False)

    def current_method(self) -> str:
        """The scoring method chosen (magnitude when none is)."""
        return self.method.currentText() or "magnitude"

    def refresh_layer(self, reset_view: bool = False, rows=None) -> None:
        """Redraw the shown layer; with ``rows`` (neuron rows an edit touched) the heatmap re-pools
        only those rows in weights mode, instead of copying and pooling the whole layer."""
        s, name = self.state.session, self.state.layer
        if s is None or name is None:
            return
        method = self.current_method()
        weights_mode = self.mode.currentText() == "weights"
        try:
            view = self.scores_view()
            self.heatmap.pool_pruned = units.pooling(s, name)  # the layer's unit draws its overlay
            if rows is not None and self.heatmap.pool_pruned is None and weights_mode and self.heatmap.can_update_rows and self.heatmap.shape == s.layer(name).view_shape:
                self.heatmap.update_rows(rows, lambda a, b: s.view_rows(name, a, b))
                self._w2d, self._pruned2d = self.heatmap.values, self.heatmap.pruned_src
            else:
                self._w2d = display.as_2d(s.weight(name).numpy())
                self._pruned2d = display.as_2d(~s.mask(name).numpy())
                rows = None
        except PrunevizError as exc:
            self.status.show_error(error_text(exc))
            return
        fresh = view is not None and view.version == s.version
        self._scores2d = view.values if view is not None else None
        if rows is None:
            values = self._w2d if weights_mode or view is None else view.values
            # zoomed in, the heatmap reads the weight rows in view from the session (scores it holds)
            fetch = (lambda a, b: s.view_rows(name, a, b)) if weights_mode else None
            self.heatmap.set_layer(values, self._pruned2d, self.mode.currentText() if view is not None else "weights", reset_view=reset_view, fetch=fetch)
        self.heatmap.set_selection(sorted(self.state.selected))
        label = "|w|" if method == "magnitude" else f"{method} score"
        if view is None:
            self.hist.set_counts(np.linspace(0, 1, 2), np.zeros(1), 0, f"computing {method} scores…")
        else:
            self.hist.set_counts(view.edges, view.counts, view.pruned_count, label if fresh else f"{label} (updating…)")
        self.refreshed.emit(reset_view)

    def rows_touched(self, change):
        """Neuron rows of the shown layer that the step behind ``change`` touched, or None when
        it may have touched more (other layers' neurons change this layer's inputs, i.e. columns)."""
        s, name = self.state.session, self.state.layer
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
                coupling = s.coupling_built[name] if s.coupling_built else None
                weight = s.layer(name).weight
                if coupling is not None and (coupling.coupled or any(e.param == weight and e.dim != 0 for e in coupling.effects)):
                    return None
                rows.append(idx)
        return np.unique(np.concatenate(rows)) if rows else None

    def neuron_scores(self, original: bool = False):
        """Neuron scores of the shown layer (from the score view; None when not available)."""
        v = self._score_views.get((self.state.layer, self.current_method()))
        if v is None:
            return None
        return v.neurons_original if original else v.neurons

    def refresh_strip(self, preview=None) -> None:
        s, name = self.state.session, self.state.layer
        kept = s.neuron_mask(name).numpy()
        ns = self.neuron_scores()
        if ns is None:
            ns = np.abs(self._w2d).sum(1)
            orig = None
        else:
            orig = self.neuron_scores(original=True) if not kept.all() else ns
        self.strip.set_neurons(ns, kept, self.state.selected, original=orig, preview=preview)
        if not self.strip.sorted:
            # the strip's limits changed with the layer after the linked heatmap set its range:
            # line the rows up again
            self.strip.getViewBox().linkedViewChanged(self.heatmap.vb, self.strip.getViewBox().YAxis)
        self.heatmap.set_selection(sorted(self.state.selected))
        self._refresh_filter()

    def _refresh_filter(self) -> None:
        """The filter tab follows the selection and every change: one neuron -> its kernels."""
        row = next(iter(self.state.selected)) if len(self.state.selected) == 1 else None
        if row is not None and not 0 <= row < self._w2d.shape[0]:
            row = None  # a stale or out-of-range selection: the engine refuses it on use
        levels = self.heatmap.weight_levels if self.heatmap.mode == "weights" else display.symmetric_levels(self._w2d)
        values = (self._w2d[row], self._pruned2d[row]) if row is not None else None  # current rows, no second fetch
        s = self.state.session
        first = self.state.layer == s.layers[0].name  # reads the model's input: image-like views apply
        ex = s.example_input() if first else None
        self.filter.show_neuron(s, self.state.layer, row, levels, values, input_image=first and (ex is None or ex.dim() in (2, 4)))

    def score_view(self, layer: str, method: str) -> LayerScores | None:
        """The kept score view of ``layer`` by ``method`` (possibly stale), None when there is none."""
        return self._score_views.get((layer, method))

    def follow_selection(self, rows) -> None:
        """One selected neuron brings up its filter tab; more or none go back to the histogram
        when the tab came up by itself."""
        if len(rows) == 1 and self.lower_tabs.currentWidget() is not self.filter:
            self.lower_tabs.setCurrentWidget(self.filter)
            self._filter_auto = True
        elif len(rows) != 1:
            self.show_histogram(only_if_auto=True)

    def show_histogram(self, only_if_auto: bool = False) -> None:
        """The histogram tab in front (with ``only_if_auto``: only when the filter tab came up by itself)."""
        if self._filter_auto or not only_if_auto:
            self.lower_tabs.setCurrentWidget(self.hist)
        self._filter_auto = False

    def _hover(self, r: int, c: int) -> None:
        if r < 0 or self._scores2d is None:
            self.status.hover.setText(" ")
            return
        w = float(self._w2d[r, c])
        imp = float(self._scores2d[r, c])
        state = "pruned" if self._pruned2d[r, c] else "kept"
        self.status.hover.setText(f"{self.kernels.describe(r, c)}, w = {w + 0.0:+.4g} · {self.method.currentText()} {imp:.4g} · {state}")
