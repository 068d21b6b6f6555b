"""Open a model from what the user named, without running code from the file unless they consented.

Accepted specs (:func:`open_model`):

* ``demo:NAME`` - a built-in demo model (:mod:`pruneviz.core.demo`).
* ``.pt`` / ``.pth`` / ``.bin`` - read with ``torch.load(..., weights_only=True)``, PyTorch's
  restricted unpickler that only rebuilds tensors and plain containers. A *state_dict* (also inside
  a ``{"state_dict": ...}``, ``{"model_state_dict": ...}`` or ``{"model": ...}`` checkpoint) needs
  ``--arch package.module:function``, a factory that builds the empty model; the weights are then
  loaded with ``strict=True``. A pickled whole module cannot be read that way: unpickling it
  imports and runs code named in the file, so it is refused with :class:`TrustRequired` (listing
  what it would import) unless ``trust=True`` / ``--trust``.
* ``.safetensors`` - plain tensors, never code; needs ``--arch`` like a state_dict.
* ``.pt2`` - a ``torch.export`` archive, see below.
* A TorchScript archive (``torch.jit.save``; any extension, recognised by its ``code/`` folder or
  ``constants.pkl``) - opened with ``torch.jit.load``. Its code is TorchScript, compiled and run by
  PyTorch's own interpreter, not Python, and its pickles are read by TorchScript's C++ unpickler,
  which cannot import Python objects. TorchScript can however call any registered operator, some
  of which touch files, the network or the process (``aten::save``, ``aten::from_file``,
  ``prim::Print``, ``c10d::`` ...), and loading runs a compiled ``__setstate__``. So without trust
  the archive is refused if its code defines ``__setstate__``, and after loading every compiled
  graph is checked against an operator allowlist (:mod:`.ts_ops`, :mod:`.torchscript`).

Every zip-format file is bounded on its directory before anything is inflated (:mod:`.archives`).

The openers live in submodules by what they open: :mod:`.factories` (``--arch`` and data
factories), :mod:`.state_dicts` (state_dicts and safetensors + ``--arch``), :mod:`.pickles`
(``torch.save`` files; what a pickle would import), :mod:`.torchscript` and :mod:`.ts_ops` (the
TorchScript allowlist), :mod:`.pt2` and :mod:`.pt2_program` (the ``torch.export`` guard), :mod:`.archives` (bounded zips). This package re-exports the public names.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pruneviz.core.errors import PrunevizError

from .archives import MAX_MODEL_BYTES, check_torch_zip, check_zip
from .common import ACCEPTED, STATE_DICT_SUFFIXES, LoadedModel, load_error, quiet_torch, reason
from .examples import check_example, infer_example, make_example
from .factories import is_factory_spec, load_factory
from .pickles import open_torch_file, pickle_imports
from .pt2 import open_pt2
from .state_dicts import open_safetensors
from .torchscript import is_torchscript, open_torchscript, zip_names

__all__ = [
    "LoadedModel", "open_model", "load_factory", "pickle_imports", "is_factory_spec", "readable_file",
    "check_zip", "check_torch_zip", "MAX_MODEL_BYTES",
]  # fmt: skip
quiet_torch = quiet_torch  # used by export.py


# ---------------------------------------------------------------------------------------------
# Entry point


def open_model(
    spec: str,
    arch: str | None = None,
    trust: bool = False,
    input_shape=None,
    input_dtype: str | None = None,
    max_bytes: int = MAX_MODEL_BYTES,
) -> LoadedModel:
    """Open ``spec`` (a file path or ``demo:NAME``) as a model in eval mode on the CPU.

    ``arch`` names a factory (``package.module:function``) that builds the model for state_dict
    and safetensors files. ``trust=True`` allows files whose loading runs code from them (pickled
    modules, pickled payloads in .pt2 archives, TorchScript that touches files).
    ``input_shape`` (``"3,224,224"``, per sample) and ``input_dtype`` (``"long"`` for token ids)
    give the example input that tracing needs; without them it comes from a ``.pt2``'s sample or is
    inferred from a first Linear or Embedding layer (:mod:`.examples`).
    ``max_bytes`` bounds what a zip-format file (``.pt``, ``.pt2``, TorchScript) may inflate to,
    checked on its zip directory before anything is read (:mod:`.archives`).
    Raises :class:`PrunevizError` (or its subclass :class:`TrustRequired`) on any failure.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise load_error(f"no model given ({spec!r}): {ACCEPTED}")
    if arch is not None and not isinstance(arch, str):
        raise load_error(f"the architecture must be a string like package.module:function, not {type(arch).__name__}")
    if not spec.startswith("demo:") and not trust:
        check_torch_version()
    if input_dtype is not None and input_shape is None:
        raise load_error("an input dtype needs an input shape too, e.g. shape 128 with dtype long")
    example = make_example(input_shape, input_dtype) if input_shape is not None else None
    try:
        loaded = _open(spec, arch, bool(trust), int(max_bytes))  # every branch returns the model in eval() mode
        if example is not None:
            check_example(spec, loaded.model, example)
            loaded.example_input = example
        elif loaded.example_input is None and loaded.structured_ok:
            found = infer_example(loaded.model)
            if found is not None:
                loaded.example_input = found[0]
                loaded.notices.append(f"no example input given: using {found[1]}")
        return loaded
    except PrunevizError:
        raise
    except (Exception, SystemExit) as exc:  # a bug or a case we did not foresee: still one line
        raise load_error(f"cannot open {spec}: {type(exc).__name__}: {reason(exc)}") from exc


