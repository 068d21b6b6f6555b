"""The ``pruneviz`` command line: the Session verbs, one subcommand each.

Errors the engine refuses print one line, ``pruneviz: error: …``, and exit 2; ``--debug`` shows
the traceback. Qt is imported only for ``gui``.
"""

from __future__ import annotations

import argparse
import json
import sys

from pruneviz import __version__
from pruneviz.core.errors import PrunevizError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2."""

    def error(self, message):  # noqa: D102 - argparse API
        raise PrunevizError(f"{message} (see '{self.prog} --help')")


def _model_args(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    if model_required:
        p.add_argument("model", metavar="MODEL", help="demo:mlp, demo:cnn, a state_dict (.pt/.pth/.bin/.safetensors, with --arch), a .pt2 archive, a TorchScript archive, or a pickled module (--trust)")
    else:
        p.add_argument("model", metavar="MODEL", nargs="?", default="demo:mlp", help="model spec (default: demo:mlp)")
    p.add_argument("--arch", metavar="F", help="package.module:function that builds the model for a state_dict")
    p.add_argument("--trust", action="store_true", help="allow files that run code when opened (pickled modules)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to evaluate (default: auto)")


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PrunevizError(f"--amount must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise PrunevizError(f"--amount must be between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pruneviz", description="See and do neural-network pruning.")
    parser.add_argument("--version", action="version", version=f"pruneviz {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("gui", help="open the app")
    _model_args(p, model_required=False)
    p.add_argument("--data", metavar="DATA", help="evaluation data: demo:digits, .npz, .pt, package.module:function")
    p.add_argument("--screenshot", metavar="PNG", help="render the window after the first evaluation, save it, exit")

    p = sub.add_parser("inspect", help="list the prunable layers")
    _model_args(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("eval", help="evaluate accuracy and loss")
    _model_args(p)
    p.add_argument("--data", metavar="DATA", required=True)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("score", help="write importance scores to an .npz")
    _model_args(p)
    p.add_argument("--method", required=True)
    p.add_argument("--granularity", default="weight", choices=["weight", "neuron"])
    p.add_argument("--data", metavar="DATA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE.npz")

    p = sub.add_parser("prune", help="prune and export")
    _model_args(p)
    p.add_argument("--amount", required=True, type=_amount)
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--scope", default="layer", choices=["layer", "global"])
    p.add_argument("--granularity", default="weight", choices=["weight", "neuron"])
    p.add_argument("--method", default="magnitude")
    p.add_argument("--layers", metavar="GLOB[,GLOB]")
    p.add_argument("--data", metavar="DATA")
    p.add_argument("--format", default="state_dict", choices=["state_dict", "safetensors", "pt2", "onnx"])
    p.add_argument("--shrink", action="store_true", help="remove pruned neurons physically")
    p.add_argument("--report", metavar="FILE.json")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("loop", help="node pruning: remove the least important neuron until a stop condition")
    _model_args(p)
    p.add_argument("--data", metavar="DATA", required=True)
    p.add_argument("--method", default="magnitude")
    p.add_argument("--layers", metavar="GLOB[,GLOB]")
    p.add_argument("--min-accuracy", type=float, help="stop before accuracy falls below this")
    p.add_argument("--target-sparsity", type=float, help="stop when weight sparsity reaches this")
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--out", metavar="PATH", help="export the result (state_dict)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("demo", help="the built-in demo models and data")
    dsub = p.add_subparsers(dest="demo_command", parser_class=_Parser)
    dsub.add_parser("list", help="list demo models and data")
    q = dsub.add_parser("export", help="write a demo model and its data as plain files")
    q.add_argument("name")
    q.add_argument("dir")
    q = dsub.add_parser("train", help="retrain a demo model reproducibly")
    q.add_argument("name")
    q.add_argument("--out", help="where to write the weights (default: the shipped file)")
    q.add_argument("--seed", type=int, default=0)
    return parser


def _session(args, data=None):
    from pruneviz.core.session import Session

    return Session.open(args.model, data=data, arch=args.arch, trust=args.trust, device=args.device, seed=getattr(args, "seed", 0))


def _cmd_inspect(args) -> int:
    s = _session(args)
    layers = [layer.to_json(s.sparsity(layer.name)) for layer in s.layers]
    total = s.original_params
    if args.json:
        print(json.dumps({"layers": layers, "params": total, "sparsity": s.sparsity()}))
        return 0
    print(f"{s.spec}: {len(layers)} prunable layers, {total:,} parameters, sparsity {s.sparsity():.1%}")
    width = max(len(layer["name"]) for layer in layers)
    for layer in s.layers:
        shape = "×".join(map(str, layer.shape))
        flag = "  (output)" if layer.is_output else ""
        print(f"  {layer.name:<{width}}  {layer.kind:<7} {shape:<14} {layer.params:>10,}  {s.sparsity(layer.name):6.1%}{flag}")
    return 0


def _cmd_eval(args) -> int:
    s = _session(args, data=args.data)
    if args.batch_size < 1:
        raise PrunevizError("--batch-size must be at least 1")
    s.batch_size = args.batch_size
    r = s.evaluate()
    if args.json:
        print(json.dumps(_jsonable(r.to_json())))
    else:
        print(f"accuracy {r.accuracy:.4f}  loss {r.loss:.4f}  samples {r.samples}  device {r.device}")
    return 0


def _jsonable(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


def _cmd_score(args) -> int:
    import numpy as np

    from pruneviz.core.export import atomic_path

    s = _session(args, data=args.data)
    scores = s.scores(None, args.method, args.granularity)
    if not args.out.endswith(".npz"):
        raise PrunevizError("--out must end in .npz")
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{n: t.numpy() for n, t in scores.items()})
    print(f"wrote {args.method} {args.granularity} scores of {len(scores)} layers to {args.out}")
    return 0


def _cmd_prune(args) -> int:
    s = _session(args, data=args.data)
    if args.shrink and args.granularity != "neuron":
        raise PrunevizError("--shrink removes neurons: use it with --granularity neuron")
    n = s.prune(args.amount, scope=args.scope, granularity=args.granularity, method=args.method, layers=args.layers)
    rep = s.export(args.out, format=args.format, shrink=args.shrink, report=args.report)
    unit = "neurons" if args.granularity == "neuron" else "weights"
    line = f"pruned {n:,} {unit}; sparsity {rep['sparsity']:.1%}; params {rep['params_before']:,} -> {rep['params_after']:,}"
    if "accuracy_after" in rep:
        line += f"; accuracy {rep['accuracy_before']:.4f} -> {rep['accuracy_after']:.4f}"
    print(line)
    print(f"wrote {args.out}" + (f" and {args.report}" if args.report else ""))
    return 0


def _cmd_loop(args) -> int:
    s = _session(args, data=args.data)
    base = s.baseline()
    print(f"baseline accuracy {base.accuracy:.4f}")
    steps = 0
    for (layer, idx), result in s.prune_loop(args.method, args.min_accuracy, args.target_sparsity, args.max_steps, args.layers):
        steps += 1
        print(f"step {steps}: pruned neuron {idx} of {layer}; sparsity {s.sparsity():.1%}; accuracy {result.accuracy:.4f}")
    print(f"kept {s.history.index} steps; sparsity {s.sparsity():.1%}; accuracy {s.evaluate().accuracy:.4f}")
    if args.out:
        s.export(args.out)
        print(f"wrote {args.out}")
    return 0


def _cmd_demo(args) -> int:
    from pruneviz.core import demo

    if args.demo_command == "list":
        for name, text in demo.NAMES.items():
            print(f"demo:{name:<8} {text}")
        for name, text in demo.DATA_NAMES.items():
            print(f"demo:{name:<8} {text}")
        return 0
    if args.demo_command == "export":
        from pathlib import Path

        Path(args.dir).mkdir(parents=True, exist_ok=True)
        for path in demo.export(args.name, args.dir):
            print(f"wrote {path}")
        return 0
    if args.demo_command == "train":
        acc = demo.train(args.name, out_path=args.out, seed=args.seed)
        print(f"trained demo:{args.name}: held-out accuracy {acc:.4f}")
        return 0
    raise PrunevizError("use: pruneviz demo list | pruneviz demo export NAME DIR | pruneviz demo train NAME")


def _cmd_gui(args) -> int:
    from pruneviz.qt.app import run

    return run(args)


COMMANDS = {"inspect": _cmd_inspect, "eval": _cmd_eval, "score": _cmd_score, "prune": _cmd_prune, "loop": _cmd_loop, "demo": _cmd_demo, "gui": _cmd_gui}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            args = build_parser().parse_args(["gui", *([a for a in argv if a == "--debug"])])
            args.data = "demo:digits"
        return COMMANDS[args.command](args)
    except PrunevizError as exc:
        if debug:
            raise
        print(f"pruneviz: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pruneviz: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        print(f"pruneviz: error: internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); rerun with --debug and report it", file=sys.stderr)
        return 1
