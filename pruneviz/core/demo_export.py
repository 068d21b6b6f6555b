"""``pruneviz demo export``: a demo model and its held-out data written as plain files that open
with torch, numpy and safetensors alone, with a README and an ``arch.py`` that rebuilds the
architecture.
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pruneviz.core.errors import PrunevizError

from .demo_models import NAMES, check_name, load_digits, load_model, safetensors_bytes, state_tensors, write_file

__all__ = ["export"]


_README = """\
pruneviz demo export: {name}
{desc}
Input: float32 [N, 64], an 8x8 digit image, row-major, pixel counts 0..16 divided by 16.
Output: float32 [N, 10], logits for the digits 0..9.

Files (all open with plain torch / numpy / safetensors, no pruneviz needed):

{name}.safetensors - weights and BatchNorm buffers; reading it runs no code
    from safetensors.torch import load_file
    state = load_file("{name}.safetensors")

{name}_state_dict.pt - the same state_dict, saved with torch.save
    import torch
    state = torch.load("{name}_state_dict.pt", weights_only=True)
    model.load_state_dict(state, strict=True)   # model: the nn.Sequential below

{name}.pt2 - the whole model as a torch.export program, batch size dynamic
    import torch
    model = torch.export.load("{name}.pt2").module()
    logits = model(x)

digits_test.npz - the held-out split pruneviz measures accuracy on ({n} samples)
    import numpy as np
    d = np.load("digits_test.npz")
    x, y = d["x"], d["y"]   # x float32 [{n}, 64] in [0, 1], y int64

Data: UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak, 1998),
https://doi.org/10.24432/C50P49, licensed CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/ (converted to float32 and split by pruneviz).

The architecture, as torch code (also in arch.py, whose build() returns it):
{arch}

With pruneviz, from this folder:
    pruneviz eval {name}.safetensors --arch arch:build --data digits_test.npz
"""


def export(name: str, directory: str | os.PathLike) -> list[pathlib.Path]:
    """Write the shipped ``name`` model and the held-out data as plain files into ``directory``.

    Writes ``<name>.safetensors``, ``<name>_state_dict.pt``, ``<name>.pt2`` (torch.export, batch
    dimension dynamic), ``digits_test.npz``, ``README.txt`` and ``arch.py`` (``build()`` returns
    the architecture, for ``--arch arch:build``); each atomically. Returns the
    paths in that order.
    """
    name = check_name(name)
    model = load_model(name)
    x, y = load_digits("test")
    out_dir = pathlib.Path(directory)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunevizError(f"cannot create export folder {out_dir}: {exc.strerror or exc}") from exc

    state = state_tensors(model)

    def st_bytes() -> bytes:
        return safetensors_bytes(model, {"model": name, "source": "pruneviz demo export"})

    def pt_bytes() -> bytes:
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    def pt2_bytes() -> bytes:
        batch = torch.export.Dim("batch", min=1)
        with torch.no_grad():
            ep = torch.export.export(model, (x[:8].clone(),), dynamic_shapes=({0: batch},))
        buf = io.BytesIO()
        torch.export.save(ep, buf)
        return buf.getvalue()

    def npz_bytes() -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, x=x.numpy().astype(np.float32), y=y.numpy().astype(np.int64))
        return buf.getvalue()

    def readme_bytes() -> bytes:
        text = _README.format(name=name, desc=NAMES[name], n=len(y), arch=_arch_source(model))
        return text.encode("utf-8")

    def arch_bytes() -> bytes:
        body = "\n".join(line[4:] for line in _arch_source(model).splitlines()[1:])  # "model = nn.Sequential(...)"
        text = (
            f'"""The architecture of demo:{name}: ``build()`` returns it untrained.\n\n'
            f"    pruneviz eval {name}.safetensors --arch arch:build --data digits_test.npz\n"
            '"""\n\nimport torch.nn as nn\n\n\ndef build() -> nn.Module:\n'
            + "\n".join("    " + line for line in body.replace("model = ", "return ", 1).splitlines())
            + "\n"
        )
        return text.encode("utf-8")

    jobs: list[tuple[str, Callable[[], bytes]]] = [
        (f"{name}.safetensors", st_bytes),
        (f"{name}_state_dict.pt", pt_bytes),
        (f"{name}.pt2", pt2_bytes),
        ("digits_test.npz", npz_bytes),
        ("README.txt", readme_bytes),
        ("arch.py", arch_bytes),
    ]
    written = []
    for filename, make in jobs:
        path = out_dir / filename
        write_file(path, make())
        written.append(path)
    return written


def _arch_source(model: nn.Module) -> str:
    """``nn.Sequential(...)`` source that rebuilds ``model``'s architecture."""
    lines = ["import torch.nn as nn", "model = nn.Sequential("]
    for layer in model:
        lines.append(f"    nn.{_layer_repr(layer)},")
    lines.append(")")
    return "\n".join("    " + line for line in lines)


def _layer_repr(layer: nn.Module) -> str:
    if isinstance(layer, nn.Unflatten):
        return f"Unflatten({layer.dim}, {tuple(layer.unflattened_size)})"
    if isinstance(layer, nn.Conv2d):
        return (
            f"Conv2d({layer.in_channels}, {layer.out_channels}, {layer.kernel_size[0]}, "
            f"padding={layer.padding[0]})"
        )
    if isinstance(layer, nn.BatchNorm2d):
        return f"BatchNorm2d({layer.num_features})"
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, nn.MaxPool2d):
        return f"MaxPool2d({layer.kernel_size})"
    return f"{type(layer).__name__}()"  # ReLU, Flatten
