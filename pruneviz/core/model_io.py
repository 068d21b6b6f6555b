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
  which cannot import Python objects; so it opens without trust. TorchScript can however call any
  registered operator, and a few of those touch the file system (``aten::save`` writes a file,
  ``aten::from_file`` maps one, ``debugprims::load_tensor`` reads one); an archive whose code
  names one of them is refused without trust.

``.pt2`` archives. ``torch.export.load`` is documented as unsafe on untrusted files, and in
PyTorch 2.13 it is, through more than pickles. Before calling it we read the archive with the same
zip reader PyTorch uses and refuse (without trust) anything that would run code from the file:

* pickled payloads: weights or constants with ``"use_pickle": true`` and legacy
  ``data/weights|constants/<model>.pt`` files (read with ``torch.load(weights_only=False)``),
  ``opaque_obj`` constants (``pickle.loads``), ``custom_obj`` constants (TorchScript objects);
* sample inputs (``data/sample_inputs/<model>.pt``): PyTorch tries ``weights_only=True`` and on
  failure *falls back to* ``weights_only=False``; we load them with ``weights_only=True`` ourselves
  first and refuse if that fails, so the fallback cannot happen;
* compiled AOTInductor code (``data/aotinductor/``, shared libraries ``torch.export.load`` dlopens);
* the program JSON (``models/*.json``): symbolic-shape expressions are parsed with
  ``sympy.sympify``, which is ``eval``, so each one must be a plain ``srepr`` of allowed sympy
  classes; graph node targets must resolve to registered operators (not, say, ``torch.os.system``)
  and not to the file-touching ones above; names that PyTorch's FX code generator splices into the
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

import ast
import contextlib
import dataclasses
import functools
import importlib
import io
import json
import logging
import math
import operator
import os
import pickletools
import re
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch

from pruneviz.core.errors import ArchRequired, PrunevizError, TrustRequired, one_line, reason

__all__ = ["LoadedModel", "open_model", "load_factory", "pickle_imports"]

_STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
_ACCEPTED = "expected .pt, .pth, .bin, .safetensors, .pt2, a TorchScript archive, or demo:NAME"
_ARCH_HINT = "pass --arch package.module:function that builds the model"
_TRUST_HINT = "pass --trust if you trust its source"

# Operators that read or write files; refused in TorchScript code and .pt2 graphs without trust.
_FILE_OPS = {"aten::from_file", "aten::save", "debugprims::load_tensor"}
_TORCHSCRIPT_FILE_OPS = re.compile(r"\bfrom_file\b|\.\s*save\s*\(|\bload_tensor\b|\bdebugprims\b")


@dataclasses.dataclass
class LoadedModel:
    """A model ready to inspect and prune, and where it came from."""

    model: torch.nn.Module
    """In eval() mode, on the CPU."""
    spec: str
    """What the user passed."""
    source: str
    """``"demo"``, ``"state_dict"``, ``"safetensors"``, ``"pt2"``, ``"torchscript"`` or ``"pickle"``."""
    arch: str | None
    """The ``--arch`` factory spec, when one built the model."""
    example_input: torch.Tensor | None
    """A batch of one input when known (demo models; .pt2 sample inputs), else None."""
    structured_ok: bool
    """True for real ``nn.Module`` trees; False for .pt2 / TorchScript, whose layers are opaque
    (only weight-level pruning applies)."""


# ---------------------------------------------------------------------------------------------
# Messages


_one_line = one_line
_why = reason


def _error(message: str) -> PrunevizError:
    return PrunevizError(_one_line(message, 1000))


def _trust_required(message: str, imports: list[str] | None = None) -> TrustRequired:
    return TrustRequired(_one_line(message, 1000), imports=imports)


def _name_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


@contextlib.contextmanager
def _quiet_torch() -> Iterator[list[BaseException]]:
    """Silence PyTorch's warnings and export logging while we load: failures become our errors.

    Yields a list that collects the exceptions PyTorch logged instead of raising (torch.export.load
    logs the real cause and raises a generic "check the warnings above").
    """
    capture = _Capture()
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    saved = [(logger.propagate, logger.handlers) for logger in loggers]
    for logger in loggers:  # torch._logging gives torch.export its own stderr handler
        logger.propagate = False
        logger.handlers = [capture]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield capture.errors
    finally:
        for logger, (propagate, handlers) in zip(loggers, saved):
            logger.handlers = handlers
            logger.propagate = propagate


# ---------------------------------------------------------------------------------------------
# Factories (--arch, data factories)

_FACTORY_RE = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\Z")


def is_factory_spec(spec: str) -> bool:
    """True for ``package.module:function`` (code to import and call); ``demo:NAME`` is not."""
    return isinstance(spec, str) and not spec.startswith("demo:") and bool(_FACTORY_RE.match(spec.strip()))


def load_factory(spec: str) -> Callable:
    """Import ``package.module:function`` and return the callable.

    The module is imported from ``PYTHONPATH`` or the current directory (added at the end of
    ``sys.path`` so it cannot shadow installed packages). Naming a module is the user's consent to
    import it. The returned callable wraps the factory so that an exception it raises becomes a
    :class:`PrunevizError` ("the factory X raised: ...").
    """
    if not isinstance(spec, str) or not _FACTORY_RE.match(spec.strip()):
        raise _error(
            f"malformed factory spec {spec!r}: expected package.module:function, "
            "e.g. mymodels.nets:build_mlp"
        )
    module_name, attr_path = _FACTORY_RE.match(spec.strip()).groups()
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise _error(
                f"cannot import {module_name} (from {spec}): no module named {missing}; run from the "
                "folder that holds it or add that folder to PYTHONPATH"
            ) from exc
        raise _error(f"importing {module_name} (from {spec}) failed: {_why(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise _error(
            f"importing {module_name} (from {spec}) raised {type(exc).__name__}: {_why(exc)}"
        ) from exc
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except Exception as exc:
            raise _error(
                f"{module_name} has no attribute {attr_path} (from {spec}); check the name after the colon"
            ) from exc
    if not callable(target):
        raise _error(f"{spec} is a {type(target).__name__}, not a function that builds something")
    factory = target

    @functools.wraps(factory)
    def call_factory(*args, **kwargs):
        try:
            return factory(*args, **kwargs)
        except PrunevizError:
            raise
        except (Exception, SystemExit) as exc:
            raise _error(f"the factory {spec} raised: {type(exc).__name__}: {_why(exc)}") from exc

    return call_factory


# ---------------------------------------------------------------------------------------------
# Pickles: what would they import?


def _allowed_pickle_globals() -> set[str]:
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except Exception:
        return set()


_PICKLE_STRING_OPS = {
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
}  # fmt: skip


def _static_pickle_globals(stream: io.BufferedIOBase, max_pickles: int = 8) -> set[str]:
    """``module.name`` globals named in consecutive pickles, read with pickletools (no execution).

    Tracks strings through the memo so protocol-4+ ``STACK_GLOBAL`` is resolved too. A damaged
    pickle ends the scan but keeps what was found before the damage.
    """
    found: set[str] = set()
    with warnings.catch_warnings():  # pickletools warns on odd STRING escapes
        warnings.simplefilter("ignore")
        for _ in range(max_pickles):
            strings: list[str] = []
            memo: dict[int, str] = {}
            memo_size = 0
            top_is_string = False
            ops = 0
            try:
                for opcode, arg, _pos in pickletools.genops(stream):
                    ops += 1
                    name = opcode.name
                    pushed = False
                    if name in ("GLOBAL", "INST"):
                        module, _, qualname = str(arg).partition(" ")
                        found.add(f"{module}.{qualname}")
                    elif name == "STACK_GLOBAL":
                        if len(strings) >= 2:
                            found.add(f"{strings[-2]}.{strings[-1]}")
                    elif name in _PICKLE_STRING_OPS:
                        strings.append(str(arg))
                        pushed = True
                    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                        index = memo_size if name == "MEMOIZE" else int(arg)
                        memo_size = max(memo_size, index + 1)
                        if top_is_string:
                            memo[index] = strings[-1]
                        pushed = top_is_string  # the stack top is unchanged
                    elif name in ("GET", "BINGET", "LONG_BINGET") and int(arg) in memo:
                        strings.append(memo[int(arg)])
                        pushed = True
                    top_is_string = pushed
            except Exception:
                break
            if not ops:
                break
    return found


def _inner_data_pkl(data: bytes) -> bytes | None:
    """The ``data.pkl`` of a zip-format ``torch.save`` file, else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if name.endswith("/data.pkl") or name == "data.pkl":
                    return archive.read(name)
    except Exception:
        return None
    return None


def _imports_in_bytes(data: bytes) -> list[str]:
    inner = _inner_data_pkl(data)
    found = _static_pickle_globals(io.BytesIO(inner if inner is not None else data))
    return sorted(found - _allowed_pickle_globals())


def pickle_imports(path: str | os.PathLike) -> list[str]:
    """The ``module.name`` globals a ``torch.save``'d pickle would import, found without running it.

    Uses ``torch.serialization.get_unsafe_globals_in_checkpoint`` (which disassembles the pickle);
    for files it cannot read (old non-zip format, plain pickles, newer pickle protocols) falls back
    to a static pickletools scan. Globals PyTorch's weights-only unpickler allows are left out.
    Returns a sorted list; [] when nothing can be found or the file is unreadable.
    """
    try:
        with _quiet_torch():
            found = torch.serialization.get_unsafe_globals_in_checkpoint(os.fspath(path))
        return sorted(set(found))
    except Exception:
        pass
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            if head.startswith(b"PK"):
                return _imports_in_bytes(handle.read())
            return sorted(_static_pickle_globals(handle) - _allowed_pickle_globals())
    except Exception:
        return []


# ---------------------------------------------------------------------------------------------
# Entry point


def open_model(spec: str, arch: str | None = None, trust: bool = False) -> LoadedModel:
    """Open ``spec`` (a file path or ``demo:NAME``) as a model in eval mode on the CPU.

    ``arch`` names a factory (``package.module:function``) that builds the model for state_dict
    and safetensors files. ``trust=True`` allows files whose loading runs code from them (pickled
    modules, pickled payloads in .pt2 archives, TorchScript that touches files).
    Raises :class:`PrunevizError` (or its subclass :class:`TrustRequired`) on any failure.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise _error(f"no model given ({spec!r}): {_ACCEPTED}")
    if arch is not None and not isinstance(arch, str):
        raise _error(f"--arch must be a string like package.module:function, not {type(arch).__name__}")
    try:
        return _open(spec, arch, bool(trust))  # every branch returns the model in eval() mode
    except PrunevizError:
        raise
    except (Exception, SystemExit) as exc:  # a bug or a case we did not foresee: still one line
        raise _error(f"cannot open {spec}: {type(exc).__name__}: {_why(exc)}") from exc


def readable_file(spec: str, path: Path, what: str, accepted: str) -> int:
    """Check that ``path`` (which exists) is a non-empty regular file we may read; return its size."""
    if path.is_dir():
        raise _error(f"{spec} is a directory, not a {what} file ({accepted})")
    if not path.is_file():
        raise _error(f"{spec} is not a regular file ({accepted})")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _error(f"cannot read {spec}: {_why(exc)}") from exc
    if size == 0:
        raise _error(f"{spec} is empty, not a {what} file")
    return size


def _open(spec: str, arch: str | None, trust: bool) -> LoadedModel:
    if spec.startswith("demo:"):
        return _open_demo(spec)
    path = Path(spec)
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:
        raise _error(f"cannot open {spec}: {_why(exc)}") from exc
    if not exists:
        hint = ""
        if _demo_names() and spec in _demo_names():
            hint = f"; did you mean demo:{spec}?"
        raise _error(f"{spec} does not exist{hint}")
    readable_file(spec, path, "model", _ACCEPTED)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _open_safetensors(spec, path, arch)
    if suffix == ".pt2":
        return _open_pt2(spec, path, trust)
    names = _zip_names(path)
    if names is not None and _is_torchscript(names):
        return _open_torchscript(spec, path, names, trust)
    if suffix in _STATE_DICT_SUFFIXES:
        return _open_torch_file(spec, path, arch, trust)
    raise _error(f"cannot open {spec}: {_ACCEPTED}")


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
        raise _error(f"the demo models are not available in this install ({_why(exc)})") from exc
    if name not in demo.NAMES:
        raise _error(f"unknown demo model {name!r}: choose one of {', '.join('demo:' + n for n in demo.NAMES)}")
    try:
        model = demo.load_model(name)
    except PrunevizError:
        raise
    except Exception as exc:
        raise _error(f"loading {spec} failed: {type(exc).__name__}: {_why(exc)}") from exc
    model = model.cpu().eval()
    return LoadedModel(model, spec, "demo", None, torch.zeros(1, 64), True)


# ---------------------------------------------------------------------------------------------
# state_dicts (.pt/.pth/.bin, .safetensors) + --arch


def _tensor_dict(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        return dict(obj)
    return None


def _find_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    found = _tensor_dict(obj)
    if found is not None:
        return found
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj:
                found = _tensor_dict(obj[key])
                if found is not None:
                    return found
    return None


def _shape(t: torch.Tensor | torch.Size) -> str:
    return "[" + ", ".join(str(d) for d in (t.shape if isinstance(t, torch.Tensor) else t)) + "]"


def _build_from_arch(spec: str, sd: dict[str, torch.Tensor], arch: str | None, source: str) -> LoadedModel:
    if arch is None:
        raise ArchRequired(_one_line(f"{spec} is a state_dict: {_ARCH_HINT}", 1000))
    model = load_factory(arch)()
    if not isinstance(model, torch.nn.Module):
        raise _error(f"--arch {arch} returned a {type(model).__name__}, not a torch.nn.Module")
    try:
        expected = model.state_dict()
    except Exception as exc:
        raise _error(f"the model from --arch {arch} has no usable state_dict: {_why(exc)}") from exc
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k} {_shape(sd[k])} in the file vs {_shape(v)} in the model"
        for k, v in expected.items()
        if k in sd and isinstance(v, torch.Tensor) and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing " + _name_list(missing, 3))
        if unexpected:
            parts.append("unexpected " + _name_list(unexpected, 3))
        if shapes:
            parts.append("shape mismatch " + _name_list(shapes, 2))
        raise _error(f"the state_dict in {spec} does not match --arch {arch}: {'; '.join(parts)}; check --arch")
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise _error(f"the state_dict in {spec} does not match --arch {arch}: {_why(exc)}; check --arch") from exc
    try:
        model = model.cpu().eval()
    except Exception as exc:
        raise _error(f"cannot move the model from --arch {arch} to the CPU: {_why(exc)}") from exc
    return LoadedModel(model, spec, source, arch, None, True)


def _open_safetensors(spec: str, path: Path, arch: str | None) -> LoadedModel:
    try:
        import safetensors.torch

        sd = safetensors.torch.load_file(os.fspath(path), device="cpu")
    except Exception as exc:
        raise _error(f"{spec} is not a valid safetensors file ({_why(exc)})") from exc
    if not sd:
        raise _error(f"{spec} holds no tensors")
    return _build_from_arch(spec, dict(sd), arch, "safetensors")


def _open_torch_file(spec: str, path: Path, arch: str | None, trust: bool) -> LoadedModel:
    try:
        with _quiet_torch():
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        imports = pickle_imports(path)
        if not imports:
            raise _error(f"{spec} is not a PyTorch file or is damaged ({_why(exc)})") from exc
        if not trust:
            raise _trust_required(
                f"{spec} is a pickled model; opening it runs code from it "
                f"(it imports {_name_list(imports)}); {_TRUST_HINT}",
                imports=imports,
            ) from exc
        return _open_trusted_pickle(spec, path, arch)
    if isinstance(obj, torch.nn.Module):  # only possible for classes someone allow-listed
        return LoadedModel(obj.cpu().eval(), spec, "pickle", None, None, True)
    sd = _find_state_dict(obj)
    if sd is None:
        raise _error(f"{spec} holds a {type(obj).__name__}, not a model or a state_dict of tensors")
    return _build_from_arch(spec, sd, arch, "state_dict")


def _open_trusted_pickle(spec: str, path: Path, arch: str | None) -> LoadedModel:
    try:
        with _quiet_torch():
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    except (Exception, SystemExit) as exc:
        raise _error(f"loading the pickled model {spec} failed: {type(exc).__name__}: {_why(exc)}") from exc
    if isinstance(obj, torch.nn.Module):
        try:
            return LoadedModel(obj.cpu().eval(), spec, "pickle", None, None, True)
        except Exception as exc:
            raise _error(f"cannot move the model in {spec} to the CPU: {_why(exc)}") from exc
    sd = _find_state_dict(obj)
    if sd is None:
        raise _error(f"{spec} holds a {type(obj).__name__}, not a torch.nn.Module or a state_dict")
    return _build_from_arch(spec, sd, arch, "state_dict")


# ---------------------------------------------------------------------------------------------
# TorchScript


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except Exception:
        return None


def _is_torchscript(names: list[str]) -> bool:
    for name in names:
        _, _, inner = name.partition("/")
        if inner == "constants.pkl" or inner.startswith("code/"):
            return True
    return False


def _open_torchscript(spec: str, path: Path, names: list[str], trust: bool) -> LoadedModel:
    if not trust:
        try:
            with zipfile.ZipFile(path) as archive:
                for name in names:
                    _, _, inner = name.partition("/")
                    if inner.startswith("code/") and name.endswith(".py"):
                        text = archive.read(name).decode("utf-8", errors="replace")
                        match = _TORCHSCRIPT_FILE_OPS.search(text)
                        if match:
                            raise _trust_required(
                                f"{spec} is TorchScript whose code uses {match.group(0).strip('.( ')!r}, "
                                f"which reads or writes files; {_TRUST_HINT}"
                            )
        except PrunevizError:
            raise
        except Exception as exc:
            raise _error(f"{spec} is a damaged TorchScript archive ({_why(exc)})") from exc
    try:
        with _quiet_torch():
            model = torch.jit.load(os.fspath(path), map_location="cpu")
        model.eval()
    except Exception as exc:
        raise _error(f"{spec} looks like TorchScript but cannot be loaded ({_why(exc)})") from exc
    return LoadedModel(model, spec, "torchscript", None, None, False)


# ---------------------------------------------------------------------------------------------
# .pt2 (torch.export)

_SAFE_NAME = re.compile(r"[\w.\-]*\Z")
# Free text PyTorch only stores as metadata (never turns into code under module(check_guards=False)).
_PT2_FREE_TEXT_KEYS = {"metadata", "as_string", "as_strings", "torch_version", "guards_code"}
_SYMPY_CALLS = {
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs",
    "floor", "ceiling", "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality",
    "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "And", "Or", "Not", "Xor",
    "Piecewise", "ExprCondPair", "BooleanTrue", "BooleanFalse", "Infinity", "NegativeInfinity",
    "NaN", "Zero", "One", "NegativeOne", "Half", "IntInfinity", "NegativeIntInfinity",
    # torch.utils._sympy.functions, as listed by the deserializer
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity",
}  # fmt: skip
_SYMPY_NAMES = {"oo", "zoo", "nan", "true", "false", "True", "False", "pi", "E", "int_oo"}
_SYMPY_STR = re.compile(r"[\w.+\-]*\Z")


class _Unsafe(Exception):
    """Raised inside the .pt2 checks: the archive would run code from itself."""


class _Unknown(Exception):
    """Raised inside the .pt2 checks: the program calls an operator this PyTorch lacks."""


def _check_sym_expr(text: object) -> None:
    """Allow only an ``srepr`` of allowed sympy classes: sympify() evals the string."""
    if not isinstance(text, str) or len(text) > 20_000:
        raise _Unsafe("a symbolic-shape expression that is not a plain sympy expression")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Unsafe(f"a malformed symbolic-shape expression ({_why(exc)})") from exc

    def ok(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            value = node.value
            return value is None or isinstance(value, (bool, int, float)) or (
                isinstance(value, str) and bool(_SYMPY_STR.match(value))
            )
        if isinstance(node, ast.Name):
            return node.id in _SYMPY_NAMES
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return ok(node.operand)
        if isinstance(node, ast.Tuple):
            return all(ok(e) for e in node.elts)
        if isinstance(node, ast.Call):
            return (
                isinstance(node.func, ast.Name)
                and node.func.id in _SYMPY_CALLS
                and all(ok(a) for a in node.args)
                and all(
                    k.arg is not None and not k.arg.startswith("_") and ok(k.value) for k in node.keywords
                )
            )
        return False

    try:
        good = ok(tree.body)
    except RecursionError:
        good = False
    if not good:
        raise _Unsafe(f"a symbolic-shape expression that would run code ({_one_line(text, 60)!r})")


@functools.lru_cache(maxsize=1)
def _allowed_plain_targets() -> tuple:
    """Non-operator call targets export graphs may hold (the verifier's list, all harmless)."""
    allowed: list = [
        operator.getitem, operator.add, operator.mul, operator.sub, operator.truediv,
        operator.floordiv, operator.mod, operator.pow, operator.neg, operator.pos, operator.abs,
        operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
        operator.and_, operator.or_, operator.not_, operator.lshift, operator.rshift,
        math.ceil, math.floor, math.trunc, round,
        torch.sym_int, torch.sym_float, torch.sym_ite, torch.sym_max, torch.sym_min,
        torch.sym_not, torch.sym_sqrt, torch._C._set_grad_enabled,
        torch.autograd.grad_mode.set_grad_enabled,
    ]  # fmt: skip
    for name in ("sym_sum",):
        if hasattr(torch, name):
            allowed.append(getattr(torch, name))
    try:
        from torch._export.serde.serialize import _SYM_OPS

        allowed.extend(_SYM_OPS)
    except Exception:
        pass
    try:
        from torch.amp.autocast_mode import _enter_autocast, _exit_autocast

        allowed.extend([_enter_autocast, _exit_autocast])
    except Exception:
        pass
    return tuple(allowed)


def _resolve_target(name: str) -> object:
    """What ``torch._export.serde`` would resolve a serialized call target to (getattr only)."""
    if name.startswith("_operator"):
        base: object = operator
    elif name.startswith("torch"):
        base = torch
    elif name.startswith("math"):
        base = math
    else:
        return name
    for part in name.split(".")[1:]:
        try:
            base = getattr(base, part)
        except Exception:
            return name
    return base


def _check_target(name: object) -> None:
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise _Unsafe(f"an operator name that is not a plain name ({_one_line(str(name), 60)!r})")
    with _quiet_torch():
        target = _resolve_target(name)
    if isinstance(target, torch._ops.OpOverload):
        if target.name() in _FILE_OPS:
            raise _Unsafe(f"the operator {target.name()}, which reads or writes files")
        return
    if isinstance(target, torch._ops.HigherOrderOperator):
        return
    if not isinstance(target, str) and any(target is t for t in _allowed_plain_targets()):
        return
    if isinstance(target, str):
        raise _Unknown(f"uses the operator {_one_line(name, 80)}, which this PyTorch does not have (a custom op?)")
    raise _Unsafe(f"a call to {name}, which is not a PyTorch operator")


def _check_treespec(text: object) -> None:
    if not isinstance(text, str):
        raise _Unsafe("a malformed input/output spec")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Unsafe(f"a malformed input/output spec ({_why(exc)})") from exc
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_plain(key)
                if key == "context" and isinstance(item, str):
                    try:
                        stack.append(json.loads(item))
                    except (ValueError, RecursionError) as exc:
                        raise _Unsafe(f"a malformed input/output spec ({_why(exc)})") from exc
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_plain(value)


def _check_plain(value: object) -> None:
    if isinstance(value, str) and not _SAFE_NAME.match(value):
        raise _Unsafe(f"the name {_one_line(value, 60)!r}, which is not a plain name")


def _check_pt2_json(doc: object) -> None:
    """Walk a program or payload-config JSON; raise _Unsafe on anything that could become code."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("target"), str) and "inputs" in value:  # a graph node
                _check_target(value["target"])
                for argument in value.get("inputs") or []:
                    arg_name = argument.get("name") if isinstance(argument, dict) else None
                    # keyword names become `name=` in generated code; positional ones are ""
                    if arg_name is not None and not (isinstance(arg_name, str) and (arg_name == "" or arg_name.isidentifier())):
                        raise _Unsafe(f"the argument name {_one_line(str(arg_name), 60)!r}")
            for key, item in value.items():
                _check_plain(key)
                if key in _PT2_FREE_TEXT_KEYS:
                    continue
                if key == "expr_str":
                    _check_sym_expr(item)
                elif key in ("in_spec", "out_spec"):
                    if item is not None:
                        _check_treespec(item)
                elif key == "forward_arg_names":
                    for arg_name in item or []:
                        if not (isinstance(arg_name, str) and arg_name.isidentifier()):
                            raise _Unsafe(f"the argument name {_one_line(str(arg_name), 60)!r}")
                elif key == "as_operator":
                    _check_target(item)
                elif key == "target" and isinstance(item, str):
                    continue  # checked above when in a node
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_plain(value)


def _load_weights_only(data: bytes) -> object:
    with _quiet_torch():
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _Pt2Archive:
    """Records of a .pt2, read with PyTorch's own zip reader, cross-checked with Python's."""

    def __init__(self, spec: str, path: Path):
        self.spec = spec
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                bad = archive.testzip()
        except Exception as exc:
            raise _error(f"{spec} is not a .pt2 archive or is damaged ({_why(exc)})") from exc
        if bad is not None:
            raise _error(f"{spec} is damaged (entry {bad} fails its checksum)")
        names = [info.filename for info in infos]
        roots = {name.split("/", 1)[0] for name in names}
        if len(roots) != 1 or any("/" not in name for name in names):
            raise _error(f"{spec} is not a torch.export archive (written by an older PyTorch? re-export it)")
        stripped = {name.split("/", 1)[1] for name in names if not name.endswith("/")}
        if len(stripped) != len([n for n in names if not n.endswith("/")]):
            raise _error(f"{spec} is damaged (duplicate entries)")
        try:
            self.reader = torch._C.PyTorchFileReader(os.fspath(path))
            records = set(self.reader.get_all_records())
        except Exception as exc:
            raise _error(f"{spec} is not a .pt2 archive or is damaged ({_why(exc)})") from exc
        if records != stripped:
            raise _error(f"{spec} is damaged (its zip directory is inconsistent)")
        self.records = records

    def read(self, name: str) -> bytes:
        try:
            return bytes(self.reader.get_record(name))
        except Exception as exc:
            raise _error(f"{self.spec} is damaged (cannot read {name}: {_why(exc)})") from exc

    def json(self, name: str) -> object:
        if name not in self.records:
            raise _error(f"{self.spec} is not a complete torch.export archive ({name} is missing)")
        try:
            return json.loads(self.read(name).decode("utf-8"))
        except PrunevizError:
            raise
        except Exception as exc:
            raise _error(f"{self.spec} is damaged ({name} is not valid JSON: {_why(exc)})") from exc


def _check_pt2(spec: str, path: Path) -> object:
    """Refuse (TrustRequired) any .pt2 whose loading would run code from it; return sample inputs."""
    from torch.export.pt2_archive import constants as c

    archive = _Pt2Archive(spec, path)
    records = archive.records

    def refuse(what: str, imports: list[str] | None = None) -> TrustRequired:
        return _trust_required(f"{spec} holds {what}; opening it runs code from it; {_TRUST_HINT}", imports)

    if any(name.startswith(c.AOTINDUCTOR_DIR) for name in records):
        raise refuse("compiled AOTInductor code (native shared libraries)")
    version_name = c.ARCHIVE_VERSION_PATH
    if version_name not in records or archive.read(version_name).decode("utf-8", "replace") != c.ARCHIVE_VERSION_VALUE:
        raise _error(f"{spec} is not a torch.export archive this PyTorch can read (archive version mismatch)")
    prefix, suffix = c.MODELS_FILENAME_FORMAT.split("{}")
    models = [n[len(prefix) : -len(suffix)] for n in records if n.startswith(prefix) and n.endswith(suffix)]
    if "model" not in models:
        raise _error(f"{spec} is not a complete torch.export archive ({c.MODELS_FILENAME_FORMAT.format('model')} is missing)")
    sample_inputs: object = None
    for model_name in models:
        # Legacy pickled weights/constants: torch falls back to weights_only=False on them.
        for legacy in (f"{c.WEIGHTS_DIR}{model_name}.pt", f"{c.CONSTANTS_DIR}{model_name}.pt"):
            if legacy in records:
                data = archive.read(legacy)
                try:
                    _load_weights_only(data)
                except Exception:
                    raise refuse(f"pickled objects in {legacy}", _imports_in_bytes(data)) from None
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
                raise _error(f"{spec} is damaged ({config_name} has no config table)")
            try:
                _check_pt2_json(config)
            except _Unsafe as exc:
                raise refuse(str(exc)) from None
            except _Unknown as exc:
                raise _error(f"{spec} {exc}") from None
            for fqn, meta in entries.items():
                if not isinstance(meta, dict):
                    raise _error(f"{spec} is damaged ({config_name}: bad entry for {fqn})")
                path_name = meta.get("path_name")
                if meta.get("use_pickle"):
                    raise refuse(f'pickled {"constants" if is_constants else "weights"} ("use_pickle": true for {fqn})')
                if not isinstance(path_name, str):
                    raise _error(f"{spec} is damaged ({config_name}: no path_name for {fqn})")
                if is_constants and not path_name.startswith(c.TENSOR_CONSTANT_FILENAME_PREFIX):
                    if path_name.startswith(c.OPAQUE_OBJ_FILENAME_PREFIX):
                        raise refuse(f"a pickled Python object ({fqn})")
                    raise refuse(f"a TorchScript object constant ({fqn})")
                record = base_dir + path_name
                if record not in records:
                    raise _error(f"{spec} is damaged ({record} is missing)")
                tensor_meta = meta.get("tensor_meta")
                if isinstance(tensor_meta, dict) and archive.reader.get_record_size(record) == 0:
                    sizes = tensor_meta.get("sizes") or []
                    numel = 1
                    for size in sizes:
                        value = size.get("as_int") if isinstance(size, dict) else None
                        numel *= value if isinstance(value, int) else 1
                    if numel > 0:  # torch would allocate torch.zeros(sizes) for an empty record
                        raise _error(f"{spec} is damaged ({record} is empty but {fqn} is not)")
        program_name = c.MODELS_FILENAME_FORMAT.format(model_name)
        program = archive.json(program_name)
        try:
            _check_pt2_json(program)
        except _Unsafe as exc:
            raise refuse(str(exc)) from None
        except _Unknown as exc:
            raise _error(f"{spec} {exc}") from None
        # Sample inputs: torch loads them weights_only=True, then falls back to weights_only=False.
        inputs_name = c.SAMPLE_INPUTS_FILENAME_FORMAT.format(model_name)
        if inputs_name not in records:
            raise _error(f"{spec} is not a complete torch.export archive ({inputs_name} is missing)")
        data = archive.read(inputs_name)
        if data:
            try:
                loaded = _load_weights_only(data)
            except Exception:
                imports = _imports_in_bytes(data)
                if imports:
                    raise refuse(f"pickled sample inputs that import {_name_list(imports)}", imports) from None
                raise _error(f"{spec} is damaged ({inputs_name} cannot be read)") from None
            if model_name == "model":
                sample_inputs = loaded
    return sample_inputs


def _frozen_train(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return self


def _frozen_eval(self: torch.nn.Module) -> torch.nn.Module:
    return self


def _open_pt2(spec: str, path: Path, trust: bool) -> LoadedModel:
    sample_inputs = None
    if not trust:
        sample_inputs = _check_pt2(spec, path)
    logged: list[BaseException] = []
    try:
        with _quiet_torch() as logged:
            program = torch.export.load(os.fspath(path))
            model = program.module(check_guards=False)
    except Exception as exc:
        cause = logged[-1] if logged else exc  # the real error, not "check the warnings above"
        raise _error(f"{spec} is not a loadable torch.export archive ({type(cause).__name__}: {_why(cause)})") from exc
    model.train = types.MethodType(_frozen_train, model)
    model.eval = types.MethodType(_frozen_eval, model)
    if trust:
        sample_inputs = getattr(program, "example_inputs", None)
    return LoadedModel(model, spec, "pt2", None, _example_from(spec, model, sample_inputs), False)


def _runs(model: torch.nn.Module, x: torch.Tensor) -> bool:
    try:
        with _quiet_torch(), torch.inference_mode():
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
    raise _error(f"{spec} does not run on its own sample inputs of shape {_shape(sample)}; it is damaged or inconsistent")
