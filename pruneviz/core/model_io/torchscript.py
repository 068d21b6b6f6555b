"""TorchScript archives: refused without trust when their code touches files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from pruneviz.core.errors import PrunevizError

from .common import LoadedModel, _TORCHSCRIPT_FILE_OPS, _TRUST_HINT, _error, _quiet_torch, _trust_required, _why


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
