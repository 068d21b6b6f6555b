"""A lesson's claim decided over seeds: run the lesson once per seed, average, draw the spread.

``lesson run NAME --seeds N`` runs the lesson with seeds ``seed, seed + 1, …`` (the lesson's
``seed``; ``N`` defaults to the lesson's ``seeds``, 3 unless it says otherwise). The claim
*holds* only when it holds on the mean figures and on at least the lesson's ``share`` of the
seeds (:func:`pruneviz.core.lesson_claim.decide`; default 0.6: 2 of 3, 3 of 5).

What a seed changes (:data:`SEEDED`): the order the training data is drawn in, the
initialisation of an arm trained from scratch, random scores (``method = "random"``) and, for a
generated ``[problem]``, its data and the network trained on it. The trained ``demo:`` network a
lesson starts from is the shipped one for every seed (retraining it per seed would take longer
than a class waits); lessons that only prune and measure it vary only where they draw at random.

The pictures are the first seed's, with the spread of the others drawn in: a line chart
whose series have the same x on every seed gets one faint line per seed (``series["seeds"]``)
and its mean as the solid line; a bar chart gets the mean as the bar and ± one standard
deviation as an error bar (``series["errors"]``).

Example::

    seeds = LessonSeeds(load("regrow"), seeds=5)
    for seed, result in seeds.run():
        print(seed, result.index, result.figures)
    seeds.verdict.holds, seeds.verdict.mean, seeds.verdict.std
"""

from __future__ import annotations

import copy
import math
import threading
import time
from typing import Iterator

from .jsonout import finite
from .lesson_claim import Verdict, decide
from .lesson_format import MAX_SEEDS, Lesson, LessonError
from .lesson_text import render as render_text

__all__ = ["LessonSeeds", "SEEDED", "spread"]

SEEDED = "the training data order, the initialisation of arms trained from scratch, random scores and a generated problem's data and network; the trained demo: network is the shipped one for every seed"


class LessonSeeds:
    """Runs of one lesson over several seeds; ``results`` and ``figures`` read like a
    :class:`~pruneviz.core.lessons.LessonRun`'s (the first seed's steps, the mean figures)."""

    def __init__(self, lesson: Lesson, seeds: int | None = None, device: str = "cpu", share: float | None = None):
        from .lessons import LessonRun

        n = lesson.seeds if seeds is None else seeds
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
            raise LessonError(f"the number of seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")
        if lesson.seed + n > 2**32:
            raise LessonError(f"seeds {lesson.seed} to {lesson.seed + n - 1} run past {2**32 - 1}")
        self.lesson = lesson
        self.share = lesson.share if share is None else float(share)
        self.seeds = [lesson.seed + k for k in range(n)]
        self.runs = [LessonRun(lesson, device=device, seed=sd) for sd in self.seeds]
        self.verdict: Verdict | None = None
        self.started = time.perf_counter()

    def run(self, cancel: threading.Event | None = None) -> Iterator[tuple[int, object]]:
        """Run every seed's steps; yields ``(seed, StepResult)``; decides the claim at the end."""
        for seed, r in zip(self.seeds, self.runs):
            for result in r.run(cancel):
                yield seed, result
            if cancel is not None and cancel.is_set():
                return
        self.verdict = decide(self.lesson.claim, [r.figures for r in self.runs], self.share)

    # ------------------------------------------------------------- what LessonRun offers
    @property
    def results(self):
        """The first seed's step results, each chart with the other seeds' spread drawn in."""
        first = self.runs[0].results
        out = []
        for k, r in enumerate(first):
            others = [run.results[k].charts for run in self.runs if len(run.results) > k]
            merged = copy.copy(r)
            merged.charts = [spread([c[j] for c in others if len(c) > j]) for j in range(len(r.charts))]
            merged.figures = {name: self.verdict.mean.get(name, v) for name, v in r.figures.items()} if self.verdict else dict(r.figures)
            if self.verdict and r.step.get("explain"):  # the text says what the mean figures (and the charts) show
                merged.note = render_text(r.step["explain"], self.verdict.mean)
            out.append(merged)
        return out

    @property
    def figures(self) -> dict[str, float]:
        return dict(self.verdict.mean) if self.verdict else {}

    @property
    def std(self) -> dict[str, float]:
        return dict(self.verdict.std) if self.verdict else {}

    def holds(self) -> bool:
        if self.verdict is None:
            raise LessonError("the lesson has not run on every seed")
        return self.verdict.holds

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def result_json(self) -> dict:
        """``{"lesson", "claim", "holds", "holds_on_mean", "share", "held_on", "seeds", "seeded",
        "figures" (the mean), "mean", "std", "per_seed": [{"seed", "holds", "figures"}], "seconds"}``."""
        v = self.verdict
        if v is None:
            raise LessonError("the lesson has not run on every seed")

        def rounded(d):
            return finite({k: round(x, 6) for k, x in d.items()})

        mean = rounded(v.mean)
        return {
            "lesson": self.lesson.name,
            "claim": self.lesson.claim.text,
            "holds": v.holds,
            "holds_on_mean": v.holds_on_mean,
            "share": v.share,
            "held_on": v.held_on,
            "seeds": list(self.seeds),
            "seeded": SEEDED,
            "figures": mean,
            "mean": dict(mean),
            "std": rounded(v.std),
            "per_seed": [{"seed": sd, "holds": h, "figures": rounded(r.figures)} for sd, h, r in zip(self.seeds, v.held, self.runs)],
            "seconds": round(self.seconds(), 2),
        }


def spread(charts: list[dict]) -> dict:
    """The first chart with the spread of the same chart on the other seeds (module docstring).

    Lines: each series whose x is the same on every seed gets ``seeds`` (the y of each seed,
    drawn faint) and ``y`` becomes their mean. Bars: ``values`` become the mean over the seeds
    and ``errors`` their standard deviation. Other kinds, or charts that differ in shape between
    seeds, are the first seed's unchanged."""
    first = charts[0]
    if len(charts) < 2 or first.get("kind") not in ("lines", "bars"):
        return first
    out = copy.deepcopy(first)
    if any(len(c.get("series", [])) != len(first.get("series", [])) for c in charts):
        return first
    for i, series in enumerate(out["series"]):
        if first["kind"] == "lines":
            ys = [c["series"][i]["y"] for c in charts]
            if any(list(c["series"][i]["x"]) != list(series["x"]) or len(y) != len(series["y"]) for c, y in zip(charts, ys)):
                continue
            series["seeds"] = [list(map(float, y)) for y in ys]
            series["y"] = [_mean(col) for col in zip(*ys)]
        else:
            vs = [c["series"][i]["values"] for c in charts]
            if any(len(v) != len(series["values"]) for v in vs) or any(c.get("categories") != first.get("categories") for c in charts):
                continue
            series["values"] = [_mean(col) for col in zip(*vs)]
            series["errors"] = [_std(col) for col in zip(*vs)]
    out["title"] = f"{first.get('title', '')} — mean of {len(charts)} seeds"
    return out


def _mean(col) -> float:
    return math.fsum(col) / len(col)


def _std(col) -> float:
    m = _mean(col)
    return math.sqrt(math.fsum((v - m) ** 2 for v in col) / (len(col) - 1)) if len(col) > 1 else 0.0
