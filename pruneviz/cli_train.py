"""Training on the command line: ``prune --finetune/--compensate`` and ``pruneviz train``.

Progress goes to stderr (a bar on a terminal, one line per epoch otherwise); ``--json`` keeps
stdout to the JSON result. Bad settings are refused before any work, in one line.
"""

from __future__ import annotations

import argparse
import math
import time

from pruneviz.cli_common import SEED_MAX, check_format, check_out, emit, fraction, int_in, model_args, open_session, plain, progress_stream, same_file, show
from pruneviz.core.errors import PrunevizError
from pruneviz.core.jsonout import dumps

EPOCHS_MAX = 100_000


def _positive(option: str):
    """An argparse type: a finite number above 0 (0, negatives, nan, inf are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise PrunevizError(f"{option} must be a number above 0, got {show(text)}") from None
        if not math.isfinite(value) or value <= 0:
            raise PrunevizError(f"{option} must be a finite number above 0, got {plain(text)}")
        return value

    return parse


def _training_options(p: argparse.ArgumentParser) -> None:
    from pruneviz.core.training import OPTIMIZERS

    p.add_argument("--train-data", metavar="DATA", help="training data (demo models: demo:digits-train by default)")
    p.add_argument("--lr", type=_positive("--lr"), metavar="LR", help="learning rate (default: the optimizer's usual one; demo models: their recipe's)")
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS), help="optimizer of the training (default: adam); pruned entries stay exactly 0 with each")
    p.add_argument("--batch-size", dest="train_batch_size", type=int_in("--batch-size", 1, 2**31 - 1), metavar="N", help="training batch size (default 32)")
    p.add_argument("--allow-divergence", action="store_true", help="keep training when the loss runs away (its mean over 8 steps above 10x its start and above a uniform guess's) or the accuracy falls to chance; by default the run stops and the model is put back")


def add_prune_options(p: argparse.ArgumentParser) -> None:
    """``prune``'s training options: --finetune EPOCHS, --train-data, --lr, --compensate, --json."""
    from pruneviz.core.compensate import MODES

    p.add_argument("--finetune", type=int_in("--finetune", 1, EPOCHS_MAX), metavar="EPOCHS", help="fine-tune the kept weights this many epochs after pruning")
    p.add_argument("--compensate", nargs="?", const=MODES[0], default=None, choices=MODES, metavar="{" + ",".join(MODES) + "}", help="update the kept weights to keep each layer's outputs on calibration data: exact (default: least squares for the chosen mask) or sparsegpt (SparseGPT chooses the mask too)")
    _training_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


