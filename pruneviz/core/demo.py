"""The built-in demo: a small digits data set, two trained models, and the routine that made them.

Everything here is Qt-free and imports only torch, numpy, safetensors and the standard library.

* Data: the UCI optical-recognition-of-handwritten-digits set (8x8, 1,797 samples) as shipped by
  scikit-learn, extracted once to ``resources/digits/digits.npz`` (see its PROVENANCE.md) with a
  fixed, stratified 20 % held-out split.
* Models: ``mlp`` and ``cnn`` (see :data:`NAMES`), weights in ``resources/models/*.safetensors``.
  They are re-made bit for bit (on the same CPU type and torch build) by :func:`train`, which the
  CLI runs as ``pruneviz demo train NAME`` and which also runs as
  ``python -m pruneviz.core.demo train NAME``.

Weights are only ever read from safetensors files, never unpickled.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np
import safetensors.torch
import torch
from torch import nn

from pruneviz.core import shipped
from pruneviz.core.errors import PrunevizError

__all__ = [
    "NAMES",
    "DATA_NAMES",
    "resources_dir",
    "build",
    "load_model",
    "load_digits",
    "train",
    "recipe",
    "export",
]

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

# Training recipes. Adam with a cosine-decayed learning rate, fixed batch size, no augmentation.
_RECIPES: dict[str, dict[str, float | int]] = {
    "mlp": {"epochs": 60, "lr": 5e-3, "batch_size": 32, "weight_decay": 0.0},
    "cnn": {"epochs": 30, "lr": 2e-3, "batch_size": 32, "weight_decay": 0.0},
}



def recipe(name: str) -> dict[str, float | int]:
    """The training recipe of demo model ``name`` (epochs, lr, batch_size, weight_decay)."""
    return dict(_RECIPES[_check_name(name)])


#: Threads used while training: a fixed count keeps float reductions in the same order.
_TRAIN_THREADS = 1


# --------------------------------------------------------------------------------------------
# Paths and names


def resources_dir() -> pathlib.Path:
    """The folder of shipped files (``resources/`` in the repository, ``pruneviz/resources`` in a
    wheel): see :func:`pruneviz.core.shipped.resources_dir`."""
    return shipped.resources_dir()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in NAMES:
        raise PrunevizError(
            f"unknown demo model {name!r}; choose one of: {', '.join(NAMES)}"
        )
    return name


def _weights_path(name: str) -> pathlib.Path:
    return resources_dir() / "models" / f"{name}.safetensors"


def _digits_path() -> pathlib.Path:
    return resources_dir() / "digits" / "digits.npz"


# --------------------------------------------------------------------------------------------
# Models


def build(name: str) -> nn.Module:
    """A fresh, untrained ``name`` model (torch's default initialisation, global RNG)."""
    name = _check_name(name)
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
    name = _check_name(name)
    path = _weights_path(name)
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
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    pred = model(x).argmax(dim=1)
    model.train(was_training)
    return float((pred == y).float().mean().item())


# --------------------------------------------------------------------------------------------
# Training


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, single-threaded, deterministic-algorithms torch; restores all of it on exit."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: leaves any CUDA RNG alone
        torch.set_num_threads(_TRAIN_THREADS)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=det_warn)
            torch.set_num_threads(threads)


def train(
    name: str,
    out_path: str | os.PathLike | None = None,
    seed: int = 0,
    epochs: int | None = None,
) -> float:
    """Train ``name`` from scratch on the train split; write its weights; return test accuracy.

    Deterministic on CPU: the same seed, epochs, torch build and CPU type give bit-identical
    weights. The global RNG state, thread count and deterministic-algorithms flag are restored
    afterwards. ``out_path`` defaults to the shipped file under ``resources/models/``.
    """
    name = _check_name(name)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PrunevizError(f"seed must be a non-negative integer, got {seed!r}")
    recipe = _RECIPES[name]
    n_epochs = int(recipe["epochs"] if epochs is None else epochs)
    if n_epochs < 1:
        raise PrunevizError(f"epochs must be at least 1, got {n_epochs}")
    batch_size = int(recipe["batch_size"])
    out = pathlib.Path(out_path) if out_path is not None else _weights_path(name)

    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    n = len(y_train)

    with _deterministic(seed):
        model = build(name).to(torch.float32)
        gen = torch.Generator().manual_seed(seed)
        steps_per_epoch = (n + batch_size - 1) // batch_size
        opt = torch.optim.Adam(
            model.parameters(), lr=float(recipe["lr"]), weight_decay=float(recipe["weight_decay"])
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs * steps_per_epoch)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(n_epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples; never hit with 1437 / 32
                    continue
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        acc = _accuracy(model, x_test, y_test)

    info = {
        "model": name,
        "seed": seed,
        "epochs": n_epochs,
        "test_accuracy": round(acc, 6),
        "torch": torch.__version__,
    }
    _atomic_write(out, _safetensors_bytes(model, info))
    return acc


def _safetensors_bytes(model: nn.Module, info: dict[str, object]) -> bytes:
    """safetensors bytes of ``model``'s state with ``info`` as metadata, byte-for-byte stable.

    safetensors keeps metadata in a hash map whose order varies between processes, so all of it
    goes into one key (``"pruneviz"``) as sorted JSON; then equal weights give equal files.
    """
    meta = {"pruneviz": json.dumps(info, sort_keys=True, separators=(",", ":"))}
    return safetensors.torch.save(_state_tensors(model), metadata=meta)


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full state_dict (BN running stats and num_batches_tracked included), contiguous copies."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------------
# Export


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
    name = _check_name(name)
    model = load_model(name)
    x, y = load_digits("test")
    out_dir = pathlib.Path(directory)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunevizError(f"cannot create export folder {out_dir}: {exc.strerror or exc}") from exc

    state = _state_tensors(model)

    def st_bytes() -> bytes:
        return _safetensors_bytes(model, {"model": name, "source": "pruneviz demo export"})

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
        _atomic_write(path, make())
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


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then ``os.replace`` it into place."""
    from .export import new_file_mode  # one rule for the modes of every file pruneviz writes

    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PrunevizError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file 0600; give it the mode a plain open() would.
            os.fchmod(f.fileno(), new_file_mode(path))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise PrunevizError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


# --------------------------------------------------------------------------------------------
# python -m pruneviz.core.demo


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruneviz.core.demo", description="Train, check or export the demo models."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_train = sub.add_parser("train", help="re-train a demo model and write its weights")
    p_train.add_argument("name", choices=list(NAMES))
    p_train.add_argument("--out", default=None, help="weights file (default: the shipped one)")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--epochs", type=int, default=None)
    p_eval = sub.add_parser("eval", help="held-out accuracy of the shipped weights")
    p_eval.add_argument("name", choices=list(NAMES))
    p_export = sub.add_parser("export", help="write model and data as plain torch/numpy files")
    p_export.add_argument("name", choices=list(NAMES))
    p_export.add_argument("directory")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "train":
            t0 = time.perf_counter()
            acc = train(args.name, args.out, seed=args.seed, epochs=args.epochs)
            out = args.out or _weights_path(args.name)
            print(f"{args.name}: held-out accuracy {acc:.4f}, {time.perf_counter() - t0:.1f} s -> {out}")
        elif args.cmd == "eval":
            x, y = load_digits("test")
            print(f"{args.name}: held-out accuracy {_accuracy(load_model(args.name), x, y):.4f}")
        else:
            for path in export(args.name, args.directory):
                print(path)
    except PrunevizError as exc:
        print(f"pruneviz: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
