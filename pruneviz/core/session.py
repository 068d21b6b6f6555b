"""Session: the verbs that the command line, the app and notebooks all call.

A session holds one model (on its device, always ``orig * mask``), its masks, the undo history,
optional evaluation data, and caches (scores, activations). Every edit is a verb that records
an undoable step and emits :attr:`Session.changed`; nothing else writes masks or values.

The class is a facade of one-line verbs over parts, each a module that can be read and tested
alone and the one owner of its state: ``editable`` (model, masks, activation cache, flips:
:mod:`~pruneviz.core.editable`), ``coupler`` (:mod:`~pruneviz.core.session_coupling`), ``editor``
(mask edits, undo, redo: :mod:`~pruneviz.core.session_edit`), ``scorer``
(:mod:`~pruneviz.core.session_scores`), ``evaluation`` (data, device, batch size, precision:
:mod:`~pruneviz.core.session_eval`), ``calib``, ``writer`` (:mod:`~pruneviz.core.jobs`) and
``history``; selection and prunes are :mod:`~pruneviz.core.session_select`. Values change only
through :meth:`Session.edit_weights` (:mod:`~pruneviz.core.weight_edit`).

Example::

    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.5, scope="global")
    s.evaluate().accuracy
    s.undo()
"""

from __future__ import annotations

import threading
from typing import Iterable, Sequence

import torch
from psygnal import Signal

from . import evaluate as ev
from . import prune_loop as loop_
from . import session_select as sel
from . import session_verbs as verbs
from .calibration import Calibration
from .data import EvalData, check_fits, open_data
from .editable import EditableModel
from .errors import PrunevizError
from .history import Flip, History
from .inventory import LayerInfo, find_layers, total_params, with_outputs
from .jobs import Job, Writer
from .masks import check_memory
from .model_io import LoadedModel, open_model
from .prune_spec import PruneSpec
from .session_coupling import Coupling
from .session_edit import Editor
from .session_eval import Evaluation
from .session_scores import Scores
from .weight_edit import WeightEdit


