"""``pruneviz sensitivity | knockout | sweep``: the analyses of :mod:`pruneviz.core.analysis` as
commands that write JSON (and with ``--plot`` the app's figure as a PNG, rendered offscreen), and
``prune --scope sensitivity`` (a budget allocation from a sensitivity analysis)."""

from __future__ import annotations

import sys

from pruneviz.cli_common import CALIB_HELP, check_out, emit, model_args, open_session, same_file
from pruneviz.core import units
from pruneviz.core.errors import PrunevizError


def _levels(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise PrunevizError(f"--levels must be numbers separated by commas, e.g. 0.1,0.5,0.9; got {part.strip()!r}") from None
        if not 0.0 <= value <= 1.0:  # also false for nan
            raise PrunevizError(f"--levels must be fractions from 0 to 1, got {part.strip()}")
        out.append(value)
    return out


def _names(option: str, choices):
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [n for n in names if n not in choices]
        if not names or bad:
            raise PrunevizError(f"{option} takes a comma-separated list of {', '.join(choices)}; got {text!r}")
        return names

    return parse


def add_parsers(sub) -> None:
    from pruneviz.core.importance import NEURON_METHODS

    def common(p, ray=True, measured_on_calibration=True):
        model_args(p)
        if measured_on_calibration:
            p.add_argument("--data", metavar="DATA", required=True, help="evaluation data (the points are measured on the calibration data, --calib-data; on this one only when none other is known): demo:digits, .npz, .pt, package.module:function")
        else:
            p.add_argument("--data", metavar="DATA", required=True, help="evaluation data each point is measured on: demo:digits, .npz, .pt, package.module:function")
        p.add_argument("--calib-data", metavar="DATA", help=CALIB_HELP)
        p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the results (JSON)")
        p.add_argument("--plot", metavar="FILE.png", help="also write the figure the app shows, as a PNG")
        if ray:
            p.add_argument("--ray", metavar="local|ADDRESS", help="run the evaluations on Ray: local starts it here, HOST:PORT joins a cluster")

    p = sub.add_parser("sensitivity", help="prune each layer alone at each level and evaluate")
    common(p)
    p.add_argument("--layers", metavar="GLOB[,GLOB]", help="only layers whose names match these globs (default: all)")
    p.add_argument("--levels", type=_levels, metavar="0.1,0.2,...", help="sparsity levels, fractions from 0 to 1 (default: 0.1 to 0.9)")
    p.add_argument("--granularity", default="weight", choices=units.leveled(), help="prune single weights or whole neurons at each level (default: weight)")
    p.add_argument("--method", default="magnitude", help="the criterion that ranks what goes first at each level (default: magnitude)")

    p = sub.add_parser("knockout", help="remove each neuron of a layer alone and evaluate; rate each criterion")
    common(p)
    p.add_argument("--layer", required=True, metavar="NAME", help="the layer whose neurons are knocked out one at a time")
    p.add_argument("--method", default="magnitude", help="the criterion drawn beside the knockout with --plot")

    p = sub.add_parser("sweep", help="accuracy vs sparsity of one-shot prunes, per method and scope")
    common(p, measured_on_calibration=False)
    p.add_argument("--methods", type=_names("--methods", NEURON_METHODS), default=["magnitude"], metavar="M[,M]", help="criteria to sweep, comma-separated (default: magnitude)")
    p.add_argument("--scopes", type=_names("--scopes", units.SCOPES), default=["layer"], metavar="layer,global", help="per layer, global, or both, comma-separated (default: layer)")
    p.add_argument("--granularity", default="weight", choices=units.leveled(), help="prune single weights or whole neurons at each level (default: weight)")
    p.add_argument("--layers", metavar="GLOB[,GLOB]", help="only layers whose names match these globs (default: all)")
    p.add_argument("--levels", type=_levels, metavar="0.1,0.2,...", help="sparsity levels, fractions from 0 to 1 (default: 0.1 to 0.9)")


def _check_outputs(args) -> None:
    check_out(args.out, "--out")
    if args.plot is not None:
        check_out(args.plot, "--plot")
        if not args.plot.lower().endswith(".png"):
            raise PrunevizError(f"--plot {args.plot} must end in .png")
        if same_file(args.plot, args.out):
            raise PrunevizError("--plot and --out name the same file: give each its own name")
    if getattr(args, "ray", None) is not None:
        from pruneviz.core.workers import ray_module

        ray_module()  # installed? fail before any work


def _run(gen, label: str):
    """Drain an analysis, with a progress counter on stderr when it is a terminal."""
    tty = sys.stderr.isatty()
    n = 0
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            if tty:
                print(file=sys.stderr)
            return stop.value
        n += 1
        if tty:
            print(f"\r{label}: {n} evaluations", end="", file=sys.stderr, flush=True)


def _write(args, result: dict, figure) -> None:
    from pruneviz.core.jsonout import write_json

    write_json(args.out, result, indent=1)
    if args.plot is not None:
        from pruneviz.qt.render import analysis_png

        analysis_png(figure, args.plot)
    emit(f"wrote {args.out}" + (f" and {args.plot}" if args.plot else ""))


def cmd_sensitivity(args) -> int:
    _check_outputs(args)
    s = open_session(args, data=args.data)
    res = _run(s.sensitivity(args.layers, args.levels, args.granularity, args.method, ray=args.ray), "sensitivity")
    emit(_measured_on(res["calibration"]))
    for name, points in res["layers"].items():
        worst = min(points, key=lambda p: p["accuracy"])
        emit(f"{name}: accuracy {res['baseline']['accuracy']:.4f} -> {worst['accuracy']:.4f} at {worst['sparsity']:.0%} of the layer")
    _write(args, res, lambda dp: dp.sensitivity_plot(res))
    return 0


def cmd_knockout(args) -> int:
    _check_outputs(args)
    s = open_session(args, data=args.data)
    from pruneviz.core.importance import check_method

    check_method(args.method, "neuron", True)
    res = _run(s.knockout(args.layer, ray=args.ray), "knockout")
    emit(_measured_on(res["calibration"]))
    for m, f in res["faithfulness"].items():
        rho = "n/a" if f["spearman"] is None else f"{f['spearman']:+.3f}"
        emit(f"{m:<10} Spearman {rho}  top-10 overlap {f['top10_overlap']:.0%}")
    scores = s.scores(args.layer, args.method, "neuron").tolist()
    _write(args, res, lambda dp: dp.knockout_plot(res, scores=scores, method=args.method))
    return 0


def cmd_sweep(args) -> int:
    from pruneviz.core import analysis

    _check_outputs(args)
    s = open_session(args, data=args.data)
    gen = analysis.sweeps(s, args.levels, args.scopes, [args.granularity], args.methods, args.layers, ray=args.ray)
    res = _run(gen, "sweep")
    for c in res["curves"]:
        last = c["points"][-1]
        emit(f"{c['method']:<10} {c['scope']:<6} sparsity {last['sparsity']:.1%}: accuracy {last['accuracy']:.4f}")
    _write(args, res, lambda dp: dp.sweep_plot(res))
    return 0


def _measured_on(calibration: dict) -> str:
    return f"measured on the calibration data {calibration['spec']} ({calibration['samples']:,} samples)"


def allocation_line(detail: dict) -> str:
    """One line saying which plan ``prune --scope sensitivity`` applied and why."""
    figs = ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in detail["candidates"].items())
    return f"applied the {detail['chosen']} plan: calibration accuracy {figs} ({detail['calibration']['spec']})"


COMMANDS = {"sensitivity": cmd_sensitivity, "knockout": cmd_knockout, "sweep": cmd_sweep}
