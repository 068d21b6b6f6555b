"""The one task loss that training, schedules, data-driven scores, sensitivity and evaluation share.

A model's output is read by :func:`pruneviz.core.outputs.logits` (a tensor, ``.logits``, a
``"logits"`` entry, or the first element of a tuple), then:

* classification: logits ``[n, C]`` against labels ``[n]``;
* language models (next-token) and encoder–decoder models: logits ``[n, T, V]`` against labels
  ``[n, T]``, every token a prediction. Labels of ``-100`` are skipped, the Hugging Face
  convention, so the figure equals the model's own ``loss`` when it is given the same labels.

:func:`forward` calls the model the way the data asks: ``model(x)``, or, for encoder–decoder
data, ``model(x, decoder_input_ids=d)`` with the per-sample ``extra`` arrays sliced alongside
``x``. Use it wherever a model runs on evaluation or training data (compensation calibration
too), so every family is called the same way.

Example::

    loss = losses.task_loss(losses.forward(model, xb, extra), yb)      # mean, for training
    total = losses.task_loss(out, yb, reduction="sum")                 # summed, for scores
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from .outputs import logits

#: labels with this value are not predictions (padding), as in Hugging Face's losses
IGNORE_INDEX = -100


def flat(out: object, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels as ``[m, C]`` and ``[m]``: per-token predictions are flattened."""
    z = logits(out)
    if z.dim() > 2 and y.dim() == z.dim() - 1:
        return z.reshape(-1, z.shape[-1]), y.reshape(-1)
    return z, y


def task_loss(out: object, y: torch.Tensor | None, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of a model output against its labels (see the module docstring).

    ``out``: whatever the model returned. ``y``: class labels ``[n]`` or token labels ``[n, T]``;
    with ``y=None`` the model's own ``loss`` (an output computed with labels passed the Hugging
    Face way) is returned. ``reduction``: ``"mean"`` over the predictions, or ``"sum"``."""
    if y is None:
        own = getattr(out, "loss", None)
        if own is None and isinstance(out, Mapping):
            own = out.get("loss")
        if not isinstance(own, torch.Tensor):
            from .errors import PrunevizError

            raise PrunevizError("no labels given and the model output has no loss of its own")
        return own
    z, t = flat(out, y)
    return F.cross_entropy(z.float(), t, reduction=reduction, ignore_index=IGNORE_INDEX)


def take(extra: Mapping[str, torch.Tensor] | None, index) -> dict[str, torch.Tensor]:
    """The rows ``index`` (a slice or index tensor) of each per-sample array in ``extra``."""
    return {k: v[index] for k, v in (extra or {}).items()}


def forward(model: torch.nn.Module, x: torch.Tensor, extra: Mapping[str, torch.Tensor] | None = None) -> object:
    """``model(x)``, with the per-sample keyword arrays of the data (``decoder_input_ids``) when
    there are any; ``extra`` holds exactly the rows that go with ``x``."""
    return model(x, **extra) if extra else model(x)


def fill_missing(model: torch.nn.Module, extra: Mapping[str, torch.Tensor] | None):
    """For calls that pass the input alone (tracing the coupling graph, activity chains, head
    and neuron shrinking, programs exported from an example): a forward pre-hook on ``model``
    that adds the first sample's ``extra`` arrays, repeated to the batch, when a call lacks
    them. Calls through :func:`forward` pass their own rows and are left alone. Returns the
    hook's handle (``.remove()`` it), or None when there are no extra arrays."""
    if not extra:
        return None
    return model.register_forward_pre_hook(_FillMissing({k: v[:1].detach().cpu().clone() for k, v in extra.items()}), with_kwargs=True)


class _FillMissing:
    """The pre-hook of :func:`fill_missing`: a class, not a closure, so the model still pickles
    (copies sent to worker processes)."""

    def __init__(self, row: dict[str, torch.Tensor]):
        self.row = row

    def __call__(self, module, args, kwargs):
        if len(args) != 1 or not isinstance(args[0], torch.Tensor) or any(k in kwargs for k in self.row):
            return None
        x = args[0]
        return args, {**kwargs, **{k: v.to(x.device).repeat(x.shape[0], *([1] * (v.dim() - 1))) for k, v in self.row.items()}}


def batch_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, extra=None, reduction: str = "mean") -> torch.Tensor:
    """The task loss of ``model`` on one batch: :func:`forward`, then :func:`task_loss`."""
    return task_loss(forward(model, x, extra), y, reduction)
