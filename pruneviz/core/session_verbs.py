"""The session's verbs over the modules that build on it: calibration, memory, export, training,
analyses, plans and attention heads.

Each verb is one line over its module, imported when the verb is first used (those modules read
and edit the session through its public verbs, so they are loaded after it, never by it at import
time). :class:`~pruneviz.core.session.Session`'s verbs of the same names are these functions (it
holds no state of theirs: what they change lives in the session's parts).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .data import EvalData


# ------------------------------------------------ calibration (core/calibration.py)
def set_calib_data(session, data) -> None:
    """Calibrate on ``data`` (a DATA spec or EvalData; None: the default) from now on."""
    session.calib.set(data)


def calibration(session) -> EvalData | None:
    """The data data-driven scores, sensitivity, knockout, allocation and compensation use:
    ``calib_data`` when given, else the training data where known, else the evaluation data
    (with a notice: that inflates the figures); see :mod:`pruneviz.core.calibration`."""
    return session.calib.data()


def calibration_info(session) -> dict | None:
    """``{"spec", "samples"}`` of :attr:`calibration` for reports (None without any)."""
    return session.calib.info()


def memory(session) -> dict[str, int]:
    """Bytes held by masks + original values, history (in memory), and the activation cache;
    ``history_disk``: weight deltas of the history written to disk past the budget."""
    from .deltas import disk_bytes

    return {"masks": session.masks.nbytes(), "history": session.history.nbytes(), "cache": session.cache.nbytes, "history_disk": disk_bytes(session.history)}


# ---------------------------------------------------------------- export
def export(session, path, format: str = "state_dict", shrink: bool = False, report: str | None = None) -> dict:
    """Write the pruned model (``state_dict``, ``safetensors``, ``pt2``, ``onnx``); ``shrink``
    removes pruned neurons physically. With ``report``, also write the JSON report. Returns the report."""
    from . import export as ex

    return ex.export_session(session, path, format=format, shrink=shrink, report_path=report)


# ------------------------------------------------------- training (issue 8)
def finetune(session, epochs: int = 1, lr: float | None = None, data=None, optimizer: str = "adam", batch_size: int | None = None, cancel=None, allow_divergence: bool = False):
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

    return training.finetune(session, epochs, lr, data, optimizer, batch_size, cancel, allow_divergence)


def train(session, schedule: str, target_sparsity: float, epochs: int, method: str = "magnitude", lr: float | None = None, data=None, from_scratch: bool = False, cancel=None, optimizer: str = "adam", batch_size: int | None = None, allow_divergence: bool = False):
    """Generator like :meth:`finetune` for a pruning schedule reaching ``target_sparsity`` per
    layer: ``before`` (prune at the start by magnitude or SNIP, then train), ``during`` (Zhu &
    Gupta's cubic gradual pruning), ``after`` (train dense, prune once, fine-tune), ``regrow``
    (RigL: prune, then drop and regrow at constant sparsity), ``granet`` (regrow with a gradual
    start). ``from_scratch`` re-initialises the weights first (same undo step)."""
    from . import schedules

    return schedules.train(session, schedule, target_sparsity, epochs, method, lr, data, from_scratch, cancel, optimizer, batch_size, allow_divergence)


def reinitialize(session, seed: int = 0) -> str:
    """Fresh weights from each layer's initialiser (seeded), masks kept; one undo step. Returns its label."""
    from . import training

    return training.reinitialize(session, seed)


# ---------------------------------------------- analysis (core/analysis.py, core/allocation.py)
def sensitivity(session, layers=None, levels=None, granularity: str = "weight", method: str = "magnitude", cancel=None, ray=None):
    """Generator: each selected layer pruned alone at each level and evaluated; returns the
    summary dict. See :func:`pruneviz.core.analysis.sensitivity`."""
    from . import analysis

    return analysis.sensitivity(session, layers, levels, granularity, method, cancel, ray)


def knockout(session, layer: str, cancel=None, methods=None, ray=None):
    """Generator: each neuron of ``layer`` removed alone and evaluated, with each criterion's
    faithfulness; see :func:`pruneviz.core.analysis.knockout`."""
    from . import analysis

    return analysis.knockout(session, layer, methods, cancel, ray)


def compare_criteria(session, layer: str, method_a: str, method_b: str, granularity: str = "weight", k: int | None = None, cancel=None):
    """Generator: two criteria side by side on ``layer``; see :func:`pruneviz.core.analysis.compare`."""
    from . import analysis

    return analysis.compare(session, layer, method_a, method_b, granularity, k, cancel)


def sweep(session, levels=None, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", cancel=None, ray=None, layers=None):
    """Generator: one-shot prunes at each level from the current state (unchanged) and their
    accuracy and loss; see :func:`pruneviz.core.analysis.sweep`."""
    from . import analysis

    return analysis.sweep(session, levels, scope, granularity, method, layers, cancel, ray)


def allocate(session, target_sparsity: float, sensitivity: dict | None = None, method: str = "magnitude", levels=None, ray=None) -> dict[str, float]:
    """Per-layer sparsities reaching ``target_sparsity`` with the least predicted loss, from a
    weight sensitivity analysis (run now when not given); see :mod:`pruneviz.core.allocation`."""
    from . import allocation, analysis

    return allocation.allocate(session, target_sparsity, sensitivity or analysis.collect(session.sensitivity(None, levels, "weight", method, ray=ray)))


def apply_allocation(session, plan: dict[str, float], method: str = "magnitude") -> int:
    """Prune every layer to its sparsity in ``plan`` (lowest ``method`` first) as one undo step."""
    from . import allocation

    return allocation.apply_allocation(session, plan, method)


# ------------------------------------------------------ plans (core/plans.py)
def plans(session) -> list[dict]:
    """Every plan (branch of the history tree): ``[{"name", "steps", "labels", "current"}]``."""
    from . import plans

    return plans.plan_table(session)


def switch_plan(session, name: str) -> None:
    """Go to the end of plan ``name`` by undo and redo (the other plans are kept)."""
    from . import plans

    session.check_writable()
    plans.switch_plan(session, name)


def rename_plan(session, old: str, new: str) -> None:
    """Rename a plan (names are unique)."""
    from . import plans

    plans.rename_plan(session, old, new)


def plan_summaries(session, cancel=None):
    """Generator: sparsity, params, accuracy and loss at the end of every plan, and each plan's
    curve (those figures after every step from the start; shared steps measured once), measured
    on a copy (nothing is switched); see :func:`pruneviz.core.plans.summaries`.

    Example: ``rows = pruneviz.core.analysis.collect(s.plan_summaries()); rows[0]["curve"]``"""
    from . import plans

    return plans.summaries(session, cancel)


# ------------------------------------- attention heads (core/attention_heads.py)
def attention_heads(session) -> dict[str, int]:
    """``{attention module: number of heads}`` for the attention modules whose heads can be pruned."""
    from . import attention_heads

    return {n: u.num_heads for n, u in attention_heads.find_heads(session).items()}


def head_mask(session, layer: str) -> torch.Tensor:
    """Kept-mask [heads] of an attention module (or of the module one of its projections belongs to)."""
    from . import attention_heads

    return attention_heads.head_mask(session, attention_heads.head_unit(session, layer))


def head_scores(session, layer: str | None = None, method: str = "magnitude"):
    """One score per head (magnitude: L2 norm of its q/k/v rows; else its rows' weight scores summed)."""
    from . import attention_heads

    units = None if layer is None else [attention_heads.head_unit(session, layer)]
    out = attention_heads.scores(session, method, units)
    return next(iter(out.values())) if layer is not None else out


def prune_heads(session, layer: str, heads: Sequence[int], label: str | None = None) -> int:
    """Prune whole attention heads of ``layer`` (its q/k/v rows and output-projection columns); one undo step."""
    from . import attention_heads

    return attention_heads.prune_heads(session, layer, list(heads), label)


def restore_heads(session, layer: str, heads: Sequence[int], label: str | None = None) -> int:
    """Restore whole attention heads of ``layer`` (every weight of the head comes back); one undo step."""
    from . import attention_heads

    return attention_heads.restore_heads(session, layer, list(heads), label)
