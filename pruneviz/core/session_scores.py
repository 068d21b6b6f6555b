"""The scores part of a :class:`~pruneviz.core.session.Session`: importance scores, cached per
change token.

Local methods (a layer's own weights are enough) are computed on demand, for one layer only when
one is asked for; the others (data-driven: taylor, obd, …) are computed for every layer at once on
the calibration split and kept for the session's current :attr:`~Session.version` (and for the
unpruned model, ``original=True``), until an edit moves the version or :meth:`Scores.clear`.
"""

from __future__ import annotations

import torch

from . import importance as imp
from . import units as units_


class Scores:
    """Importance scores of one session's layers, with their cache."""

    def __init__(self, session):
        self.session = session
        self.cache: dict[tuple, dict[str, torch.Tensor]] = {}  #: (method, granularity, version, seed) -> scores

    def clear(self) -> None:
        self.cache.clear()

    def get(self, layer: str | None, method: str, granularity, original: bool):
        """See :meth:`Session.scores`."""
        s = self.session
        unit = units_.get(granularity)
        if unit.scored_as == "head":
            return s.head_scores(layer, method)
        granularity = unit.scored_as
        imp.check_method(method, granularity, s.calibration is not None)
        fn = imp.SCORERS[granularity]
        opts = imp.ScoreOptions(seed=s.seed)
        if method in imp.LOCAL_METHODS:
            # one layer's own weights are enough: no model pass, no work on the other layers
            params = s.masks.orig if original else s.masks.params
            names = [s.layer(layer)] if layer is not None else s.layers
            with s.lock:
                out = {n: t.detach().cpu() for n, t in fn(method, s.model, names, params, None, opts).items()}
            return out[layer] if layer is not None else out
        version = -2 if original else s.version
        key = (method, granularity, version, s.seed)
        cached = self.cache.get(key)
        if cached is None:
            with s.lock:
                model = s.original_model() if original else s.model
                params = dict(model.named_parameters()) if original else s.masks.params
                cached = {n: v.detach() for n, v in fn(method, model, s.layers, params, s.calib.use(), opts).items()}
            self.cache = {k: v for k, v in self.cache.items() if k[2] == -2 or k[2] == s.version}
            self.cache[key] = cached
        if layer is None:
            return {n: v.cpu() for n, v in cached.items()}
        s.layer(layer)
        return cached[layer].cpu()
