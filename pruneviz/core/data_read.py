"""Reading evaluation data from what the user named: the demo splits, ``.npz`` and ``.pt`` files,
and ``package.module:function`` factories (see :mod:`pruneviz.core.data` for the accepted forms).

:func:`read` returns the raw arrays or tensors ``(x, y, extra)``; :func:`pruneviz.core.data_validate.validate`
checks them. Every file is bounded before anything is inflated and never unpickled.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from pruneviz.core.errors import PrunevizError, reason

from .data_validate import EXTRA_KEYS, error, gib, native, shape_text, token_header

__all__ = ["ACCEPTED", "read"]

ACCEPTED = (
    "expected demo:digits, a .npz file with arrays x and y, a .pt file holding a dict of tensors "
    "x and y, or package.module:function returning a Dataset or DataLoader of (input, label) pairs"
)
_FACTORY_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")


def read(spec: str, max_bytes: int) -> tuple[object, object]:
    """The raw ``(x, y[, extra])`` that ``spec`` names, bounded by ``max_bytes``; not yet validated."""
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
            raise error(f"{spec} does not exist")
        from pruneviz.core.model_io import readable_file

        size = readable_file(spec, path, "data", ACCEPTED)
        if suffix == ".npz":
            return _read_npz(spec, path, max_bytes)
        if suffix in (".pt", ".pth"):
            if size > max_bytes:
                raise error(f"{spec} is larger than the {gib(max_bytes)} limit for evaluation data")
            from pruneviz.core.model_io import check_torch_zip

            # what torch.load will inflate, bounded before it does
            check_torch_zip(spec, path, max_bytes, "evaluation data", bomb_check=False)
            return _read_pt(spec, path)
        raise error(f"cannot open {spec} as evaluation data: {ACCEPTED}")
    if _FACTORY_RE.match(spec.strip()):
        return _read_factory(spec.strip(), max_bytes)
    raise error(f"cannot open {spec} as evaluation data: {ACCEPTED}")


def _read_demo(spec: str) -> tuple[object, object]:
    name = spec[len("demo:") :]
    try:
        from pruneviz.core import demo
    except Exception as exc:
        raise error(f"the demo data is not available in this install ({reason(exc)})") from exc
    if name not in demo.DATA_NAMES:
        raise error(f"unknown demo data {name!r}: choose one of {', '.join('demo:' + n for n in demo.DATA_NAMES)}")
    try:
        return demo.load_digits(demo.DATA_SPLITS[name])
    except PrunevizError:
        raise
    except Exception as exc:
        raise error(f"loading {spec} failed: {type(exc).__name__}: {reason(exc)}") from exc


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
                    raise error(f"{spec} holds both y and labels; keep one (labels is another name for y)")
                label = "labels"
            has_label = label in members
            missing = [n for n in ("x",) if n not in members] + ([] if has_label else ["y"])
            if missing == ["y"] and token_header(*_npy_header(archive, members["x"])):
                missing = []  # token ids alone: the labels are the next tokens
            if missing:
                found = ", ".join(arrays) if arrays else "none"
                raise error(f"{spec} must hold arrays x (inputs) and y (labels); it has {found}")
            extras = [k for k in EXTRA_KEYS if k in members]
            names = ("x", label, *extras) if has_label else ("x", *extras)
            total = 0
            for name in names:
                shape, dtype = _npy_header(archive, members[name])
                if dtype.hasobject:
                    raise error(f"{spec}: array {name} holds Python objects; save numeric arrays")
                total += math.prod(shape) * dtype.itemsize
            if total > max_bytes:
                raise error(
                    f"{spec} holds {gib(total)} of arrays, over the {gib(max_bytes)} limit for evaluation data"
                )
            loaded = {}
            for name in names:  # the very members checked above, by their directory entry
                with archive.open(members[name]) as handle:
                    loaded[name] = np.lib.format.read_array(handle, allow_pickle=False)
    except PrunevizError:
        raise
    except Exception as exc:
        raise error(f"{spec} is not a valid .npz file or is damaged ({reason(exc)})") from exc
    return loaded["x"], loaded.get(label), {k: loaded[k] for k in extras}


def _read_pt(spec: str, path: Path) -> tuple[object, object]:
    try:
        obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        from pruneviz.core.model_io import pickle_imports

        imports = pickle_imports(path)
        if imports:
            shown = ", ".join(imports[:5]) + (f" and {len(imports) - 5} more" if len(imports) > 5 else "")
            raise error(
                f"{spec} holds pickled Python objects (it imports {shown}); evaluation data must be "
                "a dict of tensors, torch.save({'x': x, 'y': y}, FILE), and is never unpickled"
            ) from exc
        raise error(f"{spec} is not a PyTorch file or is damaged ({reason(exc)})") from exc
    if not isinstance(obj, Mapping):
        raise error(f"{spec} holds a {type(obj).__name__}; expected a dict with tensors x and y")
    if "labels" in obj:
        if "y" in obj:
            raise error(f"{spec} holds both y and labels; keep one (labels is another name for y)")
        obj = {**obj, "y": obj["labels"]}
    extra = {k: obj[k] for k in EXTRA_KEYS if k in obj}
    missing = [k for k in ("x", "y") if k not in obj]
    x = obj.get("x")
    if missing == ["y"] and isinstance(x, torch.Tensor) and token_header(tuple(x.shape), x.dtype):
        return x, None, extra
    if missing:
        keys = ", ".join(sorted(str(k) for k in obj.keys())[:8]) or "nothing"
        raise error(f"{spec} must hold a dict with tensors x (inputs) and y (labels); it has {keys}")
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
            raise error(f"the dataset from {spec} has no usable length ({reason(exc)})") from exc
        samples = (obj[i] for i in range(n))  # type: ignore[index]
        return _collect(spec, samples, batched=False, max_bytes=max_bytes)
    raise error(
        f"{spec} returned a {type(obj).__name__}; expected a torch Dataset or DataLoader of (input, label) pairs"
    )


def _as_tensor(value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(native(value))
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
            raise error(
                f"{what} {index} from {spec} is a {type(item).__name__}"
                f"{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''}; expected an (input, label) pair"
            )
        try:
            x = _as_tensor(item[0])
            y = _as_tensor(item[1])
        except Exception as exc:
            raise error(f"{what} {index} from {spec} is not numeric ({reason(exc)})") from exc
        if batched:
            if x.dim() == 0 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                raise error(
                    f"batch {index} from {spec} has inputs {shape_text(x.shape)} and labels {shape_text(y.shape)}; "
                    "expected [B, ...] and [B]"
                )
        elif y.dim() != 0 and y.numel() != 1:
            raise error(f"sample {index} from {spec} has a label of shape {shape_text(y.shape)}; expected a single integer")
        total += x.numel() * x.element_size() + max(y.numel(), 1) * 8
        if total > max_bytes:
            raise error(f"the data from {spec} is larger than the {gib(max_bytes)} limit for evaluation data")
        xs.append(x)
        ys.append(y.reshape(-1) if batched else y.reshape(()))
        index += 1
    if not xs:
        raise error(f"the data from {spec} is empty")
    try:
        if batched:
            return torch.cat(xs), torch.cat(ys)
        return torch.stack(xs), torch.stack(ys)
    except Exception as exc:
        first = next((t.shape for t in xs if t.shape != xs[0].shape), None)
        detail = f"{shape_text(xs[0].shape)} and {shape_text(first)}" if first is not None else reason(exc)
        raise error(f"the {what}s from {spec} do not combine: shapes or dtypes differ ({detail})") from exc


def _guarded(spec: str, source: Iterable, what: str):
    """Iterate ``source``, turning its exceptions into PrunevizError."""
    try:
        iterator = iter(source)
    except Exception as exc:
        raise error(f"the data from {spec} cannot be iterated ({reason(exc)})") from exc
    index = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except PrunevizError:
            raise
        except (Exception, SystemExit) as exc:
            raise error(f"reading {what} {index} from {spec} raised {type(exc).__name__}: {reason(exc)}") from exc
        yield item
        index += 1
