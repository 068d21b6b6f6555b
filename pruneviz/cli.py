"""The ``pruneviz`` command line: the Session verbs, one subcommand each.

Errors the engine refuses print one line, ``pruneviz: error: …``, and exit 2; ``--debug`` shows
the traceback. Qt is imported only for ``gui``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from pruneviz import __version__, cli_analysis, cli_lessons, cli_models, cli_remote, cli_train
from pruneviz.cli_common import (  # noqa: F401 - the shared helpers, under the names this module has always used
    BATCH_MAX,
    CALIB_HELP as _CALIB_HELP,
    CLI_HINTS,
    DATA_HELP as _DATA_HELP,
    METHOD_HELP as _METHOD_HELP,
    SEED_MAX,
    STEPS_MAX,
    check_format as _check_format,
    check_out as _check_out,
    emit as _emit,
    error_text,
    format_for,
    fraction as _fraction,
    held_stderr as _held_stderr,
    int_in as _int_in,
    model_args as _model_args,
    open_session as _session,
    same_file as _same_file,
    show as _show,
)
from pruneviz.core import units
from pruneviz.core.errors import PrunevizError
from pruneviz.core.jsonout import dumps
from pruneviz.core.text import printable

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2."""

    def error(self, message):  # noqa: D102 - argparse API
        raise PrunevizError(f"{message} (see '{self.prog} --help')")


_amount = _fraction("--amount")


