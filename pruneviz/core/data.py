"""Open evaluation data (inputs and integer labels) safely, and check that it fits a model.

Accepted specs (:func:`open_data`):

* ``demo:digits`` - the held-out split of the built-in digits set; ``demo:digits-train`` - the
  training split it leaves out (the other 80 %).
* ``FILE.npz`` with arrays ``x`` (inputs, first axis = samples) and ``y`` (integer labels), read
  with ``numpy.lib.format.read_array(allow_pickle=False)``: no Python objects, so no code runs.
  Every member's uncompressed size counts against ``max_bytes`` before any is inflated, and a
  name stored twice (or as both ``x`` and ``x.npy``) is refused.
* ``FILE.pt`` / ``FILE.pth`` holding ``{"x": tensor, "y": tensor}``, read with
  ``torch.load(weights_only=True)``, after the uncompressed sizes of its zip records are checked
  against ``max_bytes``. Data files are never unpickled beyond that (there is no ``--trust`` for
  data).
* Token data for language models: ``x`` of integer token ids ``[N, T]`` and no ``y`` (the labels
  are the next tokens: inputs ``x[:, :-1]``, labels ``x[:, 1:]``), or ``y`` of shape ``[N, T]``
  (one label per token). Evaluation then reports next-token loss, perplexity and token accuracy.
* Encoder–decoder data (T5, Whisper, BART-style models): ``x`` (the encoder input: token ids or
  features), ``decoder_input_ids`` ``[N, T]`` and ``labels`` ``[N, T]`` (``labels`` is another
  name for ``y``; ``-100`` marks a padding position that is not scored). The extra arrays named in
  :data:`EXTRA_KEYS` are kept per sample in :attr:`EvalData.extra`, cut with every batch
  (:meth:`EvalData.rows`) and passed to the model as keyword arguments
  (:func:`pruneviz.core.losses.forward`).
* ``package.module:function`` - a factory (imported like ``--arch``, see
  :func:`pruneviz.core.model_io.load_factory`) returning a ``torch.utils.data.Dataset`` or
  ``DataLoader`` of ``(input, label)`` pairs; it is read into memory up to ``max_bytes``.

Every problem raises :class:`~pruneviz.core.errors.PrunevizError` with a one-line message.

The readers live in :mod:`.data_read` and the checks in :mod:`.data_validate`; this module holds
:class:`EvalData` and the entry points.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from pruneviz.core.errors import PrunevizError, reason

from .data_read import ACCEPTED, read
from .data_validate import EXTRA_KEYS, error, shape_text, validate

__all__ = ["EvalData", "EXTRA_KEYS", "open_data", "check_fits", "same_source"]


@dataclasses.dataclass
class EvalData:
    """Evaluation inputs and labels, all in memory on the CPU."""

    x: torch.Tensor
    """All inputs, first axis = samples (float32, or the data set's own dtype if not floating)."""
    y: torch.Tensor
    """int64 labels, shape [N]."""
    spec: str
    extra: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Per-sample keyword arrays for the model (:data:`EXTRA_KEYS`), first axis = samples."""

    def rows(self, index) -> "EvalData":
        """The samples ``index`` (a slice or index tensor): inputs, labels and extra arrays alike.
        Every place that cuts batches or subsets goes through this, so the extra arrays stay
        aligned with ``x``."""
        return EvalData(self.x[index], self.y[index], self.spec, {k: v[index] for k, v in self.extra.items()})

    def to(self, device) -> "EvalData":
        """The same data on ``device``."""
        return EvalData(self.x.to(device), self.y.to(device), self.spec, {k: v.to(device) for k, v in self.extra.items()})

    @property
    def tokens(self) -> bool:
        """True for language-model data: labels per token, ``y`` of shape [N, T]."""
        return self.y.dim() == 2

    @property
    def num_classes(self) -> int:
        """Largest label + 1 (0 when empty)."""
        return int(self.y.max()) + 1 if self.y.numel() else 0

    def __len__(self) -> int:
        return int(self.y.shape[0])


def open_data(spec: str, max_bytes: int = 2 * 1024**3) -> EvalData:
    """Open ``spec`` as evaluation data. See the module docstring for the accepted forms."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise error(f"no data given ({spec!r}): {ACCEPTED}")
    try:
        x, y, *rest = read(spec, int(max_bytes))
        x, y, extra = validate(spec, x, y, int(max_bytes), rest[0] if rest else None)
    except PrunevizError:
        raise
    except (Exception, SystemExit) as exc:  # unforeseen: still one line, still our type
        raise error(f"cannot open {spec} as evaluation data: {type(exc).__name__}: {reason(exc)}") from exc
    return EvalData(x, y, spec, extra)


def check_fits(model: torch.nn.Module, data: EvalData) -> None:
    """Run ``model`` on the first two samples and check it returns [n, C] logits covering the labels.

    Raises PrunevizError: the data is empty; the model raises on it ("data of shape [64] does not
    fit the model: ..."); the output is not [n, C]; or a label is >= C.
    """
    if len(data) == 0:
        raise error(f"the data {data.spec} holds no samples")
    sample_shape = shape_text(data.x.shape[1:])
    x = data.x[:2]
    from .losses import forward

    def run(batch: torch.Tensor) -> object:
        with torch.inference_mode():
            return forward(model, batch, {k: v[: len(batch)] for k, v in data.extra.items()})

    try:
        out = run(x)
    except (Exception, SystemExit) as exc:
        message = f"data of shape {sample_shape} does not fit the model: {reason(exc)}"
        if x.shape[0] > 1:
            try:
                run(x[:1])
            except (Exception, SystemExit):
                pass
            else:
                message = (
                    f"the model only runs on one sample at a time (data of shape {sample_shape}); it was "
                    "probably exported with a fixed batch size: re-export it with "
                    "dynamic_shapes=({0: torch.export.Dim('batch')},)"
                )
        raise error(message) from exc
    from .outputs import logits

    try:
        out = logits(out)
    except PrunevizError:
        raise error(f"the model returns a {type(out).__name__}; expected a tensor of logits [n, classes] (or an object with .logits)") from None
    n = x.shape[0]
    if data.y.dim() == 2:  # token labels: logits per token [n, T, vocab]
        if out.dim() != 3 or tuple(out.shape[:2]) != (n, data.y.shape[1]):
            raise error(
                f"the model's output has shape {shape_text(out.shape)} for {n} sequences of {data.y.shape[1]} tokens; "
                f"expected logits per token, [{n}, {data.y.shape[1]}, vocabulary]"
            )
        out = out.reshape(-1, out.shape[-1])
    elif out.dim() != 2 or out.shape[0] != n:
        raise error(
            f"the model's output has shape {shape_text(out.shape)} for {n} samples of shape {sample_shape}; "
            f"expected logits of shape [{n}, classes]"
        )
    classes = int(out.shape[1])
    if classes < 1:
        raise error("the model has 0 outputs per sample; expected one logit per class")
    largest = int(data.y.max())
    if largest >= classes:
        raise error(f"labels go up to {largest} but the model has {classes} outputs")


def same_source(a: str | None, b: str | None) -> bool:
    """True when two data specs name the same data: the same demo split, the same file (through
    links and relative paths), or the same factory. Training on the evaluation data makes the
    held-out accuracy a training accuracy, so callers warn about it."""
    if not a or not b:
        return False
    if a.strip() == b.strip():
        return True
    try:
        pa, pb = Path(a), Path(b)
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except (OSError, ValueError):
        return False
