"""``.pt2`` archives. ``torch.export.load`` is documented as unsafe on untrusted files, and in
PyTorch 2.13 it is, through more than pickles. Before calling it we read the archive with the same
zip reader PyTorch uses and refuse (without trust) anything that would run code from the file:

* pickled payloads: weights or constants with ``"use_pickle": true`` and legacy
  ``data/weights|constants/<model>.pt`` files (read with ``torch.load(weights_only=False)``),
  ``opaque_obj`` constants (``pickle.loads``), ``custom_obj`` constants (TorchScript objects);
* sample inputs (``data/sample_inputs/<model>.pt``): PyTorch tries ``weights_only=True`` and on
  failure *falls back to* ``weights_only=False``; we load them with ``weights_only=True`` ourselves
  first and refuse if that fails, so the fallback cannot happen;
* compiled AOTInductor code (``data/aotinductor/``, shared libraries ``torch.export.load`` dlopens);
* the program JSON (``models/*.json``, checked in :mod:`.pt2_program`): symbolic-shape expressions are parsed with
  ``sympy.sympify``, which is ``eval``, so each one must be a plain ``srepr`` of allowed sympy
  classes; graph node targets must resolve to registered operators (not, say, ``torch.os.system``)
  and pass the same operator allowlist as TorchScript (:mod:`.ts_ops`: plain ``aten::`` tensor
  operators, nothing that touches files, the network or process state); names that PyTorch's FX code generator splices into the
  Python source of ``forward`` (parameter and buffer names, argument names, input-spec keys) must
  be plain names, since a quote in one of them is a code injection;
* anything that would make PyTorch fall back to its pre-2.8 reader (top-level zip entries).

The module is then built with ``ExportedProgram.module(check_guards=False)``: the default would
``exec`` the archive's ``guards_code`` strings. Exported graphs have their train/eval behaviour
fixed at export time, so ``train()`` / ``eval()`` on the returned module are no-ops (PyTorch's own
versions raise).

Every refusal or bad input raises :class:`~pruneviz.core.errors.PrunevizError` with a one-line
message; no torch/zip/pickle/json exception escapes.
"""

from __future__ import annotations

import io
import json
import os
import types
import zipfile
from pathlib import Path

import torch

from pruneviz.core.errors import PrunevizError, TrustRequired

from .common import LoadedModel, load_error, name_list, quiet_torch, shape_text, trust_required, reason
from .archives import MAX_MODEL_BYTES, check_zip
from .pickles import imports_in_bytes
from .pt2_program import Unknown, Unsafe, check_program_json


# ---------------------------------------------------------------------------------------------
# .pt2 (torch.export)


def _load_weights_only(data: bytes) -> object:
    with quiet_torch():
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _Pt2Archive:
    """Records of a .pt2, read with PyTorch's own zip reader, cross-checked with Python's."""

    def __init__(self, spec: str, path: Path, max_bytes: int):
        self.spec = spec
        summary = check_zip(spec, path, max_bytes, "a .pt2 archive")  # duplicates, inflated size
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as exc:
            raise load_error(f"{spec} is not a .pt2 archive or is damaged ({reason(exc)})") from exc
        if bad is not None:
            raise load_error(f"{spec} is damaged (entry {bad} fails its checksum)")
        names = summary.names
        roots = {name.split("/", 1)[0] for name in names}
        if len(roots) != 1 or any("/" not in name for name in names):
            raise load_error(f"{spec} is not a torch.export archive (written by an older PyTorch? re-export it)")
        stripped = {name.split("/", 1)[1] for name in names if not name.endswith("/")}
        try:
            self.reader = torch._C.PyTorchFileReader(os.fspath(path))
            records = set(self.reader.get_all_records())
        except Exception as exc:
            raise load_error(f"{spec} is not a .pt2 archive or is damaged ({reason(exc)})") from exc
        if records != stripped:
            raise load_error(f"{spec} is damaged (its zip directory is inconsistent)")
        self.records = records

    def read(self, name: str) -> bytes:
        try:
            return bytes(self.reader.get_record(name))
        except Exception as exc:
            raise load_error(f"{self.spec} is damaged (cannot read {name}: {reason(exc)})") from exc

    def json(self, name: str) -> object:
        if name not in self.records:
            raise load_error(f"{self.spec} is not a complete torch.export archive ({name} is missing)")
        try:
            return json.loads(self.read(name).decode("utf-8"))
        except PrunevizError:
            raise
        except RecursionError as exc:
            raise load_error(f"{self.spec} is damaged ({name} is nested too deeply)") from exc
        except Exception as exc:
            raise load_error(f"{self.spec} is damaged ({name} is not valid JSON: {reason(exc)})") from exc