#: ``--granularity``: any unit of the registry (or any N:M); its error names the choices
_UNIT_METAVAR = "{" + ",".join(units.names()) + ",N:M}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pruneviz",
        description="See and do neural-network pruning. Bare 'pruneviz' (no subcommand) opens the app on the built-in demo (demo:mlp) with its data (demo:digits).",
        epilog="Each subcommand has its own --help, e.g. 'pruneviz prune --help'.",
    )
    parser.add_argument("--version", action="version", version=f"pruneviz {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and the warnings of the libraries underneath (hidden otherwise)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("gui", help="open the app", description="Open the app on MODEL (default demo:mlp). A demo: model without --data opens with the demo data.")
    _model_args(p, model_required=False)
    p.add_argument("--data", metavar="DATA", help="evaluation data: demo:digits, .npz, .pt, package.module:function (default for demo: models: demo:digits)")
    p.add_argument("--screenshot", metavar="PNG", help="render the window after the first evaluation, save it, exit (the saved window layout is left alone)")
    p.add_argument("--size", metavar="WxH", help="window size in pixels, e.g. 1280x720 for a projector (default: the saved layout; 1400x900 for --screenshot)")
    p.add_argument("--presentation", action="store_true", help="start in presentation mode: larger fonts, lines and read-outs (View > Presentation mode, F11)")
    p.add_argument("--lesson", metavar="NAME", help="start a lesson (a name from 'pruneviz lesson list' or a .toml lesson file)")
    p.add_argument("--step", metavar="K", type=_int_in("--step", 1, 1000), help="with --lesson: run its first K steps")
    cli_remote.add_args(p)

    p = sub.add_parser("inspect", help="list the prunable layers")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p = sub.add_parser("eval", help="evaluate accuracy and loss")
    _model_args(p)
    p.add_argument("--data", metavar="DATA", required=True, help=_DATA_HELP)
    p.add_argument("--batch-size", type=_int_in("--batch-size", 1, BATCH_MAX), default=256, help="samples per batch (default: 256)")
    p.add_argument("--json", action="store_true", help="print one JSON object (accuracy, loss, per-class accuracy)")
    cli_remote.add_args(p)

    p = sub.add_parser("score", help="write importance scores to an .npz")
    _model_args(p)
    p.add_argument("--method", required=True, help=_METHOD_HELP)
    p.add_argument("--granularity", default="weight", type=units.parse_arg, metavar=_UNIT_METAVAR, help="what is scored: " + "; ".join(f"{u.name}: {u.summary}" for u in units.UNITS.values()) + " (scored per weight)")
    p.add_argument("--data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--calib-data", metavar="DATA", help=_CALIB_HELP)
    p.add_argument("--seed", type=_int_in("--seed", 0, SEED_MAX), default=0, help="seed of the random method (default: 0)")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the scores, one array per layer")
    p.add_argument("--json", action="store_true", help="also print one JSON object: method, granularity, layers and the calibration data")

    p = sub.add_parser("prune", help="prune and export")
    _model_args(p)
    p.add_argument("--amount", required=True, type=_amount, help="fraction (0 to 1) of the still-kept weights or neurons to remove, so repeated prunes compose")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the pruned model; .pt/.pth/.bin, .safetensors, .pt2 or .onnx chooses the format")
    p.add_argument("--scope", default="layer", choices=[*units.SCOPES, "sensitivity"], help="layer: each selected layer loses --amount of its own; global: one ranking over all selected layers; sensitivity: per-layer amounts allocated from a sensitivity analysis on the calibration data, or uniform or global when one of those scores better there (default: layer)")
    p.add_argument("--granularity", default="weight", type=units.parse_arg, metavar=_UNIT_METAVAR, help="what is pruned: " + "; ".join(f"{u.name}: {u.summary}" for u in units.UNITS.values()) + "; any N:M with N < M prunes to that pattern, --amount unused (default: weight)")
    p.add_argument("--method", default="magnitude", help=_METHOD_HELP + " (default: magnitude)")
    p.add_argument("--layers", metavar="GLOB[,GLOB]", help="only layers whose names match these globs (default: all; the output layer is neuron-pruned only when named exactly)")
    p.add_argument("--data", metavar="DATA", help=_DATA_HELP + "; reports accuracy before and after")
    p.add_argument("--calib-data", metavar="DATA", help=_CALIB_HELP)
    p.add_argument("--format", default=None, choices=["state_dict", "safetensors", "pt2", "onnx"], help="file format (default: from the suffix of --out, else state_dict)")
    p.add_argument("--shrink", action="store_true", help="remove pruned neurons or attention heads physically (with --granularity neuron or head)")
    p.add_argument("--report", metavar="FILE.json", help="also write a JSON report (amounts, sparsity, parameters, accuracy)")
    p.add_argument("--seed", type=_int_in("--seed", 0, SEED_MAX), default=0, help="seed of the random method (default: 0)")
    from pruneviz import cli_train

    cli_train.add_prune_options(p)
    cli_train.add_parsers(sub)

    p = sub.add_parser("loop", help="node pruning: remove the least important neuron until a stop condition")
    _model_args(p)
    p.add_argument("--data", metavar="DATA", required=True, help=_DATA_HELP)
    p.add_argument("--method", default="magnitude", help=_METHOD_HELP + " (neurons; also activation, apoz) (default: magnitude)")
    p.add_argument("--calib-data", metavar="DATA", help=_CALIB_HELP)
    p.add_argument("--layers", metavar="GLOB[,GLOB]", help="only neurons of layers matching these globs (default: all hidden layers)")
    p.add_argument("--min-accuracy", type=_fraction("--min-accuracy"), help="stop before accuracy falls below this")
    p.add_argument("--target-sparsity", type=_fraction("--target-sparsity"), help="stop when weight sparsity reaches this")
    p.add_argument("--max-steps", type=_int_in("--max-steps", 0, STEPS_MAX), default=10_000, help="stop after this many removals (default: 10000)")
    p.add_argument("--out", metavar="PATH", help="export the result (state_dict)")
    cli_remote.add_args(p)
    p.add_argument("--seed", type=_int_in("--seed", 0, SEED_MAX), default=0, help="seed of the random method (default: 0)")

    p = sub.add_parser("demo", help="the built-in demo models and data")
    dsub = p.add_subparsers(dest="demo_command", parser_class=_Parser)
    dsub.add_parser("list", help="list demo models and data")
    q = dsub.add_parser("export", help="write a demo model, its data and its architecture (arch.py) as plain files")
    q.add_argument("name", metavar="NAME", help="a demo model: mlp or cnn (or demo:mlp, demo:cnn, as 'demo list' prints them)")
    q.add_argument("dir", metavar="DIR", help="the folder to write into (created if missing; must be empty unless --force)")
    q.add_argument("--force", action="store_true", help="write into a folder that is not empty (files of the same names are replaced)")
    q = dsub.add_parser("train", help="retrain a demo model reproducibly")
    q.add_argument("name", metavar="NAME", help="a demo model: mlp or cnn (or demo:mlp, demo:cnn)")
    q.add_argument("--out", help="where to write the weights (default: the shipped file)")
    q.add_argument("--seed", type=_int_in("--seed", 0, SEED_MAX), default=0, help="training seed (default: 0)")
    cli_analysis.add_parsers(sub)
    cli_lessons.add_parsers(sub)
    return parser


def _cmd_inspect(args) -> int:
    s = _session(args)
    zeros = cli_models.file_sparsity(s)  # the zeros the file holds (a pruned file is sparse)
    layers = [layer.to_json(zeros[layer.name]) for layer in s.layers]
    total = s.original_params
    if args.json:
        _emit(json.dumps({"layers": layers, "params": total, "sparsity": zeros[None], "conforms": units.conformance(s)}))
        return 0
    _emit(f"{s.spec}: {len(layers)} prunable layers, {total:,} parameters, sparsity {zeros[None]:.1%}")
    follows = {n: p for p, names in units.conformance(s).items() for n in names}
    width = max(len(printable(layer["name"])) for layer in layers)  # as shown, escapes included
    for layer in s.layers:
        shape = "×".join(map(str, layer.shape))
        flag = ("  (output)" if layer.is_output else "") + (f"  {follows[layer.name]}" if layer.name in follows else "")
        _emit(f"  {printable(layer.name):<{width}}  {layer.kind:<7} {shape:<14} {layer.params:>10,}  {zeros[layer.name]:6.1%}{flag}")
    return 0


def _cmd_eval(args) -> int:
    s = _session(args, data=args.data)
    s.batch_size = args.batch_size
    r = s.evaluate()
    if args.json:
        _emit(dumps(r.to_json()))
    else:
        ppl = f"  perplexity {r.perplexity:.2f}  tokens {r.tokens}" if r.tokens else ""
        _emit(f"accuracy {r.accuracy:.4f}  loss {r.loss:.4f}{ppl}  samples {r.samples}  device {r.device}")
    return 0


def _cmd_score(args) -> int:
    import numpy as np

    from pruneviz.core.export import atomic_path

    _check_out(args.out, "--out")
    if not args.out.lower().endswith(".npz"):
        raise PrunevizError(f"--out {_show(args.out)} must end in .npz (scores are written as a numpy archive)")
    s = _session(args, data=args.data)
    scores = s.scores(None, args.method, args.granularity)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{n: t.numpy() for n, t in scores.items()})
    if args.json:
        from pruneviz.core.importance import DATA_METHODS

        calibration = s.calibration_info() if args.method in DATA_METHODS else None
        _emit(json.dumps({"method": args.method, "granularity": args.granularity, "layers": list(scores), "out": args.out, "calibration": calibration}))
    else:
        _emit(f"wrote {args.method} {args.granularity} scores of {len(scores)} {'layers' if units.get(args.granularity).picks_layers else 'attention modules'} to {args.out}")
    return 0


