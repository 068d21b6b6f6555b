"""TorchScript archives: judged by the operators their compiled code calls, not by its spelling.

The file is read once into memory (so what is checked is what is loaded), its zip directory is
bounded and checked for duplicate entries (:mod:`.archives`), and then:

1. Loading itself runs one kind of code from the file: ``torch.jit.load`` calls the compiled
   ``__setstate__`` of every object that defines one while it unpickles them. Without trust an
   archive whose code defines ``__setstate__`` anywhere is refused before loading. (TorchScript
   identifiers cannot be escaped or split, so a method of that name spells it in the code, which
   we read through PyTorch's own zip reader: the bytes it would compile.)
2. The module is loaded from the in-memory bytes and every method, submodule and hook is walked
   with :func:`.ts_ops.first_refused`; an operator outside the allowlist needs trust.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch

from .archives import MAX_MODEL_BYTES, check_torch_records, check_zip
from .common import LoadedModel, load_error, quiet_torch, trust_required, reason
from .ts_ops import OUTSIDE, first_refused


def zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except Exception:
        return None


def is_torchscript(names: list[str]) -> bool:
    for name in names:
        _, _, inner = name.partition("/")
        if inner == "constants.pkl" or inner.startswith("code/"):
            return True
    return False


def _defines_setstate(spec: str, data: bytes) -> bool:
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        for record in reader.get_all_records():
            if record.startswith(("data/", "constants/")) or record.endswith(".pkl"):
                continue  # tensor storages and pickles are never compiled
            if b"__setstate__" in bytes(reader.get_record(record)):
                return True
    except Exception as exc:
        raise load_error(f"{spec} is a damaged TorchScript archive ({reason(exc)})") from exc
    return False


def open_torchscript(spec: str, path: Path, names: list[str], trust: bool, max_bytes: int = MAX_MODEL_BYTES) -> LoadedModel:
    check_zip(spec, path, max_bytes, "a model")  # bounded before the file is read into memory
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise load_error(f"cannot read {spec}: {reason(exc)}") from exc
    summary = check_zip(spec, data, max_bytes, "a model")  # the bytes we load, not the file again
    check_torch_records(spec, data, summary)
    if not trust and _defines_setstate(spec, data):
        raise trust_required(
            f"{spec} is TorchScript that defines __setstate__, which runs while the file is loaded"
        )
    try:
        with quiet_torch():  # torch.jit.load(BytesIO(data)), keeping the compilation unit to check
            unit = torch._C.CompilationUnit()
            cpp = torch._C.import_ir_module_from_buffer(unit, data, torch.device("cpu"), {}, False)
            model = torch.jit._recursive.wrap_cpp_module(cpp)
    except Exception as exc:
        raise load_error(f"{spec} looks like TorchScript but cannot be loaded ({reason(exc)})") from exc
    if not trust:
        try:
            refused = first_refused(model, unit)
        except Exception as exc:
            raise load_error(f"{spec}: cannot read the TorchScript code to check it ({reason(exc)})", hint="trust") from exc
        if refused is not None:
            raise trust_required(
                f"{spec} is TorchScript that calls {refused}, {OUTSIDE}"
            )
    try:
        model.eval()
    except Exception as exc:
        raise load_error(f"{spec} is TorchScript that cannot be put in eval mode ({reason(exc)})") from exc
    return LoadedModel(model, spec, "torchscript", None, None, False)
