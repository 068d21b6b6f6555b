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

This module is the demo's public face and its training routine; the models and data are in
:mod:`.demo_models`, the plain-file export in :mod:`.demo_export`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time
from collections.abc import Iterator

import torch
from torch import nn

from pruneviz.core.errors import PrunevizError

from .demo_export import export
from .demo_models import (
    DATA_NAMES,
    DATA_SPLITS,
    NAMES,
    accuracy,
    build,
    check_name,
    load_digits,
    load_model,
    resources_dir,
    safetensors_bytes,
    weights_path,
    write_file,
)

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
    "DATA_SPLITS",
]

# Training recipes. Adam with a cosine-decayed learning rate, fixed batch size, no augmentation.
_RECIPES: dict[str, dict[str, float | int]] = {
    "mlp": {"epochs": 60, "lr": 5e-3, "batch_size": 32, "weight_decay": 0.0},
    "cnn": {"epochs": 30, "lr": 2e-3, "batch_size": 32, "weight_decay": 0.0},
}



def recipe(name: str) -> dict[str, float | int]:
    """The training recipe of demo model ``name`` (epochs, lr, batch_size, weight_decay)."""
    return dict(_RECIPES[check_name(name)])


#: Threads used while training: a fixed count keeps float reductions in the same order.
_TRAIN_THREADS = 1


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
    name = check_name(name)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PrunevizError(f"seed must be a non-negative integer, got {seed!r}")
    recipe = _RECIPES[name]
    n_epochs = int(recipe["epochs"] if epochs is None else epochs)
    if n_epochs < 1:
        raise PrunevizError(f"epochs must be at least 1, got {n_epochs}")
    batch_size = int(recipe["batch_size"])
    out = pathlib.Path(out_path) if out_path is not None else weights_path(name)

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
        acc = accuracy(model, x_test, y_test)

    info = {
        "model": name,
        "seed": seed,
        "epochs": n_epochs,
        "test_accuracy": round(acc, 6),
        "torch": torch.__version__,
    }
    write_file(out, safetensors_bytes(model, info))
    return acc


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
            out = args.out or weights_path(args.name)
            print(f"{args.name}: held-out accuracy {acc:.4f}, {time.perf_counter() - t0:.1f} s -> {out}")
        elif args.cmd == "eval":
            x, y = load_digits("test")
            print(f"{args.name}: held-out accuracy {accuracy(load_model(args.name), x, y):.4f}")
        else:
            for path in export(args.name, args.directory):
                print(path)
    except PrunevizError as exc:
        print(f"pruneviz: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