def _part(part: str, name: str, doc: str, writable: bool = True) -> property:
    """A session attribute whose state lives in (and is written by) one of its parts."""
    get = lambda s: getattr(getattr(s, part), name)  # noqa: E731
    put = (lambda s, v: setattr(getattr(s, part), name, v)) if writable else None  # noqa: E731
    return property(get, put, doc=doc)


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

    data = _part("evaluation", "data", "The evaluation data (EvalData), or None.")
    device = _part("evaluation", "device", "The torch device the model, masks and caches are on.")
    batch_size = _part("evaluation", "batch_size", "Samples per evaluation batch.")
    amp = _part("evaluation", "amp", "Evaluation under autocast (see :meth:`set_precision`).")
    channels_last = _part("evaluation", "channels_last", "4-D parameters in channels-last layout.")
    masks = _part("editable", "masks", "The :class:`~pruneviz.core.masks.MaskStore` (read it; edit through the verbs).", False)
    cache = _part("editable", "cache", "The activation cache of incremental evaluation.", False)
    model = _part("editable", "model", "The live effective model: pruned entries are exactly zero.", False)
    coupling_error = _part("coupler", "error", "Why neuron pruning is not available (None when it is or may be).")
    coupling_builds = _part("coupler", "builds", "How many times the coupling was built (0 after open).", False)
    coupling_built = _part("coupler", "graph", "The coupling when it has been built, else None; never builds it.", False)
    neuron_pruning = _part("coupler", "available", "Neuron pruning is offered: the coupling is built or not known to fail.", False)

    def __init__(self, loaded: LoadedModel, data: EvalData | None = None, device: str = "auto", seed: int = 0, batch_size: int = 256, cache_bytes: int = 512 * 1024**2, calib_data: EvalData | str | None = None):
        if not (isinstance(seed, int) and 0 <= seed < 2**32):
            raise PrunevizError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
        self.loaded, self.spec, self.arch, self.seed = loaded, loaded.spec, loaded.arch, seed
        if data is not None:
            check_fits(loaded.model, data)
        self.lock = threading.RLock()
        self.history = History()
        self.last_prune: PruneSpec | None = None  #: the settings of the last one-shot prune
        #: human-readable messages about fallbacks (out of memory, CPU instead of GPU)
        self.notices: list[str] = []
        self.evaluation = Evaluation(self, data, ev.resolve_device(device), batch_size)
        model = loaded.model.to(self.device).eval()
        layers = find_layers(model)
        if not layers:
            raise PrunevizError(f"{loaded.spec} has no prunable layers (Linear or Conv weights)")
        layers = with_outputs(layers, {layers[-1].name})
        check_memory(layers, model, self.device)
        self.editable = EditableModel(model, layers, ev.ActivationCache(budget_bytes=cache_bytes))
        self.original_params = total_params(model)
        self.bind_example()
        self.coupler = Coupling(self)
        self.editor = Editor(self)
        self.scorer = Scores(self)
        #: the calibration part: which data scores and analyses are computed on (core/calibration.py)
        self.calib = Calibration(self, calib_data)
        #: one writer at a time: the running job, and the check every edit makes (core/jobs.py)
        self.writer = Writer(self.lock, self.job_changed.emit)
        from .outputs import output_notices  # real models: how the model was read, said once

        self.notices.extend(output_notices(self))

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
        return self.data.x[:1] if self.data is not None and len(self.data) else self.loaded.example_input

    # ----------------------------------------------------------------- reads
    @property
    def version(self) -> int:
        """The change token: it moves on every edit of masks or weights (undo and redo included), so
        a result computed at ``version`` v is stale, not wrong, once ``session.version != v``."""
        return self.editable.masks.version

    @property
    def layers(self) -> list[LayerInfo]:
        return list(self.editable.layers)

    def layer(self, name: str) -> LayerInfo:
        try:
            return self.editable.by_name[name]
        except KeyError:
            raise PrunevizError(f"no prunable layer named {name!r}; layers are: {', '.join(self.editable.by_name)}") from None

    @property
    def coupling(self) -> dict | None:
        """Per layer, what pruning its neurons touches (:class:`~pruneviz.core.groups.LayerCoupling`),
        or None when neuron pruning is not available (``coupling_error`` says why). The first read
        builds it (see :meth:`build_coupling`); :attr:`coupling_built` reads without building."""
        return self.coupler.get()

    def build_coupling(self, progress=None, time_limit: float | None = None) -> bool:
        """Build the coupling graph now (the app calls this in its worker, with ``progress(done,
        total)``); later calls return at once. Returns whether neuron pruning is available.
        Bounded by ``time_limit`` seconds (default :data:`pruneviz.core.groups.TIME_LIMIT_S`):
        past it, neuron pruning is refused with a message and weight pruning goes on."""
        return self.coupler.build(progress, time_limit)

    def sparsity(self, layer: str | None = None) -> float:
        """Fraction of pruned weights in ``layer``, or over all prunable weights."""
        return self.editable.sparsity(None if layer is None else self.layer(layer).name)

    def mask(self, layer: str) -> torch.Tensor:
        """Effective kept-mask of ``layer``'s weight (CPU, bool, shaped like the weight)."""
        return self.masks.mask(self.layer(layer).name).cpu()

    def neuron_mask(self, layer: str) -> torch.Tensor:
        """Kept-mask of ``layer``'s output neurons (CPU bool [out])."""
        return self.masks.chan[self.layer(layer).name].cpu().clone()

    def weight(self, layer: str, original: bool = False) -> torch.Tensor:
        """The layer's effective weight (or its original values), on CPU."""
        info = self.layer(layer)
        return (self.masks.orig if original else self.masks.params)[info.weight].detach().cpu().clone()

    def view_rows(self, layer: str, start: int, stop: int):
        """Rows ``start:stop`` of the layer's 2-D view as numpy: (effective weights, pruned mask).
        Lets a view refresh only the rows an edit touched instead of copying the whole layer."""
        info = self.layer(layer)
        with self.lock:
            return self.editable.view_rows(info, start, stop)

    def params_remaining(self) -> int:
        """Parameters that are not pruned (weights, biases and norms zeroed by pruning excluded)."""
        return self.masks.params_remaining()

    def set_cache_budget(self, nbytes: int) -> None:
        """Bytes the activation cache may hold (0 turns incremental evaluation off)."""
        if nbytes < 0:
            raise PrunevizError("the cache budget must be 0 or more bytes")
        self.cache.budget_bytes = int(nbytes)
        self.cache.clear()

    # ------------------------------------------- evaluation (session_eval.Evaluation)
    def set_data(self, data) -> None:
        """Attach (or replace) evaluation data (an EvalData or a DATA spec); checks that it fits.
        Refused while a job runs (a training run's curve is measured on it)."""
        self.check_writable()
        self.evaluation.set_data(data)
        self.coupler.example_found()

    def bind_example(self) -> None:
        """Encoder–decoder data: the model, called with an input alone (tracing, shrinking,
        exports), gets the data's first decoder inputs (:func:`pruneviz.core.losses.fill_missing`)."""
        self.evaluation.bind_example()

    def eval_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation inputs and labels on the session's device, in the seeded order."""
        return self.evaluation.eval_tensors()

    def eval_extra(self) -> dict[str, torch.Tensor]:
        """The data's per-sample keyword arrays (decoder inputs), in the order of :meth:`eval_tensors`."""
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
        """True when re-evaluation can start from cached activations (:mod:`pruneviz.core.incremental`)."""
        return self.evaluation.incremental

    # ------------------------------------------------ scores (session_scores.Scores)
    def scores(self, layer: str | None = None, method: str = "magnitude", granularity: str = "weight", original: bool = False):
        """Importance of each weight (``granularity="weight"``, shaped like the weight) or neuron
        (``"neuron"``, one per output) of ``layer`` (or a dict for every layer), on the current model,
        or with ``original=True`` on the unpruned model (what pruned entries were worth).
        ``granularity="head"``: one score per attention head, keyed by attention module; an N:M
        unit (``"2:4"``) is scored per weight. Any unit of :mod:`pruneviz.core.units`."""
        return self.scorer.get(layer, method, granularity, original)

    def clear_scores(self) -> None:
        """Forget cached importance scores (new data, another device)."""
        self.scorer.clear()

    # ------------------------------------------------------------ jobs (core/jobs.py)
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

    # ------------------------------------------- edits (session_edit.Editor, weight_edit)
    def group(self, label: str):
        """Context manager: record every edit inside the block as one undo step called ``label``."""
        return self.editor.group(label)

    def apply_flips(self, flips: Iterable[Flip]) -> set[str]:
        """Apply mask flips without recording history (replays: undo/redo, session files).
        Returns the layers whose effective weights changed; all or nothing."""
        return self.editor.apply_flips(flips)

    def edit_weights(self, label: str = "") -> WeightEdit:
        """Begin a change of values: the one way weights are written (fine-tuning, compensation),
        recorded as one undo step with its XOR delta on ``commit`` (:mod:`pruneviz.core.weight_edit`)."""
        self.check_writable()
        return WeightEdit(self, label)

    def remember_prune(self, spec: PruneSpec) -> None:
        """Keep the settings of the one-shot prune just made (:attr:`last_prune`, for reports)."""
        self.last_prune = spec

    def prune_weights(self, layer: str, index, label: str | None = None) -> int:
        """Prune weights of ``layer``: ``index`` is a bool mask (like the weight or its 2-D view) or flat indices."""
        return self.editor.weights(layer, index, True, label)

    def restore_weights(self, layer: str, index, label: str | None = None) -> int:
        """Undo pruning of the given weights (bit-identical original values come back)."""
        return self.editor.weights(layer, index, False, label)

    def prune_rect(self, layer: str, rows: tuple[int, int], cols: tuple[int, int], restore: bool = False) -> int:
        """Prune (or restore) the block ``rows[0]:rows[1]`` × ``cols[0]:cols[1]`` of the layer's 2-D view."""
        return self.editor.rect(layer, rows, cols, restore)

    def prune_neurons(self, layer: str, idx: Sequence[int], label: str | None = None) -> int:
        """Prune output neurons ``idx`` of ``layer`` (and the channels coupled to them)."""
        return self.editor.neurons(layer, idx, True, label)

    def restore_neurons(self, layer: str, idx: Sequence[int], label: str | None = None) -> int:
        """Restore output neurons ``idx`` of ``layer`` (and the channels coupled to them)."""
        return self.editor.neurons(layer, idx, False, label)

    def neuron_flips(self, targets: dict[str, Sequence[int]], prune: bool = True) -> list[Flip]:
        """The flips that would prune (or restore) these neurons and their coupled channels, unapplied."""
        return self.editor.chan_flips(targets, prune)

    # ------------------------------ selection and one-shot prunes: the functions of session_select
    select_layers = sel.select_layers
    preview = sel.preview
    prune = sel.prune
    preview_below = sel.preview_below
    prune_below = sel.prune_below
    least_important_neuron = sel.least_important_neuron
    step = sel.step
    prune_loop = loop_.run  # the node-pruning loop's one rule (core/prune_loop.py)

    # --------------------------------------------------------------------- history
    def undo(self) -> str | None:
        """Undo the last step; returns its label (None when there is nothing to undo)."""
        return self.editor.move("undo")

    def redo(self) -> str | None:
        """Redo the next step; returns its label."""
        return self.editor.move("redo")

    def goto(self, index: int) -> None:
        """Undo or redo until ``index`` steps are applied (0 = the unpruned model)."""
        self.editor.goto(index)

    # --------------- calibration, export, training, analyses, plans, heads: the functions of session_verbs
    calibration = property(verbs.calibration)
    set_calib_data = verbs.set_calib_data
    calibration_info = verbs.calibration_info
    memory = verbs.memory
    export = verbs.export
    finetune = verbs.finetune
    train = verbs.train
    reinitialize = verbs.reinitialize
    sensitivity = verbs.sensitivity
    knockout = verbs.knockout
    compare_criteria = verbs.compare_criteria
    sweep = verbs.sweep
    allocate = verbs.allocate
    apply_allocation = verbs.apply_allocation
    plans = verbs.plans
    switch_plan = verbs.switch_plan
    rename_plan = verbs.rename_plan
    plan_summaries = verbs.plan_summaries
    attention_heads = verbs.attention_heads
    head_mask = verbs.head_mask
    head_scores = verbs.head_scores
    prune_heads = verbs.prune_heads
    restore_heads = verbs.restore_heads
