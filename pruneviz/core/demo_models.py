"""The demo's models and data: names, architectures, shipped weights and the digits splits.

The models are read only from safetensors files, never unpickled. :mod:`pruneviz.core.demo`
re-exports the public names with the training routine; :mod:`.demo_export` writes a demo as
plain files. The small file helpers both use (:func:`safetensors_bytes`, :func:`write_file`)
live here.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import safetensors.torch
import torch
from torch import nn

from pruneviz.core import shipped
from pruneviz.core.errors import PrunevizError

__all__ = ["NAMES", "DATA_NAMES", "DATA_SPLITS", "resources_dir", "build", "load_model", "load_digits"]

NAMES: dict[str, str] = {
    "mlp": "MLP 64-128-64-10 on 8x8 digits: 3 Linear layers, 17k parameters",
    "cnn": "CNN 3x(Conv3x3+BN+ReLU) + 2 Linear on 8x8 digits, 48k parameters",
}

#: Number of samples in the held-out split of ``digits.npz`` (checked by the tests).
_N_TEST = 360
#: Number of samples in the training split (the rest of the 1,797).
_N_TRAIN = 1797 - _N_TEST

DATA_NAMES: dict[str, str] = {
    "digits": f"UCI optical digits, 8x8, held-out split ({_N_TEST} samples)",
    "digits-train": f"UCI optical digits, 8x8, training split ({_N_TRAIN} samples, the rest of demo:digits)",
}

#: The split of ``load_digits`` each demo data name reads.
DATA_SPLITS: dict[str, str] = {"digits": "test", "digits-train": "train"}

_SPLITS = ("train", "test", "all")


# --------------------------------------------------------------------------------------------
# Paths and names


def resources_dir() -> pathlib.Path:
    """The folder of shipped files (``resources/`` in the repository, ``pruneviz/resources`` in a
    wheel): see :func:`pruneviz.core.shipped.resources_dir`."""
    return shipped.resources_dir()


def check_name(name: object) -> str:
    """``name`` when it names a demo model; else PrunevizError listing the names."""
    if not isinstance(name, str) or name not in NAMES:
        raise PrunevizError(
            f"unknown demo model {name!r}; choose one of: {', '.join(NAMES)}"
        )
    return name


def weights_path(name: str) -> pathlib.Path:
    """Where the shipped weights of demo model ``name`` are."""
    return resources_dir() / "models" / f"{name}.safetensors"


def _digits_path() -> pathlib.Path:
    return resources_dir() / "digits" / "digits.npz"


# --------------------------------------------------------------------------------------------
# Models


def build(name: str) -> nn.Module:
    """A fresh, untrained ``name`` model (torch's default initialisation, global RNG)."""
    name = check_name(name)
    if name == "mlp":
        return nn.Sequential(
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def load_model(name: str) -> nn.Module:
    """``build(name)`` with the shipped weights loaded (strictly), in eval mode."""
    name = check_name(name)
    path = weights_path(name)
    if not path.is_file():
        raise PrunevizError(
            f"shipped weights for {name!r} are missing ({path}); "
            f"re-make them with: pruneviz demo train {name}"
        )
    try:
        state = safetensors.torch.load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise PrunevizError(
            f"cannot read {path} ({exc}); re-make it with: pruneviz demo train {name}"
        ) from exc
    model = build(name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise PrunevizError(
            f"{path} does not fit the {name!r} architecture ({first}); "
            f"re-make it with: pruneviz demo train {name}"
        ) from exc
    return model.eval()


# --------------------------------------------------------------------------------------------
# Data


def _read_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = _digits_path()
    if not path.is_file():
        raise PrunevizError(f"demo data missing ({path}); re-make it with resources/digits/extract.py")
    with np.load(path, allow_pickle=False) as f:
        x, y, test_idx = f["x"], f["y"], f["test_idx"]
    return x, y, test_idx


def load_digits(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as ``(x, y)``: x float32 [N, 64] scaled to [0, 1] (pixel count / 16), y int64.

    ``split`` is ``"test"`` (the fixed held-out 20 %), ``"train"`` (the rest) or ``"all"``
    (all 1,797, in the original order). Each call returns new tensors.
    """
    if split not in _SPLITS:
        raise PrunevizError(f"unknown digits split {split!r}; choose one of: {', '.join(_SPLITS)}")
    x, y, test_idx = _read_digits()
    if split == "test":
        idx = np.sort(test_idx)
    elif split == "train":
        mask = np.ones(len(y), dtype=bool)
        mask[test_idx] = False
        idx = np.flatnonzero(mask)
    else:
        idx = np.arange(len(y))
    xt = torch.from_numpy(x[idx].astype(np.float32) / np.float32(16.0))
    yt = torch.from_numpy(y[idx].astype(np.int64))
    return xt, yt


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode (its train/eval mode is restored)."""
    was_training = model.training
    model.eval()
    pred = model(x).argmax(dim=1)
    model.train(was_training)
    return float((pred == y).float().mean().item())


# --------------------------------------------------------------------------------------------
# Weight files


def safetensors_bytes(model: nn.Module, info: dict[str, object]) -> bytes:
    """safetensors bytes of ``model``'s state with ``info`` as metadata, byte-for-byte stable.

    safetensors keeps metadata in a hash map whose order varies between processes, so all of it
    goes into one key (``"pruneviz"``) as sorted JSON; then equal weights give equal files.
    """
    meta = {"pruneviz": json.dumps(info, sort_keys=True, separators=(",", ":"))}
    return safetensors.torch.save(state_tensors(model), metadata=meta)


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full state_dict (BN running stats and num_batches_tracked included), contiguous copies."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def write_file(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it into place (:func:`pruneviz.core.files.atomic_write_bytes`)."""
    from .files import atomic_write_bytes  # one atomic writer for every file pruneviz writes

    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunevizError(f"cannot write {path}: {exc.strerror or exc}") from exc
    atomic_write_bytes(path, data)
