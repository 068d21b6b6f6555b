"""State dicts (``.pt``/``.pth``/``.bin``, ``.safetensors``) built into the ``--arch`` model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from pruneviz.core.errors import ArchRequired

from .common import LoadedModel, load_error, name_list, one_line, shape_text, reason
from .factories import load_factory


# ---------------------------------------------------------------------------------------------
# state_dicts (.pt/.pth/.bin, .safetensors) + --arch


def _tensor_dict(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        return dict(obj)
    return None


def find_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
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


def build_from_arch(spec: str, sd: dict[str, torch.Tensor], arch: str | None, source: str) -> LoadedModel:
    if arch is None:
        raise ArchRequired(one_line(f"{spec} is a state_dict", 1000))
    model = load_factory(arch)()
    if not isinstance(model, torch.nn.Module):
        raise load_error(f"the architecture {arch} returned a {type(model).__name__}, not a torch.nn.Module")
    try:
        expected = model.state_dict()
    except Exception as exc:
        raise load_error(f"the model from the architecture {arch} has no usable state_dict: {reason(exc)}") from exc
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k} {shape_text(sd[k])} in the file vs {shape_text(v)} in the model"
        for k, v in expected.items()
        if k in sd and isinstance(v, torch.Tensor) and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing " + name_list(missing, 3))
        if unexpected:
            parts.append("unexpected " + name_list(unexpected, 3))
        if shapes:
            parts.append("shape mismatch " + name_list(shapes, 2))
        raise load_error(f"the state_dict in {spec} does not match the architecture {arch}: {'; '.join(parts)}", hint="arch")
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise load_error(f"the state_dict in {spec} does not match the architecture {arch}: {reason(exc)}", hint="arch") from exc
    try:
        model = model.cpu().eval()
    except Exception as exc:
        raise load_error(f"cannot move the model from the architecture {arch} to the CPU: {reason(exc)}") from exc
    return LoadedModel(model, spec, source, arch, None, True)


def open_safetensors(spec: str, path: Path, arch: str | None) -> LoadedModel:
    try:
        import safetensors.torch

        sd = safetensors.torch.load_file(os.fspath(path), device="cpu")
    except Exception as exc:
        raise load_error(f"{spec} is not a valid safetensors file ({reason(exc)})") from exc
    if not sd:
        raise load_error(f"{spec} holds no tensors")
    return build_from_arch(spec, dict(sd), arch, "safetensors")
