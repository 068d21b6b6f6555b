"""Helpers the ``pruneviz`` subcommands share: argument types and options, output checks, opening
the session, printing safely, and holding library output back while a command runs.

:mod:`pruneviz.cli` (the parser and the simple commands) and its sub-modules (``cli_analysis``,
``cli_lessons``, ``cli_train``) all import from here; nothing here imports them, so the command
line has no import cycle.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys

from pruneviz import cli_models, cli_remote
from pruneviz.core import units
from pruneviz.core.errors import PrunevizError
from pruneviz.core.text import printable

def model_args(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    if model_required:
        p.add_argument("model", metavar="MODEL", help="demo:mlp, demo:cnn, a state_dict (.pt/.pth/.bin/.safetensors, with --arch), a .pt2 archive, a TorchScript archive, or a pickled module (--trust)")
    else:
        p.add_argument("model", metavar="MODEL", nargs="?", default="demo:mlp", help="model spec (default: demo:mlp)")
    p.add_argument("--arch", metavar="F", help="package.module:function that builds the model for a state_dict")
    p.add_argument("--trust", action="store_true", help="allow files that run code when opened (pickled modules)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to evaluate (default: auto)")
    cli_models.add_input_args(p)


def show(text: object, limit: int = 40) -> str:
    """A user's value for an error message: quoted, escaped (one line), shortened."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def plain(text: str) -> str:
    """A number the user typed, as typed when it is short and printable, else quoted and escaped."""
    return text if text.isprintable() and 0 < len(text) <= 30 and text.strip() == text else show(text)


def fraction(option: str):
    """An argparse type: a finite number between 0 and 1 (nan, inf, '1e309', '0.5.5' are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise PrunevizError(f"{option} must be a number between 0 and 1, got {show(text)}") from None
        if not 0.0 <= value <= 1.0:  # also false for nan
            raise PrunevizError(f"{option} must be between 0 and 1, got {plain(text)}")
        return value + 0.0  # -0.0 -> 0.0

    return parse




def int_in(option: str, low: int, high: int):
    """An argparse type: an integer in [low, high] (huge values would overflow torch later)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise PrunevizError(f"{option} must be a whole number between {low} and {high}, got {show(text)}") from None
        if not low <= value <= high:
            raise PrunevizError(f"{option} must be between {low} and {high}, got {plain(text)}")
        return value

    return parse


DATA_HELP = "evaluation data: demo:digits, .npz (arrays x, y), .pt (dict of tensors x, y), or package.module:function"
METHOD_HELP = f"importance: {', '.join(units.WEIGHT.methods())} (the data-driven ones calibrate on --calib-data)"
CALIB_HELP = ("the data that data-driven scores, sensitivity and compensation are computed on (default: the training data where known: "
               "demo:digits-train for the demo models, --train-data when given; otherwise --data, with a note that this inflates the figures)")

SEED_MAX = 2**32 - 1
BATCH_MAX = 2**31 - 1
STEPS_MAX = 10**9


# Where each --format is written, and the suffixes of the other formats (a mismatch is refused:
# pruneviz and other tools pick the reader by suffix, so x.safetensors holding a pickle is a trap).
FORMAT_SUFFIXES = {"state_dict": (".pt", ".pth", ".bin"), "safetensors": (".safetensors",), "pt2": (".pt2",), "onnx": (".onnx",)}
MODEL_SUFFIXES = {sfx for sfxs in FORMAT_SUFFIXES.values() for sfx in sfxs}


