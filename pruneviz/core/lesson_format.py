"""The lesson file format: TOML, checked by a small schema.

A lesson file (``resources/lessons/NAME.toml``, or any ``.toml`` a user writes)::

    title = "Criteria: which weights go first?"
    model = "demo:mlp"                 # or a [problem] table: a generated 2-D problem
    data = "demo:digits"
    seed = 0
    claim = "accuracy_random_70 < accuracy_magnitude_70"
    claim_text = "Random pruning does worst."

    [[steps]]
    caption = "The unpruned network."
    action = "evaluate"
    record = "baseline"

Every problem raises :class:`LessonError` with one line naming the file and the line
(``criteria.toml, line 12: step 3: unknown action 'prun'; actions are: …``); never a traceback.

The claim is an expression over the figures the steps record (:mod:`.lesson_claim`).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import TrustRequired
from .lesson_claim import DEFAULT_SHARE, Claim, LessonError, parse_claim
from .lesson_specs import SpecRefused, Specs, check_specs
from .lesson_text import TextError, names as text_names

__all__ = ["LessonError", "Lesson", "Claim", "parse_lesson", "load_lesson", "parse_claim", "untrusted", "MAX_BYTES", "MAX_SEEDS"]

#: the most seeds a lesson (or ``lesson run --seeds``) may ask for
MAX_SEEDS = 50


@dataclass
class Lesson:
    """A validated lesson: what to open, the steps, the claim."""

    name: str
    path: Path | None
    title: str
    summary: str
    model: str | None
    data: str | None
    problem: dict | None
    seed: int
    steps: list[dict]
    claim: "Claim"
    claim_text: str
    #: how many seeds ``lesson run`` decides the claim over by default (``seed``, ``seed + 1``, …)
    seeds: int = 3
    #: the share of those seeds the claim must hold on, besides holding on the mean figures
    share: float = DEFAULT_SHARE
    needs: list[str] = field(default_factory=list)  #: Session verbs the steps need that are missing
    #: what to open (files made absolute in the lesson's folder; :mod:`.lesson_specs`); None: not checked yet
    specs: Specs | None = None
    #: whether the user agreed to run the code ``specs.code`` names (``trust=True`` / ``--trust`` / the app's prompt)
    trusted: bool = False

    @property
    def runnable(self) -> bool:
        return not self.needs


# ------------------------------------------------------------------------------------ locating
class _Lines:
    """Finds the line of a key in the TOML source (tomllib does not keep positions)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def _key(self, start: int, stop: int, key: str) -> int | None:
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, stop):
            if pat.match(self.lines[i]):
                return i + 1
        return None

    def _tables(self, name: str) -> list[tuple[int, int]]:
        """(start, stop) line ranges of each ``[name]`` / ``[[name]]`` table body."""
        heads = [(i, m.group(1).strip()) for i, line in enumerate(self.lines) if (m := self._HEADER.match(line))]
        out = []
        for j, (i, head) in enumerate(heads):
            if head == name:
                stop = heads[j + 1][0] if j + 1 < len(heads) else len(self.lines)
                out.append((i, stop))
        return out

    def top(self, key: str | None = None) -> int:
        first = next((i for i, line in enumerate(self.lines) if self._HEADER.match(line)), len(self.lines))
        return (self._key(0, first, key) if key else None) or 1

    def table(self, name: str, key: str | None = None) -> int:
        spans = self._tables(name)
        if not spans:
            return self.top(name)
        start, stop = spans[0]
        return (self._key(start, stop, key) if key else None) or start + 1

    def step(self, index: int, key: str | None = None) -> int:
        spans = self._tables("steps")
        if index >= len(spans):
            return self.top("steps")
        start, stop = spans[index]
        return (self._key(start, stop, key) if key else None) or start + 1


# ------------------------------------------------------------------------------------- schema
_TOP = {
    "title": (str, True),
    "summary": (str, False),
    "model": (str, False),
    "data": (str, False),
    "problem": (dict, False),
    "seed": (int, False),
    "seeds": (int, False),
    "share": (float, False),
    "claim": (str, True),
    "claim_text": (str, False),
    "steps": (list, True),
}
_PROBLEM = {
    "kind": (str, True),
    "samples": (int, False),
    "noise": (float, False),
    "hidden": (list, False),
    "epochs": (int, False),
    "lr": (float, False),
}
PROBLEM_KINDS = ("moons", "spirals", "xor")
#: keys every step may have, besides the action's own settings
STEP_KEYS = {"caption": (str, True), "action": (str, True), "show": (str, False), "layer": (str, False), "explain": (str, False)}
SHOW = ("", "boundary", "network", "playground")

_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "a list", dict: "a table"}


