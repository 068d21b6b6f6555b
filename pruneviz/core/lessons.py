"""Lessons: a pruning concept as a scripted, checked, live demo (Qt-free engine).

A lesson file (format: :mod:`pruneviz.core.lesson_format`) names a model and data (or a
generated 2-D problem), steps with a caption and an action each (:mod:`.lesson_actions`), and a
claim over the figures the steps record. :class:`LessonRun` opens the session and runs the
steps one at a time as generators (the app runs each in its worker and shows the progress
live; ``lesson run`` runs them all); :func:`write_outputs` writes ``result.json``, the pictures
as PNGs (through a renderer the caller passes: the app's, offscreen) and ``handout.html``.

Example::

    lesson = load("criteria")
    run = LessonRun(lesson)
    for result in run.run():
        print(result.index, result.caption, result.figures)
    run.holds()          # the claim, evaluated on this run's figures
"""

from __future__ import annotations

import base64
import html
import inspect
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import PrunevizError
from .files import atomic_path, atomic_write_text
from .jsonout import dumps, finite
from .shipped import resources_dir
from .lesson_actions import ACTIONS
from .lesson_format import Lesson, LessonError, load_lesson, untrusted
from .lesson_specs import SpecRefused, check_specs
from .lesson_labels import human
from .lesson_text import render as render_text

__all__ = ["LESSON_DIR", "available", "load", "has_verb", "LessonRun", "StepResult", "write_outputs", "LessonError"]

LESSON_DIR = resources_dir() / "lessons"
#: the order lessons are listed in (the concepts build on each other); others follow by name
ORDER = ["playground", "node-loop", "global-vs-layer", "criteria", "faithful", "fine-tune", "when", "surgeon", "regrow"]


def has_verb(verb: str) -> bool:
    """Whether this engine's Session has ``verb`` (``compensate`` is a parameter of ``prune``)."""
    from .session import Session

    if verb == "compensate":
        return "compensate" in inspect.signature(Session.prune).parameters
    return callable(getattr(Session, verb, None))


