"""Session: the verbs that the command line, the app and notebooks all call.

A session holds one model (on its device, always ``orig * mask``), its masks, the undo history,
optional evaluation data, and caches (scores, activations). Every edit is a verb that records
an undoable step and emits :attr:`Session.changed`; nothing else writes masks.

Example::

    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.5, scope="global")
    s.evaluate().accuracy
    s.undo()
"""

from __future__ import annotations

import fnmatch
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

import torch
from psygnal import Signal

from . import evaluate as ev
from . import importance as imp
from .data import EvalData, check_fits, open_data
from .errors import PrunevizError
from .groups import build_coupling
from .history import Change, Flip, History, Step
from .jobs import Job, Writer
from .inventory import LayerInfo, find_layers, total_params, with_outputs
from . import losses
from . import ranking as rk
from . import units as units_
from .masks import MaskStore, check_memory
from .calibration import Calibration
from .session_eval import Evaluation
from .model_io import LoadedModel, open_model
from .prune_spec import PruneSpec


class Session:
    """An editable, evaluable pruning session over one model.

    Open one with :meth:`Session.open`. Read ``layers``, ``scores()``, ``mask()``,
    ``sparsity()``; edit with ``prune*`` / ``restore*``; step through history with
    ``undo()`` / ``redo()`` / ``goto()``; measure with ``evaluate()``; write with ``export()``.
    """

    changed = Signal(object)  #: emits a :class:`Change` after every edit, undo, redo
    #: emits the :class:`~pruneviz.core.jobs.Job` that begins holding the session, and None when it ends
    #: (from the thread that drives the job: a worker's, in the app)
    job_changed = Signal(object)

    def __init__(self, loaded: LoadedModel, data: EvalData | None = None, device: str = "auto", seed: int = 0, batch_size: int = 256, cache_bytes: int = 512 * 1024**2, calib_data: EvalData | str | None = None):
        if not (isinstance(seed, int) and 0 <= seed < 2**32):
            raise PrunevizError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
        self.loaded = loaded
        self.spec = loaded.spec
        self.arch = loaded.arch
        self.data = data
        self.seed = seed
        self.batch_size = batch_size
        self.device = ev.resolve_device(device)
        if data is not None:
            check_fits(loaded.model, data)
        self._model = loaded.model.to(self.device).eval()
        self._example_hook = None
        self.bind_example()
        self.original_params = total_params(self._model)
        layers = find_layers(self._model)
        if not layers:
            raise PrunevizError(f"{loaded.spec} has no prunable layers (Linear or Conv weights)")
        # the coupling graph (what a pruned neuron zeroes) is built on the first neuron or head
        # edit, never at open: a session that prunes weights never pays for it
        self._coupling = None
        self._coupling_state = "pending"
        self.coupling_error: str | None = None
        #: how many times the coupling was built (0 after open; tests check opening stays cheap)
        self.coupling_builds = 0
        if not loaded.structured_ok:
            self._coupling_state = "none"
            self.coupling_error = f"{loaded.source} models are opaque programs: only weight pruning is possible (open a state_dict with --arch for neuron pruning)"
        elif self.example_input() is None:
            self._coupling_state = "none"
            self.coupling_error = "neuron pruning needs an example input: pass --data, or --input-shape C,H,W (token models: --input-shape T --input-dtype long)"
        self._layers = with_outputs(layers, {layers[-1].name})
        self._by_name = {layer.name: layer for layer in self._layers}
        check_memory(self._layers, self._model, self.device)
        self.masks = MaskStore(self._model, self._layers, None)
        self._groups, self._n_groups = rk.channel_groups({n: layer.out_channels for n, layer in self._by_name.items()}, None)
        self.history = History()
        self._pending: Step | None = None
        self._pending_layers: set[str] = set()
        self._score_cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self.cache = ev.ActivationCache(budget_bytes=cache_bytes)
        #: the evaluation part: data on the device, evaluation with its fallbacks, the baseline
        self.evaluation = Evaluation(self)
        self.last_prune: PruneSpec | None = None
        #: human-readable messages about fallbacks (out of memory, CPU instead of GPU)
        self.notices: list[str] = []
        self.amp = False
        self.channels_last = False
        self._child_of = self._children_touched()
        self.lock = threading.RLock()
        #: the calibration part: which data scores and analyses are computed on (core/calibration.py)
        self.calib = Calibration(self, calib_data)
        #: one writer at a time: the running job, and the check every edit makes (core/jobs.py)
        self.writer = Writer(self.lock, self.job_changed.emit)
        # --- real models: how the model was read, said once
        from .outputs import output_notices

        self.notices.extend(output_notices(self))

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, model: str, data: str | None = None, arch: str | None = None, trust: bool = False, device: str = "auto", seed: int = 0, input_shape=None, input_dtype: str | None = None, calib_data: str | None = None, evaluator: str | None = None, remote_data: str | None = None) -> "Session":
        """Open a model spec (``demo:mlp``, a file, …) and optional data spec, as on the command line.
        ``input_shape`` / ``input_dtype``: the example input when the model needs one and has none.
        ``calib_data``: the data scores and analyses calibrate on (see :attr:`calibration`).
        ``evaluator``: ``"local"`` or ``"ray://HOST:PORT"`` evaluates on a Ray replica
        (:mod:`pruneviz.core.remote_eval`; ``remote_data``: the data's path on the cluster)."""
        loaded = open_model(model, arch=arch, trust=trust, input_shape=input_shape, input_dtype=input_dtype)
        s = cls(loaded, open_data(data) if data else None, device=device, seed=seed, calib_data=calib_data)
        if evaluator is not None:  # --- remote evaluation hook (issue 19)
            from .remote_eval import attach

            attach(s, evaluator, remote_data=remote_data)
        return s

    def example_input(self) -> torch.Tensor | None:
        """One input sample ``[1, ...]`` the model accepts (from the data, else the model file), or None."""
        if self.data is not None and len(self.data):
            return self.data.x[:1]
        return self.loaded.example_input

    def _children_touched(self) -> dict[tuple[str, str], frozenset[str]]:
        """For each (store, layer): the modules an edit of it can change (the activation cache
        drops what follows the earliest of them, :meth:`ActivationCache.invalidate_modules`)."""
        from .incremental import modules_touched

        return modules_touched(self._layers, self._coupling)

    # ----------------------------------------------------------------- reads
    @property
    def version(self) -> int:
        """The change token: it moves on every edit of masks or weights (undo and redo included), so
        a result computed at ``version`` v is stale, not wrong, once ``session.version != v``."""
        return self.masks.version

    @property
    def model(self) -> torch.nn.Module:
        """The live effective model: pruned entries are exactly zero."""
        return self._model

    @property
    def layers(self) -> list[LayerInfo]:
        return list(self._layers)

    def layer(self, name: str) -> LayerInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise PrunevizError(f"no prunable layer named {name!r}; layers are: {', '.join(self._by_name)}") from None

    @property
    def neuron_pruning(self) -> bool:
        """True when neuron (structured) pruning is offered for this model: the coupling is built,
        or not built yet and not known to fail (reading this never builds it)."""
        return self._coupling_state != "none"

    @property
    def coupling(self) -> dict | None:
        """Per layer, what pruning its neurons touches (:class:`~pruneviz.core.groups.LayerCoupling`),
        or None when neuron pruning is not available (``coupling_error`` says why). The first read
        builds it (see :meth:`build_coupling`); :attr:`coupling_built` reads without building."""
        if self._coupling_state == "pending":
            self.build_coupling()
        return self._coupling

    @property
    def coupling_built(self) -> dict | None:
        """The coupling when it has been built, else None; never builds it."""
        return self._coupling

    def build_coupling(self, progress=None, time_limit: float | None = None) -> bool:
        """Build the coupling graph now (the app calls this in its worker, with ``progress(done,
        total)``); later calls return at once. Returns whether neuron pruning is available.
        Bounded by ``time_limit`` seconds (default :data:`pruneviz.core.groups.TIME_LIMIT_S`):
        past it, neuron pruning is refused with a message and weight pruning goes on."""
        from . import groups

        with self.lock:
            if self._coupling_state != "pending":
                return self._coupling is not None
            # installing it masks biases and coupled channels: a write, refused while a run holds
            # the session (the run would re-apply values the new masks no longer know)
            self.check_writable()
            example = self.example_input()
            # a batch of 2: with batch 1 the autograd trace of in-place ops loses layers
            example = example[:1].repeat(2, *([1] * (example.dim() - 1)))
            self.coupling_builds += 1
            try:
                coupling = build_coupling(self._model, example.to(self.device), [layer.name for layer in self._layers], groups.TIME_LIMIT_S if time_limit is None else time_limit, progress)
            except PrunevizError as exc:
                self.coupling_error = str(exc)
                self._coupling_state = "none"
                return False
            outputs = {n for n, c in coupling.items() if c.is_output}
            self._layers = with_outputs(self._layers, outputs)
            self._by_name = {layer.name: layer for layer in self._layers}
            self.masks.set_coupling(coupling, self._layers)
            self._groups, self._n_groups = rk.channel_groups({n: layer.out_channels for n, layer in self._by_name.items()}, coupling)
            self._coupling = coupling
            self._coupling_state = "built"
            self._child_of = self._children_touched()
            return True

    def sparsity(self, layer: str | None = None) -> float:
        """Fraction of pruned weights in ``layer``, or over all prunable weights."""
        if layer is not None:
            self.layer(layer)
            return self.masks.sparsity(layer)
        total = sum(layer.numel for layer in self._layers)
        return sum(self.masks.pruned_count(n) for n in self._by_name) / total

    def mask(self, layer: str) -> torch.Tensor:
        """Effective kept-mask of ``layer``'s weight (CPU, bool, shaped like the weight)."""
        self.layer(layer)
        return self.masks.mask(layer).cpu()

    def neuron_mask(self, layer: str) -> torch.Tensor:
        """Kept-mask of ``layer``'s output neurons (CPU bool [out])."""
        self.layer(layer)
        return self.masks.chan[layer].cpu().clone()

    def weight(self, layer: str, original: bool = False) -> torch.Tensor:
        """The layer's effective weight (or its original values), on CPU."""
        info = self.layer(layer)
        t = self.masks.orig[info.weight] if original else self.masks.params[info.weight]
        return t.detach().cpu().clone()

    def view_rows(self, layer: str, start: int, stop: int):
        """Rows ``start:stop`` of the layer's 2-D view as numpy: (effective weights, pruned mask).

        Lets a view refresh only the rows an edit touched instead of copying the whole layer."""
        info = self.layer(layer)
        with self.lock:
            w = self.masks.params[info.weight].detach()[start:stop]
            m = self.masks.param_mask(info.weight, self.masks.elem[layer][start:stop], 0, torch.arange(start, stop, device=w.device))
        cols = info.view_shape[1]
        return w.reshape(-1, cols).cpu().numpy().astype("float32", copy=False), (~m).reshape(-1, cols).cpu().numpy()

    def params_remaining(self) -> int:
        """Parameters that are not pruned (weights, biases and norms zeroed by pruning excluded)."""
        return self.masks.params_remaining()

    def set_cache_budget(self, nbytes: int) -> None:
        """Bytes the activation cache may hold (0 turns incremental evaluation off)."""
        if nbytes < 0:
            raise PrunevizError("the cache budget must be 0 or more bytes")
        self.cache.budget_bytes = int(nbytes)
        self.cache.clear()

    def memory(self) -> dict[str, int]:
        """Bytes held by masks + original values, history (in memory), and the activation cache;
        ``history_disk``: weight deltas of the history written to disk past the budget."""
        from .deltas import disk_bytes

        return {"masks": self.masks.nbytes(), "history": self.history.nbytes(), "cache": self.cache.nbytes, "history_disk": disk_bytes(self.history)}

    # ------------------------------------------------------------ evaluation
    # one-line verbs over the session's evaluation part (pruneviz.core.session_eval.Evaluation)
    def set_data(self, data) -> None:
        """Attach (or replace) evaluation data (an EvalData or a DATA spec); checks that it fits.
        Refused while a job runs (a training run's curve is measured on it)."""
        self.check_writable()
        self.evaluation.set_data(data)
        self.bind_example()
        if self._coupling_state == "none" and self.loaded.structured_ok and self.example_input() is not None:
            self._coupling_state, self.coupling_error = "pending", None  # an example input at last

    def bind_example(self) -> None:
        """Encoder–decoder data: the model, called with an input alone (tracing, shrinking,
        exports), gets the data's first decoder inputs (:func:`pruneviz.core.losses.fill_missing`);
        evaluation, training and scores pass every batch's own."""
        if self._example_hook is not None:
            self._example_hook.remove()
        self._example_hook = losses.fill_missing(self._model, self.data.extra if self.data is not None else None)

    def eval_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation inputs and labels on the session's device, in the seeded order."""
        return self.evaluation.eval_tensors()

    def eval_extra(self) -> dict[str, torch.Tensor]:
        """The evaluation data's per-sample keyword arrays (decoder inputs), in the order of :meth:`eval_tensors`."""
        return self.evaluation.eval_extra()

    def evaluate_iter(self, cancel: threading.Event | None = None, incremental: bool = True):
        """Generator: a Progress per batch, then the EvalResult (see :meth:`Evaluation.evaluate_iter`)."""
        return self.evaluation.evaluate_iter(cancel, incremental)

    def evaluate(self, incremental: bool = True) -> ev.EvalResult:
        """Accuracy, mean cross-entropy, per-class accuracy of the current model on the data."""
        return self.evaluation.evaluate(incremental)

    def baseline(self) -> ev.EvalResult:
        """Evaluation of the unpruned model (computed once)."""
        return self.evaluation.baseline()

    def baseline_iter(self, cancel: threading.Event | None = None):
        """:meth:`baseline` as a cancellable generator; the result is kept once it completes."""
        return self.evaluation.baseline_iter(cancel)

    def set_precision(self, amp: bool = False, channels_last: bool = False) -> None:
        """Mixed precision (autocast) and channels-last layout for evaluation; both off by default."""
        self.evaluation.set_precision(amp, channels_last)

    def to_device(self, device) -> None:
        """Move the model, its masks and caches to ``device`` (refused while a job runs)."""
        self.check_writable()
        self.evaluation.to_device(device)

    def original_model(self) -> torch.nn.Module:
        """A copy of the model with every original value back (nothing pruned)."""
        return self.evaluation.original_model()

    @property
    def incremental(self) -> bool:
        """True when re-evaluation can start from cached activations (Sequential models, and
        models whose graph traces: :mod:`pruneviz.core.incremental`)."""
        return self.evaluation.incremental

    def set_calib_data(self, data) -> None:
        """Calibrate on ``data`` (a DATA spec or EvalData; None: the default) from now on."""
        self.calib.set(data)

    @property
    def calibration(self) -> EvalData | None:
        """The data data-driven scores, sensitivity, knockout, allocation and compensation use:
        ``calib_data`` when given, else the training data where known (``demo:digits-train`` for
        the demo models), else the evaluation data (with a notice: that inflates the figures);
        see :mod:`pruneviz.core.calibration`."""
        return self.calib.data()

    def calibration_info(self) -> dict | None:
        """``{"spec", "samples"}`` of :attr:`calibration` for reports (None without any)."""
        return self.calib.info()

    def clear_scores(self) -> None:
        """Forget cached importance scores (new data, another device)."""
        self._score_cache.clear()

    # ---------------------------------------------------------------- scores
    def scores(self, layer: str | None = None, method: str = "magnitude", granularity: str = "weight", original: bool = False):
        """Importance of each weight (``granularity="weight"``, shaped like the weight) or neuron
        (``"neuron"``, one per output) of ``layer`` (or a dict for every layer), on the current model,
        or with ``original=True`` on the unpruned model (what pruned entries were worth).
        ``granularity="head"``: one score per attention head, keyed by attention module; an N:M
        unit (``"2:4"``) is scored per weight. Any unit of :mod:`pruneviz.core.units`."""
        unit = units_.get(granularity)
        if unit.scored_as == "head":
            return self.head_scores(layer, method)
        granularity = unit.scored_as
        imp.check_method(method, granularity, self.calibration is not None)
        if method in imp.LOCAL_METHODS:
            # one layer's own weights are enough: no model pass, no work on the other layers
            fn = imp.SCORERS[granularity]
            params = self.masks.orig if original else self.masks.params
            opts = imp.ScoreOptions(seed=self.seed)
            names = [self.layer(layer)] if layer is not None else self._layers
            with self.lock:
                out = {n: t.detach().cpu() for n, t in fn(method, self._model, names, params, None, opts).items()}
            return out[layer] if layer is not None else out
        version = -2 if original else self.version
        key = (method, granularity, version, self.seed)
        cached = self._score_cache.get(key)
        if cached is None:
            fn = imp.SCORERS[granularity]
            opts = imp.ScoreOptions(seed=self.seed)
            with self.lock:
                model = self.original_model() if original else self._model
                params = dict(model.named_parameters()) if original else self.masks.params
                cached = {n: s.detach() for n, s in fn(method, model, self._layers, params, self.calib.use(), opts).items()}
            self._score_cache = {k: v for k, v in self._score_cache.items() if k[2] == -2 or k[2] == self.version}
            self._score_cache[key] = cached
        if layer is None:
            return {n: s.cpu() for n, s in cached.items()}
        self.layer(layer)
        return cached[layer].cpu()

    # ------------------------------------------------------------------ jobs
    @property
    def job(self) -> Job | None:
        """The running job (a fine-tune, a schedule, a lesson step) that holds the session, or None."""
        return self.writer.job

    def running(self, name: str, doing: str | None = None):
        """Context manager: hold the session for a job named ``name`` (edits from elsewhere are refused)."""
        return self.writer.running(name, doing)

    def hold(self, name: str, gen, doing: str | None = None):
        """Wrap generator ``gen`` so it holds the session from its first ``next()`` until it ends."""
        return self.writer.hold(name, gen, doing)

    def check_writable(self) -> None:
        """Raise :class:`~pruneviz.core.errors.SessionBusy` when a job holds the session (and the caller is not it)."""
        self.writer.check()

    def writing(self):
        """Context manager every edit holds for its whole extent: the lock, after the job check."""
        return self.writer.writing()

    # ----------------------------------------------------------------- edits
    @contextmanager
    def group(self, label: str):
        """Record every edit inside the block as one undo step called ``label``."""
        if self._pending is not None:
            yield
            return
        step = Step(label)
        try:
            with self.writing():
                self._pending, self._pending_layers = step, set()
                try:
                    yield
                finally:
                    self._pending = None
                    if step.flips:
                        self.history.push(step)
        finally:
            if step.flips:
                self.changed.emit(Change(label, frozenset(self._pending_layers)))

    def apply_flips(self, flips: Iterable[Flip]) -> set[str]:
        """Apply mask flips without recording history (replays: undo/redo, session files).

        Returns the layers whose effective weights changed; invalidates the activation cache.
        All or nothing: on an exception every flip already applied is rolled back."""
        touched: set[str] = set()
        changed: set[str] = set()
        with self.writing(), self.masks.transaction():
            for f in flips:
                if f.store == "elem":
                    self.masks.flip_elem(f.layer, f.idx)
                    touched.add(f.layer)
                else:
                    self.build_coupling()  # a replayed neuron edit (session file) needs the graph
                    self.masks.flip_chan(f.layer, f.idx)
                    touched.add(f.layer)
                    touched |= set(self.coupling[f.layer].coupled) if self.coupling else set()
                    touched |= {self.masks.weight_layer[e.param] for e in self.coupling[f.layer].effects if e.param in self.masks.weight_layer}
                changed |= self._child_of.get((f.store, f.layer), {""})
            self.cache.invalidate_modules(self._model, changed)
        return touched

    def _edit(self, label: str, flips: list[Flip]) -> int:
        with self.writing():  # refused while a job runs (a no-op too); applied and recorded atomically
            flips = [f for f in flips if f.idx.numel()]
            if not flips:
                return 0
            touched = self.apply_flips(flips)
            if self._pending is not None:
                self._pending.flips.extend(flips)
                self._pending_layers |= touched
                return sum(f.idx.numel() for f in flips)
            self.history.push(Step(label, flips))
        self.changed.emit(Change(label, frozenset(touched)))
        return sum(f.idx.numel() for f in flips)

    def _elem_flips(self, layer: str, flat: torch.Tensor, prune: bool) -> Flip:
        info = self.layer(layer)
        flat = torch.unique(torch.as_tensor(flat, dtype=torch.long).reshape(-1))
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= info.numel):
            raise PrunevizError(f"weight index out of range for layer {layer} with {info.numel} weights")
        current = self.masks.elem[layer].view(-1)[flat.to(self.masks.elem[layer].device)].cpu()
        sel = flat[current] if prune else flat[~current]
        return Flip.make("elem", layer, sel, info.numel)

    def _to_flat(self, layer: str, index) -> torch.Tensor:
        info = self.layer(layer)
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            if index.numel() != info.numel:
                raise PrunevizError(f"mask for layer {layer} has {index.numel()} entries, the weight has {info.numel}")
            return index.reshape(-1).nonzero().flatten()
        return torch.as_tensor(index, dtype=torch.long).reshape(-1)

    def prune_weights(self, layer: str, index, label: str | None = None) -> int:
        """Prune weights of ``layer``: ``index`` is a bool mask (like the weight or its 2-D view) or flat indices."""
        flip = self._elem_flips(layer, self._to_flat(layer, index), True)
        return self._edit(label or f"prune {flip.idx.numel()} weights of {layer}", [flip])

    def restore_weights(self, layer: str, index, label: str | None = None) -> int:
        """Undo pruning of the given weights (bit-identical original values come back)."""
        flip = self._elem_flips(layer, self._to_flat(layer, index), False)
        return self._edit(label or f"restore {flip.idx.numel()} weights of {layer}", [flip])

    def _rect_flat(self, layer: str, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        r_out, c_in = self.layer(layer).view_shape
        r0, r1 = max(0, min(rows)), min(r_out, max(rows))
        c0, c1 = max(0, min(cols)), min(c_in, max(cols))
        if r0 >= r1 or c0 >= c1:
            return torch.zeros(0, dtype=torch.long)
        r = torch.arange(r0, r1).view(-1, 1)
        c = torch.arange(c0, c1).view(1, -1)
        return (r * c_in + c).reshape(-1)

    def prune_rect(self, layer: str, rows: tuple[int, int], cols: tuple[int, int], restore: bool = False) -> int:
        """Prune (or restore) the block ``rows[0]:rows[1]`` × ``cols[0]:cols[1]`` of the layer's 2-D view."""
        flip = self._elem_flips(layer, self._rect_flat(layer, rows, cols), not restore)
        verb = "restore" if restore else "prune"
        return self._edit(f"{verb} block [{rows[0]}:{rows[1]}, {cols[0]}:{cols[1]}] of {layer}", [flip])

    def _require_neurons(self, layer: str) -> None:
        self.layer(layer)
        if self.coupling is None:
            raise PrunevizError(f"neuron pruning is not available for this model: {self.coupling_error}")
        refused = self.coupling[layer].refused
        if refused:
            raise PrunevizError(f"cannot neuron-prune {layer}: {refused}")

    def _chan_flips(self, targets: dict[str, torch.Tensor], prune: bool) -> list[Flip]:
        """Flips that bring the listed neurons (and their coupled neurons) to pruned/kept."""
        want: dict[str, set[int]] = {}
        for layer, idx in targets.items():
            self._require_neurons(layer)
            idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
            n = self.layer(layer).out_channels
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise PrunevizError(f"neuron index out of range for layer {layer} with {n} neurons")
            want.setdefault(layer, set()).update(idx.tolist())
            for other, (tidx, ridx) in self.coupling[layer].coupled.items():
                sel = torch.isin(ridx, idx)
                want.setdefault(other, set()).update(tidx[sel].tolist())
        flips = []
        for layer, idx in want.items():
            t = torch.tensor(sorted(idx), dtype=torch.long)
            kept = self.masks.chan[layer].cpu()[t] if t.numel() else torch.zeros(0, dtype=torch.bool)
            sel = t[kept] if prune else t[~kept]
            flips.append(Flip.make("chan", layer, sel, self.layer(layer).out_channels))
        return flips

    def prune_neurons(self, layer: str, idx: Sequence[int], label: str | None = None) -> int:
        """Prune output neurons ``idx`` of ``layer`` (and the channels coupled to them)."""
        idx = list(idx) if not isinstance(idx, torch.Tensor) else idx
        return self._edit(label or f"prune neuron{'s' if len(idx) != 1 else ''} {_fmt(idx)} of {layer}", self._chan_flips({layer: idx}, True))

    def restore_neurons(self, layer: str, idx: Sequence[int], label: str | None = None) -> int:
        """Restore output neurons ``idx`` of ``layer`` (and the channels coupled to them)."""
        idx = list(idx) if not isinstance(idx, torch.Tensor) else idx
        return self._edit(label or f"restore neuron{'s' if len(idx) != 1 else ''} {_fmt(idx)} of {layer}", self._chan_flips({layer: idx}, False))

    def select_layers(self, patterns: str | Sequence[str] | None, granularity: str = "weight") -> list[str]:
        """Layer names matching comma-separated globs. Output layers join a neuron selection only when named exactly."""
        unit = units_.get(granularity)
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        names = [layer.name for layer in self._layers]
        if not patterns:
            chosen = names
        else:
            chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
            if not chosen:
                raise PrunevizError(f"--layers {','.join(patterns)} matches no layer; layers are: {', '.join(names)}")
        if unit.edits == "chan":
            self.build_coupling()  # which layers are outputs is known from the coupling
            explicit = set(patterns or [])
            chosen = [n for n in chosen if not self._by_name[n].is_output or n in explicit]
            if self.coupling is not None:  # prune what can be pruned; say once why a layer is skipped
                skipped = [n for n in chosen if self.coupling[n].refused and n not in explicit]
                for n in skipped:
                    note = f"skipped {n}: {self.coupling[n].refused}"
                    if note not in self.notices:
                        self.notices.append(note)
                chosen = [n for n in chosen if n not in skipped]
            if not chosen:
                raise PrunevizError("no layer left to neuron-prune: output layers are pruned only when named exactly in --layers")
        return chosen

    def preview(self, amount: float, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", layers=None) -> dict[str, torch.Tensor]:
        """What :meth:`prune` would prune, without pruning: ``{layer: bool tensor}`` (True = would go)."""
        rk.check_amount(amount)
        unit = units_.get(granularity)
        if scope not in unit.scopes:
            raise PrunevizError(f"unknown scope {scope!r}: use {' or '.join(unit.scopes)}")
        if not unit.picks_layers:  # attention heads: keyed by attention module
            from . import attention_heads

            return attention_heads.preview(self, amount, scope, method, layers)
        names = self.select_layers(layers, unit)
        if unit.edits == "chan":
            for n in names:
                self._require_neurons(n)
        scores = self.scores(None, method, unit)
        kept = {n: self._kept(unit, n) for n in names}
        ctx = units_.Context(method, {n: self._by_name[n].kind for n in names}, self._coupled_selection)
        return unit.select(scores, kept, amount, scope, ctx)

    def _kept(self, unit, layer: str) -> torch.Tensor:
        """What ``unit`` selects from in ``layer``: its kept weights, or its kept neurons (CPU)."""
        return (self.masks.chan[layer] if unit.edits == "chan" else self.masks.mask(layer)).cpu()

    def _coupled_selection(self, amount, scope, scores, kept) -> dict[str, torch.Tensor]:
        preview = self._neuron_preview_layer if scope == "layer" else self._neuron_preview_global
        return preview(amount, list(kept), scores, kept)

    def _neuron_preview_layer(self, amount, names, scores, kept) -> dict[str, torch.Tensor]:
        # coupled channels go together: what a layer already loses through its partners counts
        taken = torch.zeros(self._n_groups, dtype=torch.bool)
        for n in names:
            g = self._groups[n]
            already = kept[n] & taken[g]
            k = round(amount * rk.count(kept[n])) - rk.count(already)
            taken[g[rk.lowest(scores[n], kept[n] & ~already, k)]] = True
        return {n: kept[n] & taken[self._groups[n]] for n in names}

    def _unit_scores(self, names: list[str], scores: dict[str, torch.Tensor]):
        """Coupled channels ranked as one unit: (unit score, units alive, guarded units).

        A unit's score is the mean of its members' scores, each divided by the mean score of its
        layer's kept neurons. Guarded: the unit holding each touched layer's best kept neuron."""
        groups, n_units = self._groups, self._n_groups
        ssum = torch.zeros(n_units)
        cnt = torch.zeros(n_units)
        alive = torch.zeros(n_units, dtype=torch.bool)
        guard = torch.zeros(n_units, dtype=torch.bool)
        touched = set(names)
        for n in names:
            touched |= set(self.coupling[n].coupled)
        for n in touched:
            kept = self.masks.chan[n].cpu()
            norm = scores[n].float() / rk.mean_kept(scores[n], kept)
            if n in names:
                g = groups[n][kept]
                ssum.index_add_(0, g, norm[kept])
                cnt.index_add_(0, g, torch.ones(len(g)))
                alive[g] = True
            if kept.any():
                guard[groups[n][rk.best_kept(norm, kept)]] = True
        return ssum / cnt.clamp(min=1), alive, guard

    def _neuron_preview_global(self, amount, names, scores, kept) -> dict[str, torch.Tensor]:
        unit, alive, guard = self._unit_scores(names, scores)
        cand = alive & ~guard
        sel = rk.lowest(unit, cand, min(round(amount * rk.count(alive)), rk.count(cand)))
        return {n: kept[n] & sel[self._groups[n]] for n in names}

    def prune(self, amount: float, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", layers=None, compensate: bool | str = False, calib=None) -> int:
        """Prune ``amount`` (0..1) of the still-kept weights or neurons of the selected layers,
        lowest ``method`` score first, per layer (``scope="layer"``; :data:`~pruneviz.core.importance.ROW_METHODS`
        per output row), in one ranking (``"global"``), or with per-layer amounts allocated from a
        sensitivity analysis on the calibration split (``"sensitivity"``, weights only; see
        :func:`pruneviz.core.allocation.prune_by_sensitivity`). Scores come from the model as it was
        before the call. One undo step.
        ``compensate`` (weights only): ``"exact"`` (or True) also sets the kept weights to the
        least-squares optimum of each layer's outputs for this mask; ``"sparsegpt"`` lets SparseGPT
        choose the mask and update the weights (:mod:`pruneviz.core.compensate`). ``calib``: the
        calibration data (a DATA spec, EvalData, tensor or batches; default: the session's
        calibration split, :attr:`calibration`). Returns the number of weights or neurons pruned."""
        from . import compensate as comp
        from .edit_labels import prune_label

        unit = units_.get(granularity)
        mode = comp.mode_of(compensate)
        if scope == "sensitivity":
            if unit is not units_.WEIGHT or mode is not None:
                raise PrunevizError("--scope sensitivity allocates weights per layer: use it with --granularity weight and without --compensate")
            from . import allocation

            return allocation.prune_by_sensitivity(self, amount, method, layers)
        if mode is not None:
            if unit.edits != "elem":
                raise PrunevizError("compensation updates the weights that stay after a weight prune: use it with --granularity weight or N:M")
            with self.writing():  # its snapshot, flips and new values: no job may begin in between
                return comp.prune(self, amount, scope, method, layers, self.calib.use() if calib is None else calib, mode=mode, granularity=unit.name)
        if not unit.picks_layers:
            from . import attention_heads

            return attention_heads.prune(self, amount, scope, method, layers)
        chosen = self.preview(amount, scope, unit, method, layers)
        label = prune_label(amount, scope, unit.name, method, chosen) if unit.uses_amount else f"prune to {unit.name} by {method}"  # names the layers
        if unit.edits == "elem":
            # preview only offers kept weights, so every index flips kept -> pruned
            flips = [Flip.make("elem", n, m.reshape(-1).nonzero().flatten(), m.numel()) for n, m in chosen.items()]
        else:
            flips = self._chan_flips({n: m.nonzero().flatten() for n, m in chosen.items() if m.any()}, True)
        self.last_prune = PruneSpec(amount, scope, unit.name, method, tuple(chosen))
        return self._edit(label, flips)

    def preview_below(self, layer: str, threshold: float, method: str = "magnitude", granularity: str = "weight") -> torch.Tensor:
        """Bool tensor of what :meth:`prune_below` would newly prune in ``layer``."""
        unit = units_.get(granularity)
        if unit.edits == "chan":
            self._require_neurons(layer)
        elif unit.edits != "elem" or not unit.uses_amount:
            raise PrunevizError(f"pruning below a threshold works on weights or neurons, not {unit.counted_in} ({unit.name})")
        s = self.scores(layer, method, unit)
        return (s < threshold) & self._kept(unit, layer)

    def prune_below(self, layer: str, threshold: float, method: str = "magnitude", granularity: str = "weight") -> int:
        """Prune the weights (or neurons) of ``layer`` whose score is below ``threshold``."""
        m = self.preview_below(layer, threshold, method, granularity)
        label = f"prune {granularity}s of {layer} with {method} < {threshold:.4g}"
        if units_.get(granularity).edits == "elem":
            return self._edit(label, [self._elem_flips(layer, m.reshape(-1).nonzero().flatten(), True)])
        return self._edit(label, self._chan_flips({layer: m.nonzero().flatten()}, True))

    def least_important_neuron(self, method: str = "magnitude", layers=None) -> tuple[str, int] | None:
        """The (layer, neuron) whose coupled unit has the lowest normalised score; never one that
        would take a layer's last neuron."""
        names = list(self.preview(0.0, "global", "neuron", method, layers))  # validates, selects layers
        scores = self.scores(None, method, "neuron")
        unit, alive, _ = self._unit_scores(names, scores)
        last = torch.zeros_like(alive)  # units holding some layer's only kept neuron
        for n, g in self._groups.items():
            kept = self.masks.chan[n].cpu()
            if rk.count(kept) == 1:
                last[g[kept]] = True
        cand = alive & ~last
        if not bool(cand.any()):
            return None
        u = int(torch.where(cand, unit, torch.full_like(unit, float("inf"))).argmin())
        for n in names:
            hit = ((self._groups[n] == u) & self.masks.chan[n].cpu()).nonzero().flatten()
            if hit.numel():
                return n, int(hit[0])
        return None

    def step(self, method: str = "magnitude", layers=None) -> tuple[str, int] | None:
        """One step of the node-pruning loop: score, rank, prune the least important neuron."""
        target = self.least_important_neuron(method, layers)
        if target is not None:
            self.prune_neurons(target[0], [target[1]], label=f"step: prune neuron {target[1]} of {target[0]} ({method})")
        return target

    def prune_loop(self, method: str = "magnitude", min_accuracy: float | None = None, target_sparsity: float | None = None, max_steps: int = 10_000, layers=None) -> Iterator[tuple[tuple[str, int], ev.EvalResult | None]]:
        """The classic loop: step, re-evaluate, stop when accuracy falls below ``min_accuracy``
        (that last step is undone) or weight sparsity reaches ``target_sparsity``. Yields each
        (removed neuron, evaluation); each removal is its own undo step."""
        if min_accuracy is not None and self.data is None:
            raise PrunevizError("an accuracy bound needs evaluation data", hint="data")
        for _ in range(max_steps):
            if target_sparsity is not None and self.sparsity() >= target_sparsity:
                return
            target = self.step(method, layers)
            if target is None:
                return
            result = self.evaluate() if self.data is not None else None
            yield target, result
            if min_accuracy is not None and result is not None and result.accuracy < min_accuracy:
                self.undo()
                return

    # --------------------------------------------------------------- history
    def _replay(self, step: Step, kind: str) -> set[str]:
        try:
            if step.weights is not None:  # fine-tuned / compensated values come back bit for bit
                from .deltas import replay

                touched = replay(self, step, kind)
            else:
                flips = step.flips if kind == "redo" else list(reversed(step.flips))
                touched = self.apply_flips(flips)
        except BaseException:  # the session was rolled back: put the history back in step with it
            self.history.index += 1 if kind == "undo" else -1
            raise
        return touched

    def _move(self, kind: str) -> str | None:
        with self.writing():  # refused while a job runs, before the history moves
            step = self.history.undo_step() if kind == "undo" else self.history.redo_step()
            if step is None:
                return None
            touched = self._replay(step, kind)
        self.changed.emit(Change(step.label, frozenset(touched), kind))
        return step.label

    def undo(self) -> str | None:
        """Undo the last step; returns its label (None when there is nothing to undo)."""
        return self._move("undo")

    def redo(self) -> str | None:
        """Redo the next step; returns its label."""
        return self._move("redo")

    def goto(self, index: int) -> None:
        """Undo or redo until ``index`` steps are applied (0 = the unpruned model)."""
        self.check_writable()
        index = max(0, min(index, len(self.history.steps)))
        while self.history.index > index:
            self.undo()
        while self.history.index < index:
            self.redo()

    # ---------------------------------------------------------------- export
    def export(self, path, format: str = "state_dict", shrink: bool = False, report: str | None = None) -> dict:
        """Write the pruned model (``state_dict``, ``safetensors``, ``pt2``, ``onnx``); ``shrink``
        removes pruned neurons physically. With ``report``, also write the JSON report. Returns the report."""
        from . import export as ex

        return ex.export_session(self, path, format=format, shrink=shrink, report_path=report)

    # ------------------------------------------------------- training (issue 8)
    def finetune(self, epochs: int = 1, lr: float | None = None, data=None, optimizer: str = "adam", batch_size: int | None = None, cancel=None, allow_divergence: bool = False):
        """Generator: train the kept weights ``epochs`` epochs on ``data`` (a DATA spec; demo models
        default to ``demo:digits-train``) with ``optimizer`` (adam, adamw, sgd); pruned entries stay
        exactly 0. Yields :class:`~pruneviz.core.training.TrainProgress` per step (accuracy at each
        epoch end); returns a :class:`~pruneviz.core.training.TrainResult`. Records one undo step
        when it ends, is closed or is cancelled (``cancel``: a threading.Event); a loss that turns
        NaN, or a run that diverges (:mod:`pruneviz.core.divergence`; ``allow_divergence=True``
        keeps going), restores the model and raises. Bad settings raise at the call. The run holds
        the session (:attr:`job`) from its first ``next()`` to its end: other edits are refused.

        Example: ``result = pruneviz.core.training.complete(s.finetune(3))``"""
        from . import training

        return training.finetune(self, epochs, lr, data, optimizer, batch_size, cancel, allow_divergence)

    def train(self, schedule: str, target_sparsity: float, epochs: int, method: str = "magnitude", lr: float | None = None, data=None, from_scratch: bool = False, cancel=None, optimizer: str = "adam", batch_size: int | None = None, allow_divergence: bool = False):
        """Generator like :meth:`finetune` for a pruning schedule reaching ``target_sparsity`` per
        layer: ``before`` (prune at the start by magnitude or SNIP, then train), ``during`` (Zhu &
        Gupta's cubic gradual pruning), ``after`` (train dense, prune once, fine-tune), ``regrow``
        (RigL: prune, then drop and regrow at constant sparsity), ``granet`` (regrow with a gradual
        start). ``from_scratch`` re-initialises the weights first (same undo step)."""
        from . import schedules

        return schedules.train(self, schedule, target_sparsity, epochs, method, lr, data, from_scratch, cancel, optimizer, batch_size, allow_divergence)

    def reinitialize(self, seed: int = 0) -> str:
        """Fresh weights from each layer's initialiser (seeded), masks kept; one undo step. Returns its label."""
        from . import training

        return training.reinitialize(self, seed)

    # ---------------------------------------------- analysis (core/analysis.py, core/allocation.py)
    def neuron_flips(self, targets: dict[str, Sequence[int]], prune: bool = True) -> list[Flip]:
        """The flips that would prune (or restore) these neurons and their coupled channels,
        without applying them: ``{layer: indices}`` -> list of :class:`Flip`."""
        return self._chan_flips(targets, prune)

    def sensitivity(self, layers=None, levels=None, granularity: str = "weight", method: str = "magnitude", cancel=None, ray=None):
        """Generator: each selected layer pruned alone at each level and evaluated; returns the
        summary dict. See :func:`pruneviz.core.analysis.sensitivity`."""
        from . import analysis

        return analysis.sensitivity(self, layers, levels, granularity, method, cancel, ray)

    def knockout(self, layer: str, cancel=None, methods=None, ray=None):
        """Generator: each neuron of ``layer`` removed alone and evaluated, with each criterion's
        faithfulness; see :func:`pruneviz.core.analysis.knockout`."""
        from . import analysis

        return analysis.knockout(self, layer, methods, cancel, ray)

    def compare_criteria(self, layer: str, method_a: str, method_b: str, granularity: str = "weight", k: int | None = None, cancel=None):
        """Generator: two criteria side by side on ``layer``; see :func:`pruneviz.core.analysis.compare`."""
        from . import analysis

        return analysis.compare(self, layer, method_a, method_b, granularity, k, cancel)

    def sweep(self, levels=None, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", cancel=None, ray=None, layers=None):
        """Generator: one-shot prunes at each level from the current state (unchanged) and their
        accuracy and loss; see :func:`pruneviz.core.analysis.sweep`."""
        from . import analysis

        return analysis.sweep(self, levels, scope, granularity, method, layers, cancel, ray)

    def allocate(self, target_sparsity: float, sensitivity: dict | None = None, method: str = "magnitude", levels=None, ray=None) -> dict[str, float]:
        """Per-layer sparsities reaching ``target_sparsity`` with the least predicted loss, from a
        weight sensitivity analysis (run now when not given); see :mod:`pruneviz.core.allocation`."""
        from . import allocation, analysis

        return allocation.allocate(self, target_sparsity, sensitivity or analysis.collect(self.sensitivity(None, levels, "weight", method, ray=ray)))

    def apply_allocation(self, plan: dict[str, float], method: str = "magnitude") -> int:
        """Prune every layer to its sparsity in ``plan`` (lowest ``method`` first) as one undo step."""
        from . import allocation

        return allocation.apply_allocation(self, plan, method)

    # ------------------------------------------------------ plans (core/plans.py)
    def plans(self) -> list[dict]:
        """Every plan (branch of the history tree): ``[{"name", "steps", "labels", "current"}]``."""
        from . import plans

        return plans.plan_table(self)

    def switch_plan(self, name: str) -> None:
        """Go to the end of plan ``name`` by undo and redo (the other plans are kept)."""
        from . import plans

        self.check_writable()
        plans.switch_plan(self, name)

    def rename_plan(self, old: str, new: str) -> None:
        """Rename a plan (names are unique)."""
        from . import plans

        plans.rename_plan(self, old, new)

    def plan_summaries(self, cancel=None):
        """Generator: sparsity, params, accuracy and loss at the end of every plan, and each plan's
        curve (those figures after every step from the start; shared steps measured once), measured
        on a copy (nothing is switched); see :func:`pruneviz.core.plans.summaries`.

        Example: ``rows = pruneviz.core.analysis.collect(s.plan_summaries()); rows[0]["curve"]``"""
        from . import plans

        return plans.summaries(self, cancel)

    # ------------------------------------- attention heads (core/attention_heads.py)
    def attention_heads(self) -> dict[str, int]:
        """``{attention module: number of heads}`` for the attention modules whose heads can be pruned."""
        from . import attention_heads

        return {n: u.num_heads for n, u in attention_heads.find_heads(self).items()}

    def head_mask(self, layer: str) -> torch.Tensor:
        """Kept-mask [heads] of an attention module (or of the module one of its projections belongs to)."""
        from . import attention_heads

        return attention_heads.head_mask(self, attention_heads.head_unit(self, layer))

    def head_scores(self, layer: str | None = None, method: str = "magnitude"):
        """One score per head (magnitude: L2 norm of its q/k/v rows; else its rows' weight scores summed)."""
        from . import attention_heads

        units = None if layer is None else [attention_heads.head_unit(self, layer)]
        out = attention_heads.scores(self, method, units)
        return next(iter(out.values())) if layer is not None else out

    def prune_heads(self, layer: str, heads: Sequence[int], label: str | None = None) -> int:
        """Prune whole attention heads of ``layer`` (its q/k/v rows and output-projection columns); one undo step."""
        from . import attention_heads

        return attention_heads.prune_heads(self, layer, list(heads), label)

    def restore_heads(self, layer: str, heads: Sequence[int], label: str | None = None) -> int:
        """Restore whole attention heads of ``layer`` (every weight of the head comes back); one undo step."""
        from . import attention_heads

        return attention_heads.restore_heads(self, layer, list(heads), label)


def _fmt(idx) -> str:
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:8])) + (f" … (+{len(idx) - 8})" if len(idx) > 8 else "")