def _cmd_prune(args) -> int:
    from pruneviz.core import prune_pipeline

    unit = units.get(args.granularity)
    if args.shrink and not unit.shrinks:
        raise PrunevizError("--shrink removes neurons or heads: use it with --granularity " + " or ".join(n for n, u in units.UNITS.items() if u.shrinks))
    if args.scope == "sensitivity" and (args.compensate or unit is not units.WEIGHT):
        raise PrunevizError("--scope sensitivity allocates weights per layer: use it with --granularity weight and without --compensate")
    if not args.finetune:  # the training options, named by their flags
        if args.lr is not None or args.train_batch_size is not None:
            raise PrunevizError("--lr and --batch-size set the fine-tuning: add --finetune EPOCHS")
        if args.allow_divergence:
            raise PrunevizError("--allow-divergence is for the fine-tuning: add --finetune EPOCHS")
        if args.train_data is not None and not args.compensate:
            raise PrunevizError("--train-data is for --finetune EPOCHS or --compensate")
    _check_out(args.out, "--out")
    if args.format is None:
        args.format = format_for(args.out)
    _check_format(args.out, args.format)
    if args.report is not None:
        _check_out(args.report, "--report")
        if _same_file(args.report, args.out):
            raise PrunevizError("--report and --out name the same file: give the report its own name, e.g. report.json")
    s = _session(args, data=args.data)
    if args.shrink and unit.edits == "chan":  # layers that cannot be shrunk are left out, with a notice each
        args.layers = cli_models.shrinkable_layers(s, args.layers)
    if args.shrink and not unit.picks_layers:  # likewise attention modules whose heads cannot go
        from pruneviz.core.attention_heads import shrinkable_units

        args.layers = shrinkable_units(s, args.layers)
    job = prune_pipeline.PruneJob(
        amount=args.amount, scope=args.scope, granularity=args.granularity, method=args.method, layers=args.layers,
        compensate=args.compensate or None, finetune=args.finetune or 0, lr=args.lr, optimizer=args.optimizer,
        batch_size=args.train_batch_size, train_data=args.train_data, allow_divergence=args.allow_divergence,
        out=args.out, format=args.format, shrink=args.shrink, report=args.report,
    )
    rep = cli_train.run_pipeline(s, job)
    if args.json:
        _emit(dumps(rep))
        return 0
    _emit(cli_train.prune_line(rep))
    if "allocation" in rep:
        _emit(cli_analysis.allocation_line(rep["allocation"]))
    _emit(f"wrote {args.out}" + (f" and {args.report}" if args.report else ""))
    return 0


