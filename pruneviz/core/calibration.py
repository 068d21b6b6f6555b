"""The calibration split of a :class:`~pruneviz.core.session.Session`: the data that data-driven
scores, sensitivity, knockout, allocation and compensation are computed on, kept apart from the
evaluation data the accuracy is reported on.

Choosing what to prune on the same samples the accuracy is then measured on tunes the choice to
those samples, and the reported accuracy is optimistically biased (test-set leakage). So the
calibration data is, in this order: what the user gave (``--calib-data``, Python
``calib_data=``), the training data where it is known (``demo:digits-train`` for the demo
models; the command line passes ``--train-data`` when given), and only then the evaluation data,
with one notice saying that this inflates the figures.

A session *holds* one :class:`Calibration` (``session.calib``); ``Session`` keeps one-line verbs.
"""

from __future__ import annotations

import torch

from .data import EvalData, check_fits, open_data, same_source
from .errors import Notice, PrunevizError
from .history import Change

#: the demo models' calibration data (their training split)
DEMO_CALIB = "demo:digits-train"
#: samples an analysis (sensitivity, knockout, the allocation's candidates) evaluates at most,
#: drawn from the calibration data with the session's seed by their content
ANALYSIS_SAMPLES = 2048


def leak_note(spec: str) -> Notice:
    return Notice(f"calibrating on the evaluation data {spec}: scores, sensitivity and compensation are then chosen on the "
                  "samples the accuracy is measured on, which inflates the figures", hint="separate_calib")


class Calibration:
    """Which data calibrates ``session`` (see the module docstring)."""

    def __init__(self, session, data: EvalData | str | None = None):
        self.session = session
        self.given: EvalData | None = None
        self._default: EvalData | None = None
        self._default_tried = False
        self._tensors: tuple[tuple, EvalData] | None = None  # (key, the subset on the device)
        if data is not None:
            self.given = self._open(data)

    def _open(self, data: EvalData | str) -> EvalData:
        if isinstance(data, str):
            data = open_data(data)
        if not isinstance(data, EvalData):
            raise PrunevizError(f"calibration data must be a DATA spec or EvalData, got {type(data).__name__}")
        with self.session.lock:
            check_fits(self.session.model, data)
        return data

    def set(self, data: EvalData | str | None) -> None:
        """Use ``data`` (a DATA spec or EvalData; None: the default) from now on; forgets the
        scores computed on the old calibration data."""
        s = self.session
        self.given = None if data is None else self._open(data)
        self._tensors = None
        s.clear_scores()
        s.changed.emit(Change("set calibration data", frozenset(layer.name for layer in s.layers), "data"))

    def data(self) -> EvalData | None:
        """The calibration data in force (None when there is none), without any notice."""
        if self.given is not None:
            return self.given
        if self.session.spec.startswith("demo:"):
            if not self._default_tried:
                self._default_tried = True
                try:
                    self._default = self._open(DEMO_CALIB)
                except PrunevizError:  # a demo model the digits do not fit: no default
                    self._default = None
            if self._default is not None:
                return self._default
        return self.session.data

    def same_as_eval(self) -> bool:
        d, e = self.data(), self.session.data
        return d is not None and e is not None and (d is e or same_source(d.spec, e.spec))

    def use(self) -> EvalData | None:
        """:meth:`data` for a computation that calibrates on it: adds the notice (once) when it
        is the evaluation data."""
        d = self.data()
        if d is not None and self.same_as_eval():
            note = leak_note(d.spec)
            if note not in self.session.notices:
                self.session.notices.append(note)
        return d

    def info(self) -> dict | None:
        """``{"spec", "samples"}`` of the calibration data (with ``"same_as_eval": true`` and the
        note when it is the evaluation data), for reports; None when there is none."""
        d = self.data()
        if d is None:
            return None
        out = {"spec": d.spec, "samples": len(d)}
        if self.same_as_eval():
            out["same_as_eval"] = True
            out["note"] = leak_note(d.spec)
        return out

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to :data:`ANALYSIS_SAMPLES` calibration inputs and labels on the session's device,
        chosen with the session's seed (:func:`pruneviz.core.importance.calibration_set`)."""
        d = self.subset()
        return d.x, d.y

    def extra(self) -> dict[str, torch.Tensor]:
        """The per-sample keyword arrays (decoder inputs) that go with :meth:`tensors`."""
        return self.subset().extra

    def subset(self) -> EvalData:
        """:meth:`tensors` and :meth:`extra` as one :class:`EvalData` on the session's device."""
        from .importance import calibration_rows

        s = self.session
        d = self.use()
        if d is None:
            raise PrunevizError("this analysis needs calibration data", hint="calib_data")
        key = (id(d), s.seed, str(s.device))
        if self._tensors is None or self._tensors[0] != key:
            self._tensors = (key, d.rows(calibration_rows(d.x, ANALYSIS_SAMPLES, s.seed)).to(s.device))
        return self._tensors[1]