def check_out(path: str, option: str) -> None:
    """Refuse an output path that cannot be written as a new or replaced regular file, before any work."""
    import os
    from pathlib import Path

    if not path or not path.strip():
        raise PrunevizError(f"{option} is empty: name the file to write")
    if "\x00" in path:
        raise PrunevizError(f"{option} {show(path)} contains a NUL character: name a plain file")
    try:
        os.fsencode(path)
    except UnicodeError:
        raise PrunevizError(f"{option} {show(path)} cannot be a file name on this system: use plain characters") from None
    if path.endswith(("/", os.sep)) or Path(path).name in ("", ".", ".."):
        raise PrunevizError(f"{option} {show(path)} names a folder: name a file in it, e.g. {Path(path) / 'out'}")
    target = Path(path)
    if len(os.fsencode(target.name)) > 200:
        raise PrunevizError(f"{option}: the file name {show(target.name)} is too long: use a shorter name")
    try:
        if target.is_dir():
            raise PrunevizError(f"{option} {path} is a folder: name a file in it, e.g. {target / 'out'}")
        if target.exists() and not target.is_file():
            raise PrunevizError(f"{option} {path} exists and is not a regular file: name a new file")
        folder = target.parent
        if not folder.is_dir():
            raise PrunevizError(f"cannot write {option} {path}: folder {folder} does not exist; create it first")
    except OSError as exc:
        raise PrunevizError(f"cannot write {option} {path}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PrunevizError(f"cannot write {option} {path}: folder {folder} is not writable")


def check_format(path: str, fmt: str) -> None:
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    wanted = FORMAT_SUFFIXES[fmt]
    if suffix in wanted:
        return
    if fmt in ("pt2", "onnx") or suffix in MODEL_SUFFIXES:
        fits = next((f for f, sfx in FORMAT_SUFFIXES.items() if suffix in sfx), None)
        hint = f"use --format {fits} or " if fits else ""
        raise PrunevizError(f"--out {path} does not fit --format {fmt}: {hint}name the file {Path(path).with_suffix(wanted[0]).name}")


def format_for(path: str) -> str:
    """The export format a file name asks for (``x.pt2`` -> pt2); state_dict for any other name."""
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    return next((fmt for fmt, sfx in FORMAT_SUFFIXES.items() if suffix in sfx), "state_dict")


def same_file(a: str, b: str) -> bool:
    import os

    return os.path.abspath(a) == os.path.abspath(b)


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise PrunevizError("--device cuda: no CUDA GPU is available to this PyTorch; use --device cpu (or auto)")
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise PrunevizError("--device mps: Apple's Metal backend is not available; use --device cpu (or auto)")


def open_session(args, data=None):
    from pruneviz.core.session import Session

    check_device(args.device)
    cli_remote.check(args)
    # calibration: --calib-data, else --train-data where the command has it, else the session's default
    calib = getattr(args, "calib_data", None) or getattr(args, "train_data", None)
    return cli_remote.attach(args, cli_models.opened(Session.open(args.model, data=data, arch=args.arch, trust=args.trust, device=args.device, seed=getattr(args, "seed", 0), calib_data=calib, **cli_models.session_kwargs(args))))


#: how the command line words the hints of core errors (:data:`pruneviz.core.errors.HINTS`): by flag
CLI_HINTS = {
    "data": "pass --data",
    "calib_data": "pass --calib-data DATA, or --data",
    "train_data": "pass --train-data DATA (demo models default to demo:digits-train)",
    "example_input": "pass --data, or --input-shape C,H,W (token models: --input-shape T --input-dtype long)",
    "arch": "pass --arch package.module:function that builds the model",
    "trust": "pass --trust if you trust its source",
    "no_shrink": "export without --shrink",
    "allow_divergence": "try a lower --lr, or pass --allow-divergence to keep going",
    "device": "use --device auto or cpu",
    "batch_size": "use a smaller --batch-size or less data",
    "format": "use --format state_dict",
    "separate_calib": "pass --calib-data DATA with data the model is not evaluated on, e.g. its training data",
    "evaluator": "give --eval-on local (a Ray instance on this machine) or ray://HOST:PORT (a cluster, e.g. ray://10.0.0.5:10001)",
    "layers": "check --layers against the names 'pruneviz inspect MODEL' lists",
}


def error_text(exc: BaseException) -> str:
    """The text of ``exc`` for the terminal: a core error with its hint worded by flag."""
    return exc.worded(CLI_HINTS) if isinstance(exc, PrunevizError) else str(exc)


def emit(text: str, stream=None) -> None:
    """print() that cannot fail on characters the stream's encoding lacks (e.g. undecodable file names)
    and shows control characters as escapes (a layer name from a file cannot retitle the terminal,
    write the clipboard or clear the screen): every line the commands print passes here."""
    stream = stream or sys.stdout
    text = printable(text, keep_newlines=True)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        text = text.encode(encoding, "backslashreplace").decode(encoding, "replace")
    print(text, file=stream)


_progress: list = []  # the real stderr of the running command (library output is held back)


def progress_stream():
    """Where a command draws its progress: the terminal's stderr, even while library output is held."""
    return _progress[-1] if _progress else sys.stderr


class Held:
    def __init__(self, real):
        self.real = real
        self.buffer = io.StringIO()

    def release(self) -> None:
        """Pass on what the libraries wrote (warnings of a run that worked, or everything with --debug)."""
        text, self.buffer = self.buffer.getvalue(), io.StringIO()
        if text:
            self.real.write(printable(text, keep_newlines=True))
            self.real.flush()


@contextlib.contextmanager
def held_stderr():
    """Hold back what libraries write to stderr during a command.

    A failed command prints one line, ``pruneviz: error: …``; PyTorch would add its own (torch.export
    prints the partial graph of a model it cannot capture, its loggers print warnings). Output
    is held here and passed on when the command succeeds (or with ``--debug``), dropped when it fails.
    Covers ``print(file=sys.stderr)``, ``warnings`` and logging handlers that write to stderr.
    """
    real = sys.stderr
    held = Held(real)
    moved = []
    streams = {id(real), id(sys.__stderr__)}
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and id(getattr(handler, "stream", None)) in streams:
                moved.append((handler, handler.setStream(held.buffer)))
    sys.stderr = held.buffer
    _progress.append(real)
    try:
        yield held
    finally:
        _progress.pop()
        sys.stderr = real
        for handler, stream in moved:
            handler.setStream(stream)
