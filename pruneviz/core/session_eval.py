"""The evaluation verbs of :class:`~pruneviz.core.session.Session`: data, device, precision,
evaluation with its fallbacks, and the baseline. Split from session.py by concept; they use the
session's model, masks, cache and lock."""

from __future__ import annotations

import copy
import threading
from typing import Iterator

import torch

from . import evaluate as ev
from .data import EvalData, check_fits, open_data
from .errors import PrunevizError
from .history import Change


class EvaluationVerbs:
    """Mixin for Session: everything that runs the model on the evaluation data."""

    def set_data(self, data: EvalData | str | None) -> None:
        """Attach (or replace) evaluation data; checks that it fits the model."""
        if isinstance(data, str):
            data = open_data(data)
        if data is not None:
            check_fits(self._model, data)
        self.data = data
        self._data_generation += 1
        self._eval_tensors = None
        self._baseline = None
        self.cache.clear()
        self._score_cache.clear()
        self.changed.emit(Change("set data", frozenset(self._by_name), "data"))

    def eval_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation inputs and labels on the session's device, in the seeded order."""
        if self.data is None:
            raise PrunevizError("no evaluation data: pass --data (Python: Session.open(..., data=...))")
        if self._eval_tensors is None:
            perm = ev.order(len(self.data), self.seed)
            self._eval_tensors = (self.data.x[perm].to(self.device), self.data.y[perm].to(self.device))
        return self._eval_tensors

    def evaluate_iter(self, cancel: threading.Event | None = None, incremental: bool = True) -> Iterator[ev.Progress | ev.EvalResult]:
        """Generator: a :class:`~pruneviz.core.evaluate.Progress` per batch, then the result.

        It reads the live parameters without holding :attr:`lock`: an edit made while it runs can
        mix old and new weights in that run, so callers that edit concurrently (the app) cancel the
        running evaluation on every edit and discard its result; the activation cache is protected
        by its own generation counter and never keeps tensors from such a run.

        Out of device memory, it retries with half the batch size, and below 8 samples a batch
        moves the session to the CPU; each fallback is appended to :attr:`notices`."""
        self.eval_tensors()  # fail now, not at the first next(), when there is no data
        return self._evaluate_with_fallback(cancel, incremental)

    def _evaluate_with_fallback(self, cancel, incremental):
        while True:
            x, y = self.eval_tensors()
            try:
                yield from ev.evaluate_iter(self._model, x, y, self.batch_size, self.cache if incremental else None, self.data.num_classes, cancel, amp=self.amp)
                return
            except torch.OutOfMemoryError:
                self.cache.clear()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.batch_size > 8:
                    self.batch_size //= 2
                    self.notices.append(f"out of {self.device.type} memory: retrying with batch size {self.batch_size}")
                elif self.device.type != "cpu":
                    self.notices.append(f"out of {self.device.type} memory even at batch size {self.batch_size}: evaluating on the CPU")
                    self.to_device("cpu")
                else:
                    raise PrunevizError("out of memory evaluating on the CPU: use a smaller --batch-size or less data") from None

    def set_precision(self, amp: bool = False, channels_last: bool = False) -> None:
        """Mixed precision (autocast) and channels-last layout for evaluation; both off by default.

        Results made with ``amp`` say so in :attr:`EvalResult.precision`; the exact figure is fp32."""
        with self.lock:
            self.amp = bool(amp)
            if bool(channels_last) != self.channels_last:
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                for p in self.masks.params.values():
                    if p.dim() == 4:
                        p.data = p.data.contiguous(memory_format=fmt)
                self.channels_last = bool(channels_last)
            self.cache.clear()  # cached activations were made at the old precision

    def to_device(self, device: str | torch.device) -> None:
        """Move the model, its masks and caches to ``device`` (e.g. after running out of GPU memory)."""
        device = torch.device(device)
        with self.lock:
            self._model.to(device)
            self.masks.to(device)
            self.device = device
            self._eval_tensors = None
            self._score_cache.clear()
            self.cache.clear()

    def evaluate(self, incremental: bool = True) -> ev.EvalResult:
        """Accuracy, mean cross-entropy, per-class accuracy of the current model on the data."""
        return ev.run(self.evaluate_iter(incremental=incremental))

    def baseline(self) -> ev.EvalResult:
        """Evaluation of the unpruned model (computed once)."""
        if self._baseline is None:
            ev.run(self.baseline_iter())
        return self._baseline

    def baseline_iter(self, cancel: threading.Event | None = None) -> Iterator[ev.Progress | ev.EvalResult]:
        """:meth:`baseline` as a cancellable generator; the result is kept once it completes."""
        x, y = self.eval_tensors()
        if self._baseline is not None:
            return iter([self._baseline])
        return self._baseline_gen(x, y, cancel)

    def _baseline_gen(self, x, y, cancel):
        generation = self._data_generation
        for item in ev.evaluate_iter(self.original_model(), x, y, self.batch_size, None, self.data.num_classes, cancel):
            if isinstance(item, ev.EvalResult) and generation == self._data_generation:
                self._baseline = item  # only if the data did not change while it ran
            yield item

    def original_model(self) -> torch.nn.Module:
        """A copy of the model with every original value back (nothing pruned)."""
        with self.lock:
            model = copy.deepcopy(self._model)
            params = dict(model.named_parameters())
            for p, t in self.masks.orig.items():
                params[p].data.copy_(t)
        return model

    @property
    def incremental(self) -> bool:
        """True when re-evaluation can start from cached activations (Sequential models)."""
        return ev.cacheable(self._model)