def _cmd_loop(args) -> int:
    if args.out is not None:
        _check_out(args.out, "--out")
        _check_format(args.out, "state_dict")
    s = _session(args, data=args.data)
    base = s.baseline()
    _emit(f"baseline accuracy {base.accuracy:.4f}")
    steps = 0
    for (layer, idx), result in s.prune_loop(args.method, args.min_accuracy, args.target_sparsity, args.max_steps, args.layers):
        steps += 1
        _emit(f"step {steps}: pruned neuron {idx} of {layer}; sparsity {s.sparsity():.1%}; accuracy {result.accuracy:.4f}")
    _emit(f"kept {s.history.index} steps; sparsity {s.sparsity():.1%}; accuracy {s.evaluate().accuracy:.4f}")
    if args.out:
        s.export(args.out)
        _emit(f"wrote {args.out}")
    return 0


def _cmd_demo(args) -> int:
    from pruneviz.core import demo

    if args.demo_command == "list":
        for name, text in demo.NAMES.items():
            _emit(f"demo:{name:<8} {text}")
        for name, text in demo.DATA_NAMES.items():
            _emit(f"demo:{name:<8} {text}")
        return 0
    if args.demo_command in ("export", "train") and args.name.startswith("demo:"):
        args.name = args.name[len("demo:") :]  # the form 'demo list' prints
    if args.demo_command == "export":
        from pathlib import Path

        if args.name not in demo.NAMES:  # before the folder is created
            raise PrunevizError(f"unknown demo model {args.name!r}; choose one of: {', '.join(demo.NAMES)}")
        if not args.dir.strip() or "\x00" in args.dir:
            raise PrunevizError(f"the folder name {_show(args.dir)} is not usable: name a folder to write into")
        if Path(args.dir).exists() and not Path(args.dir).is_dir():
            raise PrunevizError(f"{args.dir} exists and is not a folder: name a new or existing folder")
        if Path(args.dir).is_dir() and any(Path(args.dir).iterdir()) and not args.force:
            raise PrunevizError(f"{args.dir} is not empty: name a new folder, or pass --force to write into it")
        for path in demo.export(args.name, args.dir):
            _emit(f"wrote {path}")
        return 0
    if args.demo_command == "train":
        if args.name not in demo.NAMES:
            raise PrunevizError(f"unknown demo model {args.name!r}; choose one of: {', '.join(demo.NAMES)}")
        if args.out is not None:
            _check_out(args.out, "--out")
            _check_format(args.out, "safetensors")
        acc = demo.train(args.name, out_path=args.out, seed=args.seed)
        _emit(f"trained demo:{args.name}: held-out accuracy {acc:.4f}")
        return 0
    raise PrunevizError("use: pruneviz demo list | pruneviz demo export NAME DIR | pruneviz demo train NAME")


