"""The evaluation part of a :class:`~pruneviz.core.session.Session`: data, device, batch size,
precision, evaluation with its fallbacks, and the baseline.

A session *holds* one :class:`Evaluation` (``session.evaluation``) instead of inheriting these
verbs, so the evaluation state (the data and the settings it is evaluated with, the evaluation
tensors on the device, the baseline and the data generation it belongs to) lives in, and is
written by, this one object, which can be read and tested alone. It works through the session's
public seams (``editable``, ``lock``, ``layers``, ``clear_scores``, ``changed``); ``Session`` keeps
one-line verbs (``evaluate``, ``set_data``, …) and reads ``data``, ``device``, ``batch_size``,
``amp``, ``channels_last`` from here.
"""

from __future__ import annotations

import copy
import threading
from typing import Iterator

import torch

from . import evaluate as ev
from . import losses, spill
from .data import EvalData, check_fits, open_data
from .errors import PrunevizError
from .history import Change


class Evaluation:
    """Everything that runs the model of ``session`` on its evaluation data."""

    def __init__(self, session, data: EvalData | None, device: torch.device, batch_size: int):
        self.session = session
        self.data = data  #: the evaluation data (None: none attached)
        self.device = device  #: where the model, its masks and caches live
        self.batch_size = batch_size  #: samples a batch (halved on running out of memory)
        self.amp = False  #: evaluate under autocast
        self.channels_last = False  #: 4-D parameters in channels-last layout
        self.example_hook = None
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None  #: inputs, labels on the device
        self.extra: dict[str, torch.Tensor] = {}  #: the data's extra arrays, in the same order
        #: the unpruned model's evaluation once a baseline run completed (None until then)
        self.baseline_result: ev.EvalResult | None = None
        self.generation = 0  # bumped by set_data: a baseline of older data is not kept

    def set_data(self, data: EvalData | str | None) -> None:
        """Attach (or replace) evaluation data; checks that it fits the model."""
        s = self.session
        if isinstance(data, str):
            data = open_data(data)
        if data is not None:
            check_fits(s.model, data)
        self.data = data
        self.generation += 1
        self.tensors = None
        self.baseline_result = None
        s.cache.clear()
        s.cache.graph = None  # traced again on the new data (an exported graph has its shapes)
        s.clear_scores()
        self.bind_example()
        s.changed.emit(Change("set data", frozenset(layer.name for layer in s.layers), "data"))

    def bind_example(self) -> None:
        """See :meth:`Session.bind_example`."""
        if self.example_hook is not None:
            self.example_hook.remove()
        self.example_hook = losses.fill_missing(self.session.model, self.data.extra if self.data is not None else None)

    def eval_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation inputs and labels on the session's device, in the seeded order."""
        s = self.session
        if self.data is None:
            raise PrunevizError("no evaluation data", hint="data")
        if self.tensors is None:
            ordered = self.data.rows(ev.order(len(self.data), s.seed)).to(self.device)
            self.tensors, self.extra = (ordered.x, ordered.y), ordered.extra
        return self.tensors

    def eval_extra(self) -> dict[str, torch.Tensor]:
        """The data's per-sample keyword arrays (decoder inputs), in the order of :meth:`eval_tensors`."""
        self.eval_tensors()
        return self.extra

    def evaluate_iter(self, cancel: threading.Event | None = None, incremental: bool = True) -> Iterator[ev.Progress | ev.EvalResult]:
        """Generator: a :class:`~pruneviz.core.evaluate.Progress` per batch, then the result.

        It reads the live parameters without holding the session's lock: an edit made while it
        runs can mix old and new weights in that run, so callers that edit concurrently (the app)
        cancel the running evaluation on every edit and discard its result; the activation cache
        is protected by its own generation counter and never keeps tensors from such a run.

        Out of device memory, it retries with half the batch size, and below 8 samples a batch
        moves the session to the CPU; each fallback is appended to ``session.notices``."""
        self.eval_tensors()  # fail now, not at the first next(), when there is no data
        return self._evaluate_with_fallback(cancel, incremental)

    def _evaluate_with_fallback(self, cancel, incremental):
        s = self.session
        while True:
            x, y = self.eval_tensors()
            try:
                yield from ev.evaluate_iter(s.model, x, y, self.batch_size, s.cache if incremental else None, self.data.num_classes, cancel, amp=self.amp, extra=self.extra)
                if s.cache.note and s.cache.note not in s.notices:  # why not incremental: said once
                    s.notices.append(s.cache.note)
                return
            except torch.OutOfMemoryError:
                s.cache.clear()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.batch_size > 8:
                    self.batch_size //= 2
                    s.notices.append(f"out of {self.device.type} memory: retrying with batch size {self.batch_size}")
                elif self.device.type != "cpu":
                    s.notices.append(f"out of {self.device.type} memory even at batch size {self.batch_size}: evaluating on the CPU")
                    self.to_device("cpu")
                else:
                    raise PrunevizError("out of memory evaluating on the CPU", hint="batch_size") from None

    def set_precision(self, amp: bool = False, channels_last: bool = False) -> None:
        """Mixed precision (autocast) and channels-last layout for evaluation; both off by default.

        Results made with ``amp`` say so in :attr:`EvalResult.precision`; the exact figure is fp32."""
        s = self.session
        with s.lock:
            self.amp = bool(amp)
            if bool(channels_last) != self.channels_last:
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                for p in s.masks.params.values():
                    if p.dim() == 4:
                        p.data = p.data.contiguous(memory_format=fmt)
                self.channels_last = bool(channels_last)
            s.cache.clear()  # cached activations were made at the old precision

    def to_device(self, device: str | torch.device) -> None:
        """Move the model, its masks and caches to ``device`` (e.g. after running out of GPU memory)."""
        s = self.session
        device = torch.device(device)
        with s.lock:
            s.model.to(device)
            s.masks.to(device)
            self.device = device
            self.tensors = None
            s.clear_scores()
            s.cache.clear()
            s.cache.graph = None  # an exported graph holds constants on the old device

    def evaluate(self, incremental: bool = True) -> ev.EvalResult:
        """Accuracy, mean cross-entropy, per-class accuracy of the current model on the data."""
        return ev.run(self.evaluate_iter(incremental=incremental))

    def baseline(self) -> ev.EvalResult:
        """Evaluation of the unpruned model (computed once)."""
        if self.baseline_result is None:
            ev.run(self.baseline_iter())
        return self.baseline_result

    def baseline_iter(self, cancel: threading.Event | None = None) -> Iterator[ev.Progress | ev.EvalResult]:
        """:meth:`baseline` as a cancellable generator; the result is kept once it completes."""
        x, y = self.eval_tensors()
        if self.baseline_result is not None:
            return iter([self.baseline_result])
        return self._baseline_gen(x, y, cancel)

    def _baseline_gen(self, x, y, cancel):
        generation = self.generation
        for item in ev.evaluate_iter(self.loaded_model(), x, y, self.batch_size, None, self.data.num_classes, cancel, extra=self.extra):
            if isinstance(item, ev.EvalResult) and generation == self.generation:
                self.baseline_result = item  # only if the data did not change while it ran
            yield item

    def original_model(self) -> torch.nn.Module:
        """A copy of the model with every original value back (nothing pruned)."""
        s = self.session
        with s.lock:
            model = copy.deepcopy(s.model)
            params = dict(model.named_parameters())
            for p, t in s.masks.orig.items():
                params[p].data.copy_(t)
        return model

    def loaded_model(self) -> torch.nn.Module:
        """A copy of the model as it was loaded (the root of the history): the unpruned model
        with every value back, and with the values of the steps that changed weights
        (fine-tuning, compensation) undone too; those also change the values a pruned entry
        would return to, so :meth:`original_model` alone is the fine-tuned dense model."""
        s = self.session
        with s.lock:
            if not any(n.step.weights is not None for n in s.history.nodes[: s.history.index]):
                return self.original_model()
        from .plans import copy_at_start  # plans builds on the session: imported when needed

        return copy_at_start(s).model

    @property
    def incremental(self) -> bool:
        """True when re-evaluation can start from cached activations: Sequential models, and
        models whose graph was traced (or is not tried yet: the first evaluation traces it)."""
        return ev.cacheable(self.session.model) or not isinstance(self.session.cache.graph, str)

    def cache_info(self) -> str:
        """Where the last evaluation started and what the activation cache holds, in words."""
        c = self.session.cache
        with c.lock:
            held, budget, points = c.nbytes, c.budget_bytes, len(c.points)
        host = spill.host_nbytes(c)
        where = c.last_start or "no evaluation yet"
        how = "" if ev.cacheable(self.session.model) or not c.graph else (f"; {c.graph.how} graph, {len(c.graph.cuts)} cut points" if not isinstance(c.graph, str) else f"; full pass: {c.graph}")
        spilled = f" (and {host / 2**20:.1f} MiB in host memory)" if host else ""
        return f"last evaluation started at {where}; cache: {held / 2**20:.1f} MiB of {budget / 2**20:.0f} MiB in {points} points{spilled}{how}"