def _check_pt2(spec: str, path: Path, max_bytes: int) -> object:
    """Refuse (TrustRequired) any .pt2 whose loading would run code from it; return sample inputs."""
    from torch.export.pt2_archive import constants as c

    archive = _Pt2Archive(spec, path, max_bytes)
    records = archive.records

    def refuse(what: str, imports: list[str] | None = None) -> TrustRequired:
        return trust_required(f"{spec} holds {what}; opening it runs code from it", imports)

    if any(name.startswith(c.AOTINDUCTOR_DIR) for name in records):
        raise refuse("compiled AOTInductor code (native shared libraries)")
    version_name = c.ARCHIVE_VERSION_PATH
    if version_name not in records or archive.read(version_name).decode("utf-8", "replace") != c.ARCHIVE_VERSION_VALUE:
        raise load_error(f"{spec} is not a torch.export archive this PyTorch can read (archive version mismatch)")
    prefix, suffix = c.MODELS_FILENAME_FORMAT.split("{}")
    models = [n[len(prefix) : -len(suffix)] for n in records if n.startswith(prefix) and n.endswith(suffix)]
    if "model" not in models:
        raise load_error(f"{spec} is not a complete torch.export archive ({c.MODELS_FILENAME_FORMAT.format('model')} is missing)")
    sample_inputs: object = None
    for model_name in models:
        # Legacy pickled weights/constants: torch falls back to weights_only=False on them.
        for legacy in (f"{c.WEIGHTS_DIR}{model_name}.pt", f"{c.CONSTANTS_DIR}{model_name}.pt"):
            if legacy in records:
                data = archive.read(legacy)
                try:
                    _load_weights_only(data)
                except Exception:
                    raise refuse(f"pickled objects in {legacy}", imports_in_bytes(data)) from None
        for config_name, base_dir, is_constants in (
            (c.WEIGHTS_CONFIG_FILENAME_FORMAT.format(model_name), c.WEIGHTS_DIR, False),
            (c.CONSTANTS_CONFIG_FILENAME_FORMAT.format(model_name), c.CONSTANTS_DIR, True),
        ):
            legacy = f"{base_dir}{model_name}.pt"
            if config_name not in records and legacy in records:
                continue
            config = archive.json(config_name)
            entries = config.get("config") if isinstance(config, dict) else None
            if not isinstance(entries, dict):
                raise load_error(f"{spec} is damaged ({config_name} has no config table)")
            try:
                check_program_json(config)
            except Unsafe as exc:
                raise refuse(str(exc)) from None
            except Unknown as exc:
                raise load_error(f"{spec} {exc}") from None
            for fqn, meta in entries.items():
                if not isinstance(meta, dict):
                    raise load_error(f"{spec} is damaged ({config_name}: bad entry for {fqn})")
                path_name = meta.get("path_name")
                if meta.get("use_pickle"):
                    raise refuse(f'pickled {"constants" if is_constants else "weights"} ("use_pickle": true for {fqn})')
                if not isinstance(path_name, str):
                    raise load_error(f"{spec} is damaged ({config_name}: no path_name for {fqn})")
                if is_constants and not path_name.startswith(c.TENSOR_CONSTANT_FILENAME_PREFIX):
                    if path_name.startswith(c.OPAQUE_OBJ_FILENAME_PREFIX):
                        raise refuse(f"a pickled Python object ({fqn})")
                    raise refuse(f"a TorchScript object constant ({fqn})")
                record = base_dir + path_name
                if record not in records:
                    raise load_error(f"{spec} is damaged ({record} is missing)")
                tensor_meta = meta.get("tensor_meta")
                if isinstance(tensor_meta, dict) and archive.reader.get_record_size(record) == 0:
                    sizes = tensor_meta.get("sizes") or []
                    numel = 1
                    for size in sizes:
                        value = size.get("as_int") if isinstance(size, dict) else None
                        numel *= value if isinstance(value, int) else 1
                    if numel > 0:  # torch would allocate torch.zeros(sizes) for an empty record
                        raise load_error(f"{spec} is damaged ({record} is empty but {fqn} is not)")
        program_name = c.MODELS_FILENAME_FORMAT.format(model_name)
        program = archive.json(program_name)
        try:
            check_program_json(program)
        except Unsafe as exc:
            raise refuse(str(exc)) from None
        except Unknown as exc:
            raise load_error(f"{spec} {exc}") from None
        # Sample inputs: torch loads them weights_only=True, then falls back to weights_only=False.
        inputs_name = c.SAMPLE_INPUTS_FILENAME_FORMAT.format(model_name)
        if inputs_name not in records:
            raise load_error(f"{spec} is not a complete torch.export archive ({inputs_name} is missing)")
        data = archive.read(inputs_name)
        if data:
            try:
                loaded = _load_weights_only(data)
            except Exception:
                imports = imports_in_bytes(data)
                if imports:
                    raise refuse(f"pickled sample inputs that import {name_list(imports)}", imports) from None
                raise load_error(f"{spec} is damaged ({inputs_name} cannot be read)") from None
            if model_name == "model":
                sample_inputs = loaded
    return sample_inputs