SAFE_TORCH = (2, 10)


def check_torch_version(version: str | None = None) -> None:
    """Refuse untrusted files under a torch whose ``weights_only`` loading is not a safe boundary."""
    text = version or torch.__version__
    try:
        major, minor = (int(part) for part in text.split("+")[0].split(".")[:2])
    except ValueError:
        return  # a development build we cannot read: assume it is current
    if (major, minor) < SAFE_TORCH:
        raise load_error(
            f"torch {text} is older than 2.10, whose weights_only loading lets crafted files run code "
            "(CVE-2025-32434, CVE-2026-24747): upgrade torch, or open it trusting the file", hint="trust"
        )


def readable_file(spec: str, path: Path, what: str, accepted: str) -> int:
    """Check that ``path`` (which exists) is a non-empty regular file we may read; return its size."""
    if path.is_dir():
        raise load_error(f"{spec} is a directory, not a {what} file ({accepted})")
    if not path.is_file():
        raise load_error(f"{spec} is not a regular file ({accepted})")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise load_error(f"cannot read {spec}: {reason(exc)}") from exc
    if size == 0:
        raise load_error(f"{spec} is empty, not a {what} file")
    return size


def _open(spec: str, arch: str | None, trust: bool, max_bytes: int) -> LoadedModel:
    if spec.startswith("demo:"):
        return _open_demo(spec)
    path = Path(spec)
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:
        raise load_error(f"cannot open {spec}: {reason(exc)}") from exc
    if not exists:
        hint = ""
        if _demo_names() and spec in _demo_names():
            hint = f"; did you mean demo:{spec}?"
        raise load_error(f"{spec} does not exist{hint}")
    readable_file(spec, path, "model", ACCEPTED)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return open_safetensors(spec, path, arch)
    if suffix == ".pt2":
        return open_pt2(spec, path, trust, max_bytes)
    names = zip_names(path)
    if names is not None and is_torchscript(names):
        return open_torchscript(spec, path, names, trust, max_bytes)
    if suffix in STATE_DICT_SUFFIXES:
        return open_torch_file(spec, path, arch, trust, max_bytes)
    raise load_error(f"cannot open {spec}: {ACCEPTED}")


# ---------------------------------------------------------------------------------------------
# demo:NAME


def _demo_names() -> dict[str, str]:
    try:
        from pruneviz.core import demo

        return dict(demo.NAMES)
    except Exception:
        return {}


def _open_demo(spec: str) -> LoadedModel:
    name = spec[len("demo:") :]
    try:
        from pruneviz.core import demo
    except Exception as exc:
        raise load_error(f"the demo models are not available in this install ({reason(exc)})") from exc
    if name not in demo.NAMES:
        raise load_error(f"unknown demo model {name!r}: choose one of {', '.join('demo:' + n for n in demo.NAMES)}")
    try:
        model = demo.load_model(name)
    except PrunevizError:
        raise
    except Exception as exc:
        raise load_error(f"loading {spec} failed: {type(exc).__name__}: {reason(exc)}") from exc
    model = model.cpu().eval()
    return LoadedModel(model, spec, "demo", None, torch.zeros(1, 64), True)