def _cmd_gui(args) -> int:
    # OpenMP's worker threads spin for a while after each parallel op; on a machine with few
    # cores that spinning takes the core the GUI thread needs to paint (clicks measured 26 ms
    # with passive waiting, 75 ms with spinning, on 2 busy cores). Only effective before torch
    # loads, which the app does next; a value the user set is kept.
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli_remote.check(args)  # a bad --eval-on: one line, before any window
    from pruneviz.qt.app import run

    return run(args)


def _cmd_train(args) -> int:
    from pruneviz.cli_train import cmd_train

    return cmd_train(args)


COMMANDS = {"inspect": _cmd_inspect, "eval": _cmd_eval, "score": _cmd_score, "prune": _cmd_prune, "loop": _cmd_loop, "demo": _cmd_demo, "gui": _cmd_gui, "train": _cmd_train, **cli_analysis.COMMANDS, **cli_lessons.COMMANDS}


def _error_line(exc: BaseException) -> str:
    text = printable(" ".join(error_text(exc).split()))
    return f"pruneviz: error: {text or type(exc).__name__}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv``; returns the exit status (0 ok, 2 refused, 1 a bug, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from .core.allocator import tune_allocator

    tune_allocator()  # evaluation on the CPU without a page fault per activation (see its module)
    with warnings.catch_warnings():
        if not debug:  # torch's deprecation notices are for library authors, not for this terminal
            warnings.simplefilter("ignore")
        return _main(argv, debug)


def _main(argv: list[str], debug: bool) -> int:
    try:
        return _run(argv, debug)
    finally:  # module state of this command (its sessions' pending notices) ends with it, also on failure
        cli_models.forget_opened()


def _run(argv: list[str], debug: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            args = build_parser().parse_args(["gui", *([a for a in argv if a == "--debug"])])
            args.data = "demo:digits"
        if args.command == "gui":
            return COMMANDS["gui"](args)
        with _held_stderr() as held:
            try:
                code = COMMANDS[args.command](args)
                cli_models.print_notices(hints=CLI_HINTS)
            except BaseException:
                if debug:
                    held.release()
                raise
            held.release()
        return code
    except SystemExit as exc:  # argparse's --help / --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except PrunevizError as exc:
        if debug:
            raise
        _emit(_error_line(exc), sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _emit("pruneviz: interrupted", sys.stderr)
        return 130
    except OSError as exc:  # the file system refused (disk full, permissions): not a bug
        if debug:
            raise
        where = f" ({printable(exc.filename)})" if getattr(exc, "filename", None) else ""
        _emit(f"pruneviz: error: {exc.strerror or _error_line(exc)[17:]}{where}: check the path, its permissions and the free space", sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        _emit(f"pruneviz: error: internal error ({type(exc).__name__}: {_error_line(exc)[17:]}); rerun with --debug and report it", sys.stderr)
        return 1
