"""``pruneviz lesson list`` and ``pruneviz lesson run NAME --out DIR`` (see pruneviz.core.lessons).

``run`` accepts a shipped lesson's name or the path of a lesson file; it writes
``DIR/result.json``, the pictures as PNGs and ``DIR/handout.html``, prints one line per step
and exits 0 when the claim holds, 1 when it does not (2 for a refused lesson or bad arguments).
A lesson file that names a data factory is refused unless ``--trust`` (see
:mod:`pruneviz.core.lesson_specs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pruneviz.core.errors import PrunevizError


def add_parsers(sub) -> None:
    """Add the ``lesson`` subcommand to the top-level subparsers."""
    p = sub.add_parser("lesson", help="lessons: every pruning concept as a live demo")
    lsub = p.add_subparsers(dest="lesson_command", parser_class=type(p))
    lsub.add_parser("list", help="list the lessons (and what the ones that cannot run yet need)")
    q = lsub.add_parser("run", help="run a lesson without a display; write result.json, PNGs and handout.html")
    q.add_argument("name", metavar="NAME", help="a lesson name (see 'pruneviz lesson list') or a .toml lesson file")
    q.add_argument("--out", required=True, metavar="DIR", help="directory for result.json, the pictures and handout.html")
    q.add_argument("--trust", action="store_true", help="allow a lesson file that names a data factory (package.module:function): it imports and runs that module")
    q.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="where to run (default: cpu, the reproducible choice)")


def _check_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise PrunevizError(f"--out {path} is a file: give a directory")
    parent = out if out.exists() else next((q for q in out.absolute().parents if q.exists()), None)
    if parent is None or not parent.is_dir():
        raise PrunevizError(f"--out {path}: cannot create a directory there")
    return out


def cmd_lesson(args: argparse.Namespace) -> int:
    from pruneviz.cli import _emit
    from pruneviz.core import lessons

    if args.lesson_command == "list":
        for name in lessons.available():
            lesson = lessons.load(name)
            needs = f"  (needs: {', '.join(lesson.needs)})" if lesson.needs else ""
            _emit(f"{name:<16} {lesson.title}{needs}")
        return 0
    if args.lesson_command != "run":
        raise PrunevizError("use: pruneviz lesson list | pruneviz lesson run NAME --out DIR")
    out = _check_dir(args.out)
    lesson = lessons.load(args.name, trust=args.trust)  # refuses code the lesson names, unless --trust
    run = lessons.LessonRun(lesson, device=args.device)  # refuses a lesson whose verbs are missing
    _emit(f"{lesson.title}")
    for r in run.run():
        _emit(f"  {r.index + 1}. {r.step['action']}: {r.note}")
    from pruneviz.qt.lesson_charts import save_png

    result = lessons.write_outputs(run, out, save_png)
    pictures = sum(len(r.charts) for r in run.results)
    _emit(f"claim: {lesson.claim_text}")
    _emit(f"  {lesson.claim.text}: {'holds' if result['holds'] else 'does NOT hold'} ({result['seconds']:.1f} s)")
    _emit(f"wrote {out / 'result.json'}, {pictures} picture{'s' if pictures != 1 else ''}, {out / 'handout.html'}")
    return 0 if result["holds"] else 1


COMMANDS = {"lesson": cmd_lesson}