def _frozen_train(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return self


def _frozen_eval(self: torch.nn.Module) -> torch.nn.Module:
    return self


def open_pt2(spec: str, path: Path, trust: bool, max_bytes: int = MAX_MODEL_BYTES) -> LoadedModel:
    sample_inputs = None
    if trust:
        check_zip(spec, path, max_bytes, "a .pt2 archive")
    else:
        sample_inputs = _check_pt2(spec, path, max_bytes)
    logged: list[BaseException] = []
    try:
        with quiet_torch() as logged:
            program = torch.export.load(os.fspath(path))
            model = program.module(check_guards=False)
    except Exception as exc:
        cause = logged[-1] if logged else exc  # the real error, not "check the warnings above"
        if isinstance(cause, RecursionError):
            raise load_error(f"{spec} is not a loadable torch.export archive (its metadata is nested too deeply)") from exc
        raise load_error(f"{spec} is not a loadable torch.export archive ({type(cause).__name__}: {reason(cause)})") from exc
    model.train = types.MethodType(_frozen_train, model)
    model.eval = types.MethodType(_frozen_eval, model)
    if trust:
        sample_inputs = getattr(program, "example_inputs", None)
    example = _example_from(spec, model, sample_inputs)
    fixed = _fixed_batch(model, example)
    if fixed is not None:
        model.fixed_batch = fixed
        model.forward = types.MethodType(_batched_forward, model)
        # torch checks the whole input against the exported shape before forward; check each chunk
        model.validate_inputs_per_chunk = bool(getattr(model, "validate_inputs", False))
        model.validate_inputs = False
        example = example[:1].clone()
    return LoadedModel(model, spec, "pt2", None, example, False)


def _fixed_batch(model: torch.nn.Module, example: torch.Tensor | None) -> int | None:
    """The batch size a program was exported with when it runs on no other (plain
    ``torch.export.export(m, (x,))`` fixes it), else None."""
    if example is None:
        return None
    b = example.shape[0]
    if _runs(model, torch.cat([example, example[:1]])):
        return None
    return b


def _validate(model: torch.nn.Module, chunk: torch.Tensor) -> None:
    try:
        from torch.export._unlift import _check_input_constraints_pre_hook as check
    except ImportError:  # another torch: the program checks its inputs as it runs
        return
    model.validate_inputs = True
    try:
        check(model, (chunk,), {})
    finally:
        model.validate_inputs = False


def _batched_forward(self: torch.nn.Module, x: torch.Tensor):
    """Run a fixed-batch program on any number of samples: chunks of its own batch size, the last
    one padded with copies of its last sample and the padding cut from the outputs."""
    from torch.utils._pytree import tree_map

    size = self.fixed_batch
    forward = type(self).forward
    n = x.shape[0]
    if n == size:
        return forward(self, x)
    if n == 0:
        raise ValueError(f"an empty batch; this program runs on batches of {size}")
    outs = []
    for i in range(0, n, size):
        chunk = x[i : i + size]
        k = chunk.shape[0]
        if k < size:
            chunk = torch.cat([chunk, chunk[-1:].expand(size - k, *chunk.shape[1:])])
        if self.validate_inputs_per_chunk:
            _validate(self, chunk)
        outs.append(tree_map(lambda t, k=k: t[:k] if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == size else t, forward(self, chunk)))
    if len(outs) == 1:
        return outs[0]
    return tree_map(lambda *ts: torch.cat(ts) if isinstance(ts[0], torch.Tensor) else ts[0], outs[0], *outs[1:])


def _runs(model: torch.nn.Module, x: torch.Tensor) -> bool:
    try:
        with quiet_torch(), torch.inference_mode():
            model(x)
        return True
    except Exception:
        return False


def _example_from(spec: str, model: torch.nn.Module, sample_inputs: object) -> torch.Tensor | None:
    """A batch of one from a .pt2's sample inputs, or the whole sample if batch 1 does not run.

    A program that runs on neither is refused: the archive is damaged or inconsistent.
    """
    try:
        args, kwargs = sample_inputs  # type: ignore[misc]
        if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            return None
        sample = args[0].detach().cpu()
        if sample.dim() == 0:
            return None
    except Exception:
        return None
    one = sample[:1].clone()
    if _runs(model, one):
        return one
    if _runs(model, sample):
        return sample.clone()
    raise load_error(f"{spec} does not run on its own sample inputs of shape {shape_text(sample)}; it is damaged or inconsistent")