def available() -> list[str]:
    """Names of the lessons shipped in ``resources/lessons``, in teaching order."""
    names = [p.stem for p in LESSON_DIR.glob("*.toml")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def load(name_or_path: str | Path, trust: bool = False) -> Lesson:
    """A shipped lesson by name (``criteria``) or a lesson file by path; raises :class:`LessonError`.

    A lesson file may name only demo: models and data, files in its own folder or a generated
    problem; one naming a data factory (``package.module:function``) raises
    :class:`~pruneviz.core.errors.TrustRequired`, listing the module and the file it would be
    imported from, unless ``trust`` (:mod:`.lesson_specs`). Nothing is imported by loading."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        path = LESSON_DIR / f"{text}.toml"
        if not path.is_file():
            raise LessonError(f"no lesson named {text!r}; lessons are: {', '.join(available())} (or give the path of a .toml lesson file)")
    return load_lesson(path, ACTIONS, has_verb, trust=trust)


@dataclass
class StepResult:
    """What one step did: its caption, the figures it recorded, its pictures, a one-line note."""

    index: int  #: 0-based
    step: dict
    figures: dict[str, float] = field(default_factory=dict)
    charts: list[dict] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    @property
    def caption(self) -> str:
        return self.step["caption"]


class LessonRun:
    """One run of a lesson on a fresh session: step through it, go back, check the claim."""

    def __init__(self, lesson: Lesson, session=None, device: str = "cpu", seed: int | None = None):
        if lesson.needs:
            raise LessonError(f"lesson {lesson.name!r} needs Session.{lesson.needs[0]}, which this version of pruneviz does not have yet")
        self.specs = lesson.specs
        if lesson.problem is None and session is None:  # a Lesson built by hand is held to the rules a lesson file is
            try:
                self.specs = lesson.specs or check_specs(lesson.model, lesson.data, lesson.path.parent if lesson.path else None)
            except SpecRefused as exc:
                raise LessonError(f"lesson {lesson.name!r}: {exc}") from None
            if self.specs.code and not lesson.trusted:
                raise untrusted(lesson.path.name if lesson.path else lesson.name, self.specs)
        self.lesson = lesson
        self.device = device
        #: the seed of this run (the lesson's own unless given): it seeds the training data order,
        #: the initialisation of arms trained from scratch, random scores, and a generated problem
        self.seed = lesson.seed if seed is None else int(seed)
        if not 0 <= self.seed < 2**32:
            raise LessonError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
        self.session = session
        self.figures: dict[str, float] = {}
        self.results: list[StepResult] = []
        self._marks: list[int] = []  # history index before each run step
        self._current: StepResult | None = None
        self.started = time.perf_counter()
        self.seconds_open = 0.0

    # --------------------------------------------------------------------------- opening
    def open(self):
        """Open the lesson's session (trains the network of a generated problem); returns it."""
        if self.session is None:
            t = time.perf_counter()
            lesson = self.lesson
            if lesson.problem is not None:
                from . import toy

                self.session = toy.open_problem(lesson.problem, seed=self.seed, device=self.device)
            else:
                from .session import Session

                self.session = Session.open(self.specs.model, data=self.specs.data, device=self.device, seed=self.seed)
            self.seconds_open = time.perf_counter() - t
        return self.session

    # ------------------------------------------------------------------------- recording
    def record(self, name: str, value: float) -> None:
        """Record a named figure of the current step (claims and the handout read them)."""
        value = float(value)
        self.figures[name] = value
        if self._current is not None:
            self._current.figures[name] = value

    def chart(self, spec: dict) -> None:
        """Keep a picture of the current step (a chart spec the renderer draws)."""
        if self._current is not None:
            self._current.charts.append(spec)

    # --------------------------------------------------------------------------- running
    @property
    def done(self) -> int:
        """Number of steps run so far."""
        return len(self.results)

    def step_iter(self, cancel: threading.Event | None = None) -> Iterator[dict]:
        """Run the next step: yields progress ``{"text", "chart"?}``, returns its :class:`StepResult`.
        The step holds the session while it runs (edits from elsewhere are refused)."""
        if len(self.results) >= len(self.lesson.steps):
            raise PrunevizError("the lesson has no more steps")
        return (yield from self.open().hold("lesson step", self._step(cancel), "Running a lesson step"))

    def _step(self, cancel: threading.Event | None) -> Iterator[dict]:
        k = len(self.results)
        s = self.session
        step = self.lesson.steps[k]
        self._marks.append(s.history.index)
        self._current = result = StepResult(k, step)
        t = time.perf_counter()
        try:
            for item in ACTIONS[step["action"]].fn(self, step, cancel):
                if item.get("text"):
                    result.note = item["text"]
                yield item
                if cancel is not None and cancel.is_set():
                    break
            if step.get("show") and not (cancel is not None and cancel.is_set()):
                self._show(step["show"])
            if step.get("explain") and not (cancel is not None and cancel.is_set()):
                result.note = render_text(step["explain"], self.figures)  # what this run measured
        except BaseException:
            self._rewind_to(k)
            raise
        finally:
            self._current = None
        if cancel is not None and cancel.is_set():
            self._rewind_to(k)
            return None
        result.seconds = time.perf_counter() - t
        self.results.append(result)
        return result

    def _show(self, what: str) -> None:
        from . import toy

        if what in ("boundary", "playground"):
            acc = self.session.evaluate().accuracy
            self.chart(self.boundary_chart(f"decision boundary — held-out accuracy {acc:.1%}"))
        if what in ("network", "playground"):
            self.chart(toy.network(self.session))

    def boundary_chart(self, title: str) -> dict:
        """The decision boundary of a generated problem, with its held-out points."""
        from . import toy

        s = self.session
        return {"kind": "boundary", "title": title, "grid": toy.boundary(s), "bounds": toy.BOUNDS, "x": s.data.x.numpy(), "y": s.data.y.numpy()}

    def run(self, cancel: threading.Event | None = None) -> Iterator[StepResult]:
        """Run every remaining step; yields each :class:`StepResult`."""
        while len(self.results) < len(self.lesson.steps):
            gen = self.step_iter(cancel)
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
            if result is None:
                return
            yield result

    def back(self) -> None:
        """Undo the last step run: the session and the figures are as before it."""
        if self.results:
            self._rewind_to(len(self.results) - 1)

    def _rewind_to(self, k: int) -> None:
        if k < len(self._marks):
            self.session.goto(self._marks[k])
        del self._marks[k:]
        del self.results[k:]
        self.figures = {name: v for r in self.results for name, v in r.figures.items()}

    # ------------------------------------------------------------------------------ claim
    def holds(self) -> bool:
        """The lesson's claim on this run's figures (all steps must have run)."""
        return self.lesson.claim.evaluate(self.figures)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def result_json(self) -> dict:
        """``{"lesson", "claim", "holds", "figures", "seconds"}`` (figures rounded to 6 digits)."""
        figures = finite({k: round(v, 6) for k, v in self.figures.items()})
        return {"lesson": self.lesson.name, "claim": self.lesson.claim.text, "holds": self.holds(), "figures": figures, "seconds": round(self.seconds(), 2)}


# -------------------------------------------------------------------------------- outputs
Renderer = Callable[[dict, Path], None]


def write_outputs(run: LessonRun, out: str | Path, render: Renderer | None) -> dict:
    """Write ``result.json``, the pictures (``step-KK-N.png``, via ``render(chart, path)``) and
    ``handout.html`` (self-contained: images inline) into ``out``; returns the result dict.

    Each file is written to a temporary file in ``out`` and renamed over its name, so a link
    already there is replaced, never followed, and a failed write leaves the old file whole;
    ``result.json`` is strict JSON (a figure that is not finite is ``null``)."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pictures: dict[int, list[Path]] = {}
    if render is not None:
        for r in run.results:
            for j, chart in enumerate(r.charts, 1):
                path = out / f"step-{r.index + 1:02d}-{j}.png"
                with atomic_path(path) as tmp:
                    render(chart, tmp)
                pictures.setdefault(r.index, []).append(path)
    result = finite(run.result_json())
    atomic_write_text(out / "result.json", dumps(result, indent=2) + "\n")
    atomic_write_text(out / "handout.html", handout(run, result, pictures))
    return result


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"


_CSS = """
body{font-family:Georgia,'Times New Roman',serif;max-width:46em;margin:2em auto;padding:0 1em;color:#111;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.05em;margin:1.2em 0 .3em}
.sub{color:#555;margin-top:0} .claim{border:2px solid #444;padding:.6em .9em;margin:1em 0}
.holds{color:#0a6b2b;font-weight:bold} .fails{color:#a11;font-weight:bold}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0} td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} img{max-width:100%;max-height:7.5cm;border:1px solid #ddd;margin:.3em 0}
.step{page-break-inside:avoid} .note{color:#333;font-style:italic} ol.choices li.right{font-weight:bold}
@media print{body{margin:0;max-width:none} .step{page-break-inside:avoid}}
"""


def handout(run: LessonRun, result: dict, pictures: dict[int, list[Path]]) -> str:
    """A printable one-page HTML handout: captions, pictures (inline PNG), measured numbers."""
    e = html.escape
    lesson = run.lesson
    verdict = "<span class='holds'>holds</span>" if result["holds"] else "<span class='fails'>does not hold</span>"
    std = result.get("std") or {}
    if "per_seed" in result:  # decided over seeds (lesson_seeds.LessonSeeds)
        n = len(result["per_seed"])
        verdict += f" (on the mean of {n} seed{'s' if n != 1 else ''}: {'holds' if result['holds_on_mean'] else 'does not hold'}; on {result['held_on']} of {n} seeds, {result['share']:.0%} needed)"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(lesson.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(lesson.title)}</h1>",
        f"<p class='sub'>{e(lesson.summary)}</p>" if lesson.summary else "",
        f"<div class='claim'><b>Claim:</b> {e(lesson.claim_text)}<br><code>{e(lesson.claim.text)}</code> — in this run it {verdict}.</div>" if "per_seed" not in result else f"<div class='claim'><b>Claim:</b> {e(lesson.claim_text)}<br><code>{e(lesson.claim.text)}</code> — it {verdict}.</div>",
    ]
    for r in run.results:
        parts.append(f"<div class='step'><h2>{r.index + 1}. {e(r.caption)}</h2>")
        if r.step["action"] == "predict":
            items = "".join(f"<li class='{'right' if i + 1 == r.step['answer'] else ''}'>{e(c)}</li>" for i, c in enumerate(r.step["choices"]))
            parts.append(f"<p><b>Predict:</b> {e(r.step['question'])}</p><ol class='choices'>{items}</ol>")
            if r.step.get("reveal"):
                parts.append(f"<p class='note'>{e(r.step['reveal'])}</p>")
        elif r.note:
            parts.append(f"<p class='note'>{e(r.note)}</p>")
        for path in pictures.get(r.index, []):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<img alt='step {r.index + 1}' src='data:image/png;base64,{data}'>")
        parts.append("</div>")
    # three figure/value pairs a row: the table stays short enough for one printed page
    items = sorted(run.figures.items())
    per = math.ceil(len(items) / 3) or 1
    cols = [items[i * per : (i + 1) * per] for i in range(3)]
    def value(name, v):
        return _fmt(v) + (f" ± {_fmt(std[name])}" if name in std and std[name] is not None and math.isfinite(std[name]) else "")

    rows = "".join("<tr>" + "".join(f"<td title='{e(c[r][0])}'>{e(human(c[r][0]))}</td><td class='n'>{value(*c[r])}</td>" if r < len(c) else "<td></td><td></td>" for c in cols) + "</tr>" for r in range(per))
    head = "<th>figure</th><th>mean ± std</th>" if std else "<th>figure</th><th>value</th>"
    parts.append(f"<h2>What we measured</h2><table><tr>{head * 3}</tr>{rows}</table>")
    seeds = f"seeds {result['seeds'][0]}–{result['seeds'][-1]} (a seed changes {e(result['seeded'])})" if len(result.get("seeds", [])) > 1 else f"seed {result['seeds'][0] if result.get('seeds') else getattr(run, 'seed', lesson.seed)}"
    parts.append(f"<p class='sub'>{seeds}; {result['seconds']:.1f} s; model {e(lesson.model or 'problem:' + lesson.problem['kind'])}.</p></body></html>")
    return "\n".join(p for p in parts if p)
