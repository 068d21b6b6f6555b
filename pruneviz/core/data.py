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
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from pruneviz.core.errors import PrunevizError, one_line, reason

__all__ = ["EvalData", "EXTRA_KEYS", "open_data", "check_fits", "same_source"]

#: per-sample arrays a .npz / .pt may hold besides x and y; passed to the model as keywords
EXTRA_KEYS = ("decoder_input_ids", "attention_mask", "decoder_attention_mask")

_ACCEPTED = (
    "expected demo:digits, a .npz file with arrays x and y, a .pt file holding a dict of tensors "
    "x and y, or package.module:function returning a Dataset or DataLoader of (input, label) pairs"
)
_FACTORY_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")


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


_one_line = one_line
_why = reason


def _error(message: str) -> PrunevizError:
    return PrunevizError(_one_line(message))


def _shape(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


# ---------------------------------------------------------------------------------------------


def open_data(spec: str, max_bytes: int = 2 * 1024**3) -> EvalData:
    """Open ``spec`` as evaluation data. See the module docstring for the accepted forms."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise _error(f"no data given ({spec!r}): {_ACCEPTED}")
    try:
        x, y, *rest = _read(spec, int(max_bytes))
        x, y, extra = _validate(spec, x, y, int(max_bytes), rest[0] if rest else None)
    except PrunevizError:
        raise
    except (Exception, SystemExit) as exc:  # unforeseen: still one line, still our type
        raise _error(f"cannot open {spec} as evaluation data: {type(exc).__name__}: {_why(exc)}") from exc
    return EvalData(x, y, spec, extra)


def _read(spec: str, max_bytes: int) -> tuple[object, object]:
    if spec.startswith("demo:"):
        return _read_demo(spec)
    path = Path(spec)
    suffix = path.suffix.lower()
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if suffix in (".npz", ".pt", ".pth") or exists:
        if not exists:
            raise _error(f"{spec} does not exist")
        from pruneviz.core.model_io import readable_file

        size = readable_file(spec, path, "data", _ACCEPTED)
        if suffix == ".npz":
            return _read_npz(spec, path, max_bytes)
        if suffix in (".pt", ".pth"):
            if size > max_bytes:
                raise _error(f"{spec} is larger than the {_gib(max_bytes)} limit for evaluation data")
            from pruneviz.core.model_io import check_torch_zip

            # what torch.load will inflate, bounded before it does
            check_torch_zip(spec, path, max_bytes, "evaluation data", bomb_check=False)
            return _read_pt(spec, path)
        raise _error(f"cannot open {spec} as evaluation data: {_ACCEPTED}")
    if _FACTORY_RE.match(spec.strip()):
        return _read_factory(spec.strip(), max_bytes)
    raise _error(f"cannot open {spec} as evaluation data: {_ACCEPTED}")


def _read_demo(spec: str) -> tuple[object, object]:
    name = spec[len("demo:") :]
    try:
        from pruneviz.core import demo
    except Exception as exc:
        raise _error(f"the demo data is not available in this install ({_why(exc)})") from exc
    if name not in demo.DATA_NAMES:
        raise _error(f"unknown demo data {name!r}: choose one of {', '.join('demo:' + n for n in demo.DATA_NAMES)}")
    try:
        return demo.load_digits(demo.DATA_SPLITS[name])
    except PrunevizError:
        raise
    except Exception as exc:
        raise _error(f"loading {spec} failed: {type(exc).__name__}: {_why(exc)}") from exc


def _npy_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            shape, _fortran, dtype = np.lib.format._read_array_header(handle, version)
    return tuple(shape), np.dtype(dtype)


def _npz_key(name: str) -> str:
    """The array name numpy gives a member: ``x.npy`` and ``x`` are both ``npz["x"]``."""
    return name[:-4] if name.endswith(".npy") else name


def _read_npz(spec: str, path: Path, max_bytes: int) -> tuple[object, object, dict]:
    from pruneviz.core.model_io import check_zip

    # Every member bounded and no array name twice, before anything is inflated: numpy reads
    # npz["x"] from a member "x" ahead of "x.npy", so a shadowing member must not exist.
    summary = check_zip(spec, path, max_bytes, "evaluation data", key=_npz_key, bomb_check=False)
    members = {_npz_key(info.filename): info for info in summary.infos if info.filename.endswith(".npy")}
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = sorted(members)
            label = "y"
            if "labels" in members:  # the Hugging Face name for the per-token labels
                if "y" in members:
                    raise _error(f"{spec} holds both y and labels; keep one (labels is another name for y)")
                label = "labels"
            has_label = label in members
            missing = [n for n in ("x",) if n not in members] + ([] if has_label else ["y"])
            if missing == ["y"] and _token_header(*_npy_header(archive, members["x"])):
                missing = []  # token ids alone: the labels are the next tokens
            if missing:
                found = ", ".join(arrays) if arrays else "none"
                raise _error(f"{spec} must hold arrays x (inputs) and y (labels); it has {found}")
            extras = [k for k in EXTRA_KEYS if k in members]
            names = ("x", label, *extras) if has_label else ("x", *extras)
            total = 0
            for name in names:
                shape, dtype = _npy_header(archive, members[name])
                if dtype.hasobject:
                    raise _error(f"{spec}: array {name} holds Python objects; save numeric arrays")
                total += math.prod(shape) * dtype.itemsize
            if total > max_bytes:
                raise _error(
                    f"{spec} holds {_gib(total)} of arrays, over the {_gib(max_bytes)} limit for evaluation data"
                )
            loaded = {}
            for name in names:  # the very members checked above, by their directory entry
                with archive.open(members[name]) as handle:
                    loaded[name] = np.lib.format.read_array(handle, allow_pickle=False)
    except PrunevizError:
        raise
    except Exception as exc:
        raise _error(f"{spec} is not a valid .npz file or is damaged ({_why(exc)})") from exc
    return loaded["x"], loaded.get(label), {k: loaded[k] for k in extras}


def _read_pt(spec: str, path: Path) -> tuple[object, object]:
    try:
        obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        from pruneviz.core.model_io import pickle_imports

        imports = pickle_imports(path)
        if imports:
            shown = ", ".join(imports[:5]) + (f" and {len(imports) - 5} more" if len(imports) > 5 else "")
            raise _error(
                f"{spec} holds pickled Python objects (it imports {shown}); evaluation data must be "
                "a dict of tensors, torch.save({'x': x, 'y': y}, FILE), and is never unpickled"
            ) from exc
        raise _error(f"{spec} is not a PyTorch file or is damaged ({_why(exc)})") from exc
    if not isinstance(obj, Mapping):
        raise _error(f"{spec} holds a {type(obj).__name__}; expected a dict with tensors x and y")
    if "labels" in obj:
        if "y" in obj:
            raise _error(f"{spec} holds both y and labels; keep one (labels is another name for y)")
        obj = {**obj, "y": obj["labels"]}
    extra = {k: obj[k] for k in EXTRA_KEYS if k in obj}
    missing = [k for k in ("x", "y") if k not in obj]
    x = obj.get("x")
    if missing == ["y"] and isinstance(x, torch.Tensor) and _token_header(tuple(x.shape), x.dtype):
        return x, None, extra
    if missing:
        keys = ", ".join(sorted(str(k) for k in obj.keys())[:8]) or "nothing"
        raise _error(f"{spec} must hold a dict with tensors x (inputs) and y (labels); it has {keys}")
    return obj["x"], obj["y"], extra


# ---------------------------------------------------------------------------------------------
# Factories: Dataset / DataLoader


def _read_factory(spec: str, max_bytes: int) -> tuple[object, object]:
    from pruneviz.core.model_io import load_factory

    obj = load_factory(spec)()
    if isinstance(obj, torch.utils.data.DataLoader):
        return _collect(spec, obj, batched=True, max_bytes=max_bytes)
    if isinstance(obj, torch.utils.data.IterableDataset):
        return _collect(spec, obj, batched=False, max_bytes=max_bytes)
    if isinstance(obj, torch.utils.data.Dataset) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, (str, bytes, Mapping))
    ):
        try:
            n = len(obj)  # type: ignore[arg-type]
        except Exception as exc:
            raise _error(f"the dataset from {spec} has no usable length ({_why(exc)})") from exc
        samples = (obj[i] for i in range(n))  # type: ignore[index]
        return _collect(spec, samples, batched=False, max_bytes=max_bytes)
    raise _error(
        f"{spec} returned a {type(obj).__name__}; expected a torch Dataset or DataLoader of (input, label) pairs"
    )


def _as_tensor(value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(_native(value))
    return torch.as_tensor(value)


def _collect(spec: str, source: Iterable, *, batched: bool, max_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    total = 0
    index = 0
    what = "batch" if batched else "sample"
    iterator = iter(_guarded(spec, source, what))
    for item in iterator:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise _error(
                f"{what} {index} from {spec} is a {type(item).__name__}"
                f"{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''}; expected an (input, label) pair"
            )
        try:
            x = _as_tensor(item[0])
            y = _as_tensor(item[1])
        except Exception as exc:
            raise _error(f"{what} {index} from {spec} is not numeric ({_why(exc)})") from exc
        if batched:
            if x.dim() == 0 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                raise _error(
                    f"batch {index} from {spec} has inputs {_shape(x.shape)} and labels {_shape(y.shape)}; "
                    "expected [B, ...] and [B]"
                )
        elif y.dim() != 0 and y.numel() != 1:
            raise _error(f"sample {index} from {spec} has a label of shape {_shape(y.shape)}; expected a single integer")
        total += x.numel() * x.element_size() + max(y.numel(), 1) * 8
        if total > max_bytes:
            raise _error(f"the data from {spec} is larger than the {_gib(max_bytes)} limit for evaluation data")
        xs.append(x)
        ys.append(y.reshape(-1) if batched else y.reshape(()))
        index += 1
    if not xs:
        raise _error(f"the data from {spec} is empty")
    try:
        if batched:
            return torch.cat(xs), torch.cat(ys)
        return torch.stack(xs), torch.stack(ys)
    except Exception as exc:
        first = next((t.shape for t in xs if t.shape != xs[0].shape), None)
        detail = f"{_shape(xs[0].shape)} and {_shape(first)}" if first is not None else _why(exc)
        raise _error(f"the {what}s from {spec} do not combine: shapes or dtypes differ ({detail})") from exc


def _guarded(spec: str, source: Iterable, what: str):
    """Iterate ``source``, turning its exceptions into PrunevizError."""
    try:
        iterator = iter(source)
    except Exception as exc:
        raise _error(f"the data from {spec} cannot be iterated ({_why(exc)})") from exc
    index = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except PrunevizError:
            raise
        except (Exception, SystemExit) as exc:
            raise _error(f"reading {what} {index} from {spec} raised {type(exc).__name__}: {_why(exc)}") from exc
        yield item
        index += 1


# ---------------------------------------------------------------------------------------------
# Validation


def _native(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _to_tensor(spec: str, name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise _error(f"{spec}: {name} has dtype {value.dtype}, which is not numeric")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            value = value.astype(np.int64)
        return torch.from_numpy(_native(value))
    raise _error(f"{spec}: {name} is a {type(value).__name__}, not an array or tensor")


def _token_header(shape: tuple, dtype) -> bool:
    """Integer ids of shape [N, T] with T >= 2: language-model data."""
    kind = getattr(dtype, "kind", None)
    integer = kind in ("i", "u") if kind is not None else (isinstance(dtype, torch.dtype) and not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool)
    return integer and len(shape) == 2 and shape[1] >= 2


def _validate(spec: str, x_in: object, y_in: object, max_bytes: int, extra_in: Mapping | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    x = _to_tensor(spec, "x", x_in)
    extra = {k: _to_tensor(spec, k, v) for k, v in (extra_in or {}).items()}
    if y_in is None:  # token ids alone: predict each next token
        if extra:
            raise _error(f"{spec} holds {', '.join(extra)} but no labels; add labels (or y), one per decoder token")
        x, y_in = x[:, :-1], x[:, 1:]
    y = _to_tensor(spec, "y", y_in)
    if x.is_complex():
        raise _error(f"{spec}: inputs x are complex ({x.dtype}); expected real numbers")
    if x.dim() < 2:
        raise _error(
            f"{spec}: inputs x have shape {_shape(x.shape)}; expected a sample axis and at least one "
            "feature axis, e.g. [N, 64]"
        )
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    decoder = extra.get("decoder_input_ids")
    for name, v in extra.items():  # every extra array goes with x, sample by sample
        if v.dim() == 0 or v.shape[0] != x.shape[0]:
            raise _error(f"{spec}: {name} has shape {_shape(v.shape)} but x has {x.shape[0]} samples; its first axis must be the samples too")
        if v.is_floating_point() or v.is_complex():
            raise _error(f"{spec}: {name} is {str(v.dtype).replace('torch.', '')}; expected integers")
    if decoder is not None:  # encoder-decoder: one label per decoder token
        tokens = y.dim() == 2 and y.shape == decoder.shape
        if not tokens:
            raise _error(f"{spec}: labels have shape {_shape(y.shape)} but decoder_input_ids {_shape(decoder.shape)}; expected one label per decoder token")
    else:
        tokens = y.dim() == 2 and x.dim() == 2 and y.shape == x.shape and not x.is_floating_point()
    if y.dim() != 1 and not tokens:
        raise _error(f"{spec}: labels y have shape {_shape(y.shape)}; expected one integer per sample, [N] (or per token, [N, T], for token ids x)")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise _error(f"{spec}: labels y are {str(y.dtype).replace('torch.', '')}; expected integer class indices")
    if x.shape[0] != y.shape[0]:
        raise _error(f"{spec}: x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise _error(f"{spec} holds no samples")
    if x.numel() * x.element_size() + (y.numel() + sum(v.numel() for v in extra.values())) * 8 > max_bytes:
        raise _error(f"{spec} is larger than the {_gib(max_bytes)} limit for evaluation data")
    y = y.to(torch.int64)
    extra = {k: v.to(torch.int64).contiguous() for k, v in extra.items()}
    scored = y[y != -100] if tokens else y  # -100: a padding token, not a prediction
    if tokens and scored.numel() == 0:
        raise _error(f"{spec}: every label is -100 (padding); nothing to score")
    smallest = int(scored.min())
    if smallest < 0:
        raise _error(f"{spec}: labels must be class indices >= 0{' (or -100 for padding)' if tokens else ''}, but one is {smallest}")
    if x.dtype == torch.float64:
        x = x.to(torch.float32)
    if x.is_floating_point():
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise _error(f"{spec}: inputs x contain NaN or infinite values (first in sample {first})")
    return x.contiguous(), y.contiguous(), extra


def check_fits(model: torch.nn.Module, data: EvalData) -> None:
    """Run ``model`` on the first two samples and check it returns [n, C] logits covering the labels.

    Raises PrunevizError: the data is empty; the model raises on it ("data of shape [64] does not
    fit the model: ..."); the output is not [n, C]; or a label is >= C.
    """
    if len(data) == 0:
        raise _error(f"the data {data.spec} holds no samples")
    sample_shape = _shape(data.x.shape[1:])
    x = data.x[:2]
    from .losses import forward

    def run(batch: torch.Tensor) -> object:
        with torch.inference_mode():
            return forward(model, batch, {k: v[: len(batch)] for k, v in data.extra.items()})

    try:
        out = run(x)
    except (Exception, SystemExit) as exc:
        message = f"data of shape {sample_shape} does not fit the model: {_why(exc)}"
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
        raise _error(message) from exc
    from .outputs import logits

    try:
        out = logits(out)
    except PrunevizError:
        raise _error(f"the model returns a {type(out).__name__}; expected a tensor of logits [n, classes] (or an object with .logits)") from None
    n = x.shape[0]
    if data.y.dim() == 2:  # token labels: logits per token [n, T, vocab]
        if out.dim() != 3 or tuple(out.shape[:2]) != (n, data.y.shape[1]):
            raise _error(
                f"the model's output has shape {_shape(out.shape)} for {n} sequences of {data.y.shape[1]} tokens; "
                f"expected logits per token, [{n}, {data.y.shape[1]}, vocabulary]"
            )
        out = out.reshape(-1, out.shape[-1])
    elif out.dim() != 2 or out.shape[0] != n:
        raise _error(
            f"the model's output has shape {_shape(out.shape)} for {n} samples of shape {sample_shape}; "
            f"expected logits of shape [{n}, classes]"
        )
    classes = int(out.shape[1])
    if classes < 1:
        raise _error("the model has 0 outputs per sample; expected one logit per class")
    largest = int(data.y.max())
    if largest >= classes:
        raise _error(f"labels go up to {largest} but the model has {classes} outputs")


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
