"""``pruneviz lesson list`` and ``pruneviz lesson run NAME --out DIR`` (see pruneviz.core.lessons).

``run`` accepts a shipped lesson's name or the path of a lesson file; it writes
``DIR/result.json``, the pictures as PNGs and ``DIR/handout.html``, prints one line per step
and exits 0 when the claim holds, 1 when it does not (2 for a refused lesson or bad arguments).
``--seeds N`` runs the lesson on N seeds (default: the lesson's ``seeds``, 3 for the shipped
ones) and decides the claim over them (:mod:`pruneviz.core.lesson_seeds`).
A lesson file that names a data factory is refused unless ``--trust`` (see
:mod:`pruneviz.core.lesson_specs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pruneviz.cli_common import emit
from pruneviz.core.errors import PrunevizError


def add_parsers(sub) -> None:
    """Add the ``lesson`` subcommand to the top-level subparsers."""
    p = sub.add_parser("lesson", help="lessons: every pruning concept as a live demo")
    lsub = p.add_subparsers(dest="lesson_command", parser_class=type(p))
    lsub.add_parser("list", help="list the lessons (and what the ones that cannot run yet need)")
    q = lsub.add_parser("run", help="run a lesson without a display; write result.json, PNGs and handout.html")
    q.add_argument("name", metavar="NAME", help="a lesson name (see 'pruneviz lesson list') or a .toml lesson file")
    q.add_argument("--out", required=True, metavar="DIR", help="directory for result.json, the pictures and handout.html")
    q.add_argument("--seeds", type=_seeds, metavar="N", help="run the lesson on N seeds (the lesson's seed, seed + 1, …) and decide the claim over them: it holds when it holds on the mean figures and on the lesson's share of the seeds (default: the lesson's seeds, 3)")
    q.add_argument("--trust", action="store_true", help="allow a lesson file that names a data factory (package.module:function): it imports and runs that module")
    q.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="where to run (default: cpu, the reproducible choice)")


def _seeds(text: str) -> int:
    from pruneviz.core.lesson_format import MAX_SEEDS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_SEEDS}, got {text!r}") from None
    if not 1 <= n <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_SEEDS}, got {text!r}")
    return n


def _check_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise PrunevizError(f"--out {path} is a file: give a directory")
    parent = out if out.exists() else next((q for q in out.absolute().parents if q.exists()), None)
    if parent is None or not parent.is_dir():
        raise PrunevizError(f"--out {path}: cannot create a directory there")
    return out


def cmd_lesson(args: argparse.Namespace) -> int:
    from pruneviz.core import lessons

    if args.lesson_command == "list":
        for name in lessons.available():
            lesson = lessons.load(name)
            needs = f"  (needs: {', '.join(lesson.needs)})" if lesson.needs else ""
            emit(f"{name:<16} {lesson.title}{needs}")
        return 0
    if args.lesson_command != "run":
        raise PrunevizError("use: pruneviz lesson list | pruneviz lesson run NAME --out DIR")
    out = _check_dir(args.out)
    lesson = lessons.load(args.name, trust=args.trust)  # refuses code the lesson names, unless --trust
    from pruneviz.core.lesson_seeds import LessonSeeds

    run = LessonSeeds(lesson, seeds=args.seeds, device=args.device)  # refuses a lesson whose verbs are missing
    emit(f"{lesson.title}")
    for seed, r in run.run():
        if seed == run.seeds[0]:
            emit(f"  {r.index + 1}. {r.step['action']}: {r.note}")
        elif r.index == len(lesson.steps) - 1:
            emit(f"  seed {seed}: the claim {'holds' if lesson.claim.evaluate(run.runs[run.seeds.index(seed)].figures) else 'does not hold'}")
    from pruneviz.qt.render import chart_png

    result = lessons.write_outputs(run, out, chart_png)
    pictures = sum(len(r.charts) for r in run.results)
    n = len(run.seeds)
    emit(f"claim: {lesson.claim_text}")
    emit(f"  {lesson.claim.text}: {'holds' if result['holds'] else 'does NOT hold'} over {n} seed{'s' if n != 1 else ''} "
          f"(on the mean: {'holds' if result['holds_on_mean'] else 'does not hold'}; on {result['held_on']} of {n} seeds, {result['share']:.0%} needed; {result['seconds']:.1f} s)")
    for name in sorted(lesson.claim.names):
        emit(f"  {name} = {result['mean'][name]:.4f} ± {result['std'][name]:.4f}")
    emit(f"wrote {out / 'result.json'}, {pictures} picture{'s' if pictures != 1 else ''}, {out / 'handout.html'}")
    return 0 if result["holds"] else 1


COMMANDS = {"lesson": cmd_lesson}