def _type_ok(value: Any, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass(frozen=True)
class Setting:
    """One setting of an action: its type, whether it is required, its default, allowed values."""

    kind: type
    required: bool = False
    default: Any = None
    choices: tuple = ()
    items: type | None = None  #: element type of a list
    low: float | None = None
    high: float | None = None

    def check(self, value: Any) -> str | None:
        """None when ``value`` is fine, else what is wrong with it."""
        if not _type_ok(value, self.kind):
            return f"must be {_TYPE_NAMES[self.kind]}, got {value!r}"
        values = value if self.kind is list else [value]
        if self.kind is list and self.items is not None:
            for v in values:
                if not _type_ok(v, self.items):
                    return f"must be a list of {_TYPE_NAMES[self.items].split(' ', 1)[1]}s, got {v!r} in it"
        if self.kind is list and not values:
            return "must not be empty"
        for v in values:
            if self.choices and v not in self.choices:
                return f"must be one of {', '.join(map(str, self.choices))}; got {v!r}"
            if self.low is not None and isinstance(v, (int, float)) and not self.low <= v <= self.high:
                return f"must be between {self.low:g} and {self.high:g}, got {v!r}"
        return None


#: the largest lesson file read (the shipped ones are under 4 KiB)
MAX_BYTES = 256 * 1024


def parse_lesson(text: str, source: str, actions: dict, name: str | None = None, path: Path | None = None, has_verb: Callable[[str], bool] = lambda v: True, trust: bool = False) -> Lesson:
    """Parse and validate a lesson's TOML ``text``; ``source`` names it in messages.

    ``actions`` is the action registry (name -> object with ``settings``, ``needs`` and
    ``figures(settings)``); ``has_verb(verb)`` says whether the Session has a verb. The model and
    data may only be what :mod:`.lesson_specs` allows (files relative to ``path``'s folder, or the
    current folder without a path); a lesson naming a data factory raises
    :class:`~pruneviz.core.errors.TrustRequired` (listing the module and its file) unless
    ``trust``; nothing is imported here either way."""
    where = _Lines(text)

    def fail(line: int, message: str):
        raise LessonError(f"{source}, line {line}: {message}")

    if len(text) > MAX_BYTES:
        raise LessonError(f"{source}: {len(text):,} characters; a lesson file is at most {MAX_BYTES // 1024} KiB")
    try:
        doc = tomllib.loads(text)
    except RecursionError:  # tomllib recurses on nested arrays and inline tables
        raise LessonError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        what = re.sub(r"\s*\(at .*?\)", "", msg).strip() or "not valid TOML"
        raise LessonError(f"{source}, line {m.group(1) if m else '?'}: not valid TOML: {what}") from None
    for key in doc:
        if key not in _TOP:
            fail(where.top(key), f"unknown key {key!r}; a lesson has: {', '.join(_TOP)}")
    for key, (kind, required) in _TOP.items():
        if key not in doc:
            if required:
                fail(where.top(), f"missing {key!r}")
            continue
        if not _type_ok(doc[key], kind):
            fail(where.top(key) if kind is not dict else where.table(key), f"{key} must be {_TYPE_NAMES[kind]}")
    seed = doc.get("seed", 0)
    if not 0 <= seed < 2**32:
        fail(where.top("seed"), f"seed must be between 0 and {2**32 - 1}")
    seeds = doc.get("seeds", 3)
    if not 1 <= seeds <= MAX_SEEDS:
        fail(where.top("seeds"), f"seeds must be from 1 to {MAX_SEEDS}")
    if seed + seeds > 2**32:
        fail(where.top("seeds"), f"seed + seeds must stay below {2**32}")
    share = float(doc.get("share", DEFAULT_SHARE))
    if not 0.0 <= share <= 1.0:
        fail(where.top("share"), "share must be from 0 to 1 (the share of seeds the claim must hold on)")
    problem = doc.get("problem")
    if problem is not None:
        for key, value in problem.items():
            if key not in _PROBLEM:
                fail(where.table("problem", key), f"unknown key {key!r} in [problem]; it has: {', '.join(_PROBLEM)}")
            if not _type_ok(value, _PROBLEM[key][0]):
                fail(where.table("problem", key), f"problem {key} must be {_TYPE_NAMES[_PROBLEM[key][0]]}")
        if "kind" not in problem:
            fail(where.table("problem"), "[problem] needs a kind: " + ", ".join(PROBLEM_KINDS))
        if problem["kind"] not in PROBLEM_KINDS:
            fail(where.table("problem", "kind"), f"unknown problem kind {problem['kind']!r}; kinds are: {', '.join(PROBLEM_KINDS)}")
        hidden = problem.get("hidden", [8, 8])
        if not hidden or not all(_type_ok(h, int) and 1 <= h <= 256 for h in hidden) or len(hidden) > 4:
            fail(where.table("problem", "hidden"), "hidden must list 1 to 4 layer widths, each 1 to 256")
        if not 20 <= problem.get("samples", 400) <= 20_000:
            fail(where.table("problem", "samples"), "samples must be between 20 and 20000")
        if not 1 <= problem.get("epochs", 300) <= 20_000:
            fail(where.table("problem", "epochs"), "epochs must be between 1 and 20000")
        if "model" in doc or "data" in doc:
            fail(where.top("model") if "model" in doc else where.top("data"), "a lesson has either model/data or a [problem], not both")
    elif "model" not in doc:
        fail(where.top(), "missing 'model' (a model spec such as demo:mlp) or a [problem] table")
    try:  # what the lesson may open: checked before anything is imported
        specs = check_specs(doc.get("model"), doc.get("data"), path.parent if path is not None else None)
    except SpecRefused as exc:
        fail(where.top(exc.key), str(exc))

    steps = []
    needs: list[str] = []
    figures: set[str] = set()
    if not doc["steps"]:
        fail(where.top("steps"), "a lesson needs at least one step")
    for i, raw in enumerate(doc["steps"]):
        label = f"step {i + 1}"
        if not isinstance(raw, dict):
            fail(where.step(i), f"{label} must be a table ([[steps]])")
        for key, (kind, required) in STEP_KEYS.items():
            if key not in raw:
                if required:
                    fail(where.step(i), f"{label}: missing {key!r}")
                continue
            if not _type_ok(raw[key], kind):
                fail(where.step(i, key), f"{label}: {key} must be {_TYPE_NAMES[kind]}")
        action = actions.get(raw["action"])
        if action is None:
            fail(where.step(i, "action"), f"{label}: unknown action {raw['action']!r}; actions are: {', '.join(sorted(actions))}")
        if raw.get("show", "") not in SHOW:
            fail(where.step(i, "show"), f"{label}: show must be one of {', '.join(s for s in SHOW if s)}")
        if raw.get("show") in ("boundary", "playground") and problem is None:
            fail(where.step(i, "show"), f"{label}: show = {raw['show']!r} needs a [problem] lesson")
        step = {"caption": raw["caption"], "action": raw["action"]}
        for key in ("show", "layer", "explain"):
            if key in raw:
                step[key] = raw[key]
        for key, value in raw.items():
            if key in STEP_KEYS:
                continue
            setting = action.settings.get(key)
            if setting is None:
                known = ", ".join(sorted(action.settings)) or "none"
                fail(where.step(i, key), f"{label}: action {raw['action']!r} has no setting {key!r}; its settings: {known}")
            problem_text = setting.check(value)
            if problem_text:
                fail(where.step(i, key), f"{label}: {key} {problem_text}")
            step[key] = value
        for key, setting in action.settings.items():
            if key not in step:
                if setting.required:
                    fail(where.step(i), f"{label}: action {raw['action']!r} needs {key!r}")
                step[key] = setting.default
        extra = action.check(step) if getattr(action, "check", None) else None
        if extra:
            fail(where.step(i, extra[0]), f"{label}: {extra[1]}")
        for verb in action.needs:
            if not has_verb(verb) and verb not in needs:
                needs.append(verb)
        figures.update(action.figures(step))
        if "explain" in step:  # computed from figures this step or an earlier one records
            try:
                quoted = text_names(step["explain"])
            except TextError as exc:
                fail(where.step(i, "explain"), f"{label}: explain: {exc}")
            prefixes = tuple(f[:-1] for f in figures if f.endswith("*"))
            unknown = sorted(n for n in quoted - figures if not (prefixes and n.startswith(prefixes)))
            if unknown:
                fail(where.step(i, "explain"), f"{label}: explain quotes {', '.join(unknown)}, which no step up to this one records")
        steps.append(step)

    claim_line = where.top("claim")
    try:
        claim = parse_claim(doc["claim"])
    except LessonError as exc:
        fail(claim_line, f"claim: {exc}")
    prefixes = tuple(f[:-1] for f in figures if f.endswith("*"))
    unknown = sorted(n for n in claim.names - figures if not (prefixes and n.startswith(prefixes)))
    if unknown:
        fail(claim_line, f"claim uses {', '.join(unknown)}, which no step records; the steps record: {', '.join(sorted(f.replace('*', 'LAYER') for f in figures)) or 'nothing'}")
    if specs.code and not trust:
        raise untrusted(source, specs)
    return Lesson(
        name=name or source,
        path=path,
        title=doc["title"],
        summary=doc.get("summary", ""),
        model=doc.get("model"),
        data=doc.get("data"),
        problem=problem,
        seed=seed,
        steps=steps,
        claim=claim,
        claim_text=doc.get("claim_text", doc["claim"]),
        seeds=seeds,
        share=share,
        needs=needs,
        specs=specs,
        trusted=bool(trust),
    )


def untrusted(source: str, specs: Specs) -> TrustRequired:
    """The refusal of a lesson that names code to run (see :func:`parse_lesson`)."""
    return TrustRequired(f"{source} names code to run when opened ({'; '.join(specs.code)})", imports=list(specs.code))


def load_lesson(path: str | Path, actions: dict, has_verb: Callable[[str], bool] = lambda v: True, trust: bool = False) -> Lesson:
    """Read and validate a lesson file (see :func:`parse_lesson`)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise LessonError(f"{path.name}: larger than {MAX_BYTES // 1024} KiB; a lesson file is a short text")
    except OSError as exc:
        raise LessonError(f"cannot read lesson file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LessonError(f"{path.name}, line {line}: not UTF-8 text") from None
    return parse_lesson(text, path.name, actions, name=path.stem, path=path, has_verb=has_verb, trust=trust)