def add_parsers(sub) -> None:
    """The ``train`` subcommand."""
    from pruneviz.core.schedules import DESCRIPTIONS, METHODS, SCHEDULES  # the core's lists: a copy here drifted once

    p = sub.add_parser("train", help="prune before / during / after training, or prune and regrow")
    model_args(p)
    p.add_argument("--data", metavar="DATA", required=True, help="held-out evaluation data")
    p.add_argument("--schedule", required=True, choices=SCHEDULES, help="when to prune: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()))
    p.add_argument("--target-sparsity", required=True, type=fraction("--target-sparsity"), metavar="S", help="fraction (0 to 1) of each layer's weights pruned at the end")
    p.add_argument("--epochs", required=True, type=int_in("--epochs", 1, EPOCHS_MAX), metavar="N", help="epochs of training over the training data")
    p.add_argument("--from-scratch", action="store_true", help="re-initialise the weights first (seeded by --seed)")
    p.add_argument("--method", default="magnitude", choices=METHODS, help="what the schedule prunes by: magnitude |w|, or snip |w·g| at initialisation (default: magnitude)")
    _training_options(p)
    p.add_argument("--seed", type=int_in("--seed", 0, SEED_MAX), default=0, help="seed of the training order and of --from-scratch (default: 0)")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the trained, pruned model (its suffix chooses the format, as for prune)")
    p.add_argument("--report", metavar="FILE.json", help="also write a JSON report with the per-epoch curve and the final sparsity")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


# ---------------------------------------------------------------------------------------------
# progress


class Progress:
    """Training progress on ``stream``: a redrawn bar on a terminal, one line per epoch otherwise."""

    def __init__(self, stream, what: str, epochs: int, steps_per_epoch: int):
        from pruneviz.core.text import printable

        self.stream, self.what, self.epochs = stream, printable(what), epochs
        self.total = max(1, epochs * steps_per_epoch)
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0
        self.started = time.monotonic()
        if not self.tty:
            self._line(f"{what}: {epochs} epoch{'s' if epochs != 1 else ''}, {self.total} steps")

    def _line(self, text: str) -> None:
        emit(text, self.stream)
        self.stream.flush()

    def update(self, p) -> None:
        acc = "" if p.accuracy is None else f" accuracy {p.accuracy:.4f}"
        if self.tty:
            if p.accuracy is None and time.monotonic() - self.last < 0.1:
                return
            done = min(1.0, p.step / self.total)
            bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
            self.stream.write(f"\r{self.what} [{bar}] epoch {p.epoch}/{self.epochs} loss {p.loss:.4f} sparsity {p.sparsity:.1%}{acc}  ")
            self.stream.flush()
            self.last = time.monotonic()
        elif p.accuracy is not None:
            self._line(f"{self.what}: epoch {p.epoch}/{self.epochs} loss {p.loss:.4f} sparsity {p.sparsity:.1%}{acc}")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_with_progress(gen, what: str, epochs: int, steps_per_epoch: int):
    """Drive a training generator, drawing progress on the command's stderr; returns its result.
    Ctrl-C closes the generator (the completed steps stay one undo step) and is re-raised."""
    bar = Progress(progress_stream(), what, epochs, steps_per_epoch)
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            bar.update(p)
    finally:
        bar.close()
        gen.close()


def _steps(session, data, batch_size) -> int:
    from pruneviz.core.training import DEFAULT_BATCH, training_data

    n = len(training_data(session, data)[0])
    return math.ceil(n / (batch_size or DEFAULT_BATCH))


def _warn(result) -> None:
    for w in result.warnings:
        emit(f"pruneviz: warning: {w}", progress_stream())


# ---------------------------------------------------------------------------------------------
# commands


def run_pipeline(s, job) -> dict:
    """Run ``prune``'s pipeline (:mod:`pruneviz.core.prune_pipeline`) on the opened session ``s``,
    drawing the fine-tuning's progress on stderr; returns the report."""
    from pruneviz.core import prune_pipeline
    from pruneviz.core.training import complete

    gen = prune_pipeline.run(s, job)
    if not job.finetune:
        return complete(gen)
    steps = _steps(s, job.train_data, job.batch_size)
    rep = run_with_progress(gen, "fine-tune", job.finetune, steps)
    for w in rep["finetune"].get("warnings", []):
        emit(f"pruneviz: warning: {w}", progress_stream())
    return rep


def prune_line(rep: dict) -> str:
    """The one line ``prune`` prints from the pipeline's report."""
    how = ""
    if rep.get("compensated"):
        how = f" ({'' if rep.get('compensation') == 'exact' else 'SparseGPT, '}compensated)"
    line = f"pruned {rep['pruned']:,} {rep['unit']}{how}; sparsity {rep['sparsity']:.1%}; params {rep['params_before']:,} -> {rep['params_file']:,} in the file, {rep['params_nonzero']:,} non-zero"
    if "macs_before" in rep:
        line += f"; MACs {rep['macs_before']:,} -> {rep.get('macs_shrunk', rep['macs_masked']):,}"
    if "accuracy_before" in rep:
        line += f"; accuracy {rep['accuracy_before']:.4f} -> {rep['accuracy_pruned']:.4f}"
        tuned = rep.get("finetune")
        if tuned is not None:
            epochs = tuned.get("epochs")
            line += f" -> {rep['accuracy_after']:.4f} after {epochs} epoch{'s' if epochs != 1 else ''} of fine-tuning"
        elif rep["accuracy_after"] != rep["accuracy_pruned"]:  # the written model differs (shrunk)
            line += f" ({rep['accuracy_after']:.4f} as written)"
    return line


def cmd_train(args) -> int:
    """``pruneviz train``: a pruning schedule while training; writes the model and its report."""
    from pruneviz.core.export import write_json

    check_out(args.out, "--out")
    check_format(args.out, "state_dict")
    if args.report is not None:
        check_out(args.report, "--report")
        if same_file(args.report, args.out):
            raise PrunevizError("--report and --out name the same file: give the report its own name, e.g. report.json")
    s = open_session(args, data=args.data)
    before = s.baseline()
    gen = s.train(args.schedule, args.target_sparsity, args.epochs, method=args.method, lr=args.lr, data=args.train_data, from_scratch=args.from_scratch, optimizer=args.optimizer, batch_size=args.train_batch_size, allow_divergence=args.allow_divergence)
    result = run_with_progress(gen, f"train ({args.schedule})", args.epochs, _steps(s, args.train_data, args.train_batch_size))
    _warn(result)
    rep = s.export(args.out)
    rep.update({
        "schedule": args.schedule,
        "target_sparsity": args.target_sparsity,
        "method": args.method,
        "from_scratch": args.from_scratch,
        "seed": args.seed,
        "accuracy_before": before.accuracy,
        "curve": result.curve,
        "train": result.to_json(),
    })
    if args.report:
        write_json(args.report, rep)
    if args.json:
        emit(dumps(rep))
        return 0
    emit(f"trained {args.schedule} to sparsity {rep['sparsity']:.1%} in {result.epochs} epochs; accuracy {before.accuracy:.4f} -> {rep['accuracy_after']:.4f}")
    emit(f"wrote {args.out}" + (f" and {args.report}" if args.report else ""))
    return 0



