"""One layer's weight scores as the app shows them, kept up to date from the rows an edit touched.

A click on a 4096×4096 layer changes one row of 4096 weights. Recomputing |w| of the whole layer
and histogramming all 16 M scores again after it costs hundreds of milliseconds; here the scores
(a 2-D float32 array, rows = neurons), the kept cells and the histogram counts of the kept scores
are held per layer and method, and :meth:`LayerScores.update_rows` recomputes only the touched
rows and moves their counts from the old bins to the new ones. The counts are always equal to a
full recount (tested).

Only the local methods (``magnitude``, ``random``: a weight's score depends on that weight alone)
can be updated by rows. The others depend on the whole model: after an edit they are stale and
are recomputed in full (in the app, on a worker thread) with :meth:`LayerScores.compute`.

Example::

    view = LayerScores.compute(session, "0", "magnitude")
    session.prune_neurons("0", [5])
    view.update_rows(session, [5])
    view.counts  # histogram of the kept weights' scores, bins ``view.edges``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import display, ranking
from .errors import PrunevizError
from .importance import LOCAL_METHODS

BINS = 60


@dataclass
class LayerScores:
    """Scores of ``layer`` by ``method``: ``values`` (2-D float32), ``kept`` (2-D bool), and the
    histogram ``counts`` of the kept values over ``edges`` (``BINS`` bins from 0 to the largest score)."""

    layer: str
    method: str
    values: np.ndarray
    kept: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    version: int  #: the session's mask version these scores describe
    neurons: np.ndarray | None = None  #: one score per neuron (None: not available)
    neurons_original: np.ndarray | None = None  #: the same on the unpruned model

    @classmethod
    def compute(cls, session, layer: str, method: str) -> "LayerScores":
        """Score the whole layer now (data-driven methods run the model: call off the GUI thread).
        With neuron pruning available, the neuron scores (now and unpruned) come along."""
        version = session.version  # an edit meanwhile makes the result stale, not wrong
        values = display.as_2d(session.scores(layer, method, "weight").float().numpy())
        kept = display.as_2d(session.mask(layer).numpy())
        # own copies: the session's score cache must never see this view's row updates
        values = np.array(display.finite_array(values), dtype=np.float32, order="C")
        kept = np.array(kept, dtype=bool, order="C")
        hi = float(values.max()) if values.size else 1.0
        edges = np.linspace(0.0, hi if hi > 0 else 1.0, BINS + 1)
        out = cls(layer, method, values, kept, edges, np.zeros(BINS, dtype=np.int64), version)
        out.recount()
        if session.neuron_pruning:
            try:
                out.neurons = session.scores(layer, method, "neuron").float().numpy().copy()
                out.neurons_original = session.scores(layer, method, "neuron", original=True).float().numpy().copy()
            except PrunevizError:
                out.neurons = out.neurons_original = None
        return out

    @property
    def local(self) -> bool:
        """True when an edit's rows are enough to bring the scores up to date."""
        return self.method in LOCAL_METHODS

    def _hist(self, values: np.ndarray) -> np.ndarray:
        return np.histogram(values, self.edges)[0]

    def recount(self) -> None:
        """Histogram counts from every kept score (what :meth:`update_rows` keeps equal to)."""
        self.counts = self._hist(self.values[self.kept]).astype(np.int64)

    @property
    def pruned_count(self) -> int:
        return int(self.kept.size - np.count_nonzero(self.kept))

    def update_rows(self, session, rows) -> None:
        """Bring ``rows`` (neuron rows an edit touched) up to date from the session: their scores
        (local methods) and kept cells, and the histogram counts. Non-local methods only get their
        kept cells refreshed here: their scores need :meth:`compute` again."""
        rows = np.unique(np.asarray(list(rows), dtype=np.int64))
        if rows.size == 0:
            return
        # contiguous runs of rows: one read each
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        grow = False
        for run in np.split(rows, breaks):
            a, b = int(run[0]), int(run[-1]) + 1
            w, pruned = session.view_rows(self.layer, a, b)
            old = self.values[a:b][self.kept[a:b]]
            self.counts -= self._hist(old)
            if self.method == "magnitude":
                self.values[a:b] = np.abs(display.finite_array(w))
                if self.neurons is not None:  # as importance.neuron_scores: the row's L2 norm
                    self.neurons[a:b] = torch.from_numpy(w).norm(p=2, dim=1).numpy()
            self.kept[a:b] = ~pruned
            new = self.values[a:b][self.kept[a:b]]
            if new.size and float(new.max()) > self.edges[-1]:
                grow = True
            self.counts += self._hist(new)
        self.version = session.version
        if grow:  # a restored score beyond the bins: new bins over everything
            hi = float(self.values.max())
            self.edges = np.linspace(0.0, hi, BINS + 1)
            self.recount()

    def below(self, threshold: float) -> np.ndarray:
        """Kept cells whose score is below ``threshold`` (what ``Session.preview_below`` gives)."""
        return ranking.below(self.values, self.kept, threshold)

    def neurons_below(self, threshold: float, kept: np.ndarray) -> np.ndarray:
        """Kept neurons (``kept``: the layer's neuron mask) whose score is below ``threshold``
        (``Session.preview_below`` by neurons); requires :attr:`neurons`."""
        return ranking.below(self.neurons, kept, threshold)
