"""Lesson text computed from the figures it describes: a step's ``explain`` is a template.

A caption written before a lesson runs cannot know which arm comes out ahead; a sentence that
states an ordering its own chart contradicts teaches the wrong thing. So every number and every
ordering a lesson states about its own run is a placeholder, filled from the figures the run
measured (:func:`render`), and each placeholder is kept as a :class:`Statement` that
:func:`check` verifies against a set of figures (the test renders each lesson from its
``result.json`` and checks it; with a figure perturbed, the check fails).

Placeholders (no ``eval``; names are figures the steps record)::

    {NAME:%}                 84.2 %          (a share: accuracy, sparsity)
    {NAME:.2f}               0.84            (any fixed number of decimals)
    {NAME:d}                 892             (a count)
    {order:A=label a,B=label b,...}          label b 39.7 % > label a 36.4 % > ...  (highest first;
                                             "=" between two that show the same at 0.1 %;
                                             {order.2f:…} shows 0.84 instead of a share)
    {best:A=label a,...}     the label of the highest (ties: every tied label, "and")
    {worst:A=label a,...}    the label of the lowest
    {cmp:A,B,more,less,same} "more" when A > B, "less" when A < B, "same" when they show the same
    {diff:A,B}               the gap A − B in points: +5.3 points, −0.4 points, no change

Example::

    render("At 90 %: {order:acc_obd_90=OBD,acc_magnitude_90=magnitude}.", {"acc_obd_90": 0.397, "acc_magnitude_90": 0.364})
    # 'At 90 %: OBD 39.7 % > magnitude 36.4 %.'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Statement", "render", "render_checked", "check", "names", "static", "TextError", "COMPARATIVES"]

_FIELD = re.compile(r"\{([^{}]*)\}")
#: shares are shown to 0.1 %: two figures closer than that read as the same
_SAME = 0.0005
#: words that state an ordering: static text (written before the run) must not use them to
#: compare the lesson's own arms; a computed ``{order:…}`` / ``{cmp:…}`` says it instead
COMPARATIVES = re.compile(r"\b(better than|worse than|beats?|outperforms?|ahead of|more accurate|less accurate|higher than|lower than|keeps? more|keeps? less|cuts? (?:worse|better))\b", re.I)


class TextError(ValueError):
    """A template that names a figure the run did not record, or is malformed."""


@dataclass(frozen=True)
class Statement:
    """One thing a rendered text says: ``kind`` is value / order / best / worst / cmp / diff;
    ``names`` the figures it reads, ``shown`` the words it put in the text."""

    kind: str
    names: tuple
    shown: str
    arg: tuple = ()  #: value: the format; cmp: the three words; order/best/worst: the labels


def _share(v: float) -> str:
    return f"{v * 100:.1f} %"


def _value(v: float, fmt: str) -> str:
    if not math.isfinite(v):
        return "–"
    if fmt == "%":
        return _share(v)
    if fmt == "d":
        return f"{round(v):,}"
    m = re.fullmatch(r"\.(\d)f", fmt)
    if m:
        return f"{v:.{m.group(1)}f}"
    raise TextError(f"unknown format {fmt!r}: use %, d or .Nf")


def _points(gap: float) -> str:
    g = round(gap * 100, 1)
    return "no change" if g == 0 else f"{g:+.1f} points".replace("-", "−")


def _pairs(body: str) -> list[tuple[str, str]]:
    out = []
    for part in body.split(","):
        if "=" not in part:
            raise TextError(f"{part!r}: write FIGURE=label")
        name, label = part.split("=", 1)
        out.append((name.strip(), label.strip()))
    if len(out) < 2:
        raise TextError("an ordering needs two figures or more")
    return out


def _get(figures: dict, name: str) -> float:
    if name not in figures or figures[name] is None:
        raise TextError(f"the text quotes {name}, which this run did not record")
    return float(figures[name])


def _ranking(head: str) -> tuple[str | None, str]:
    """``order`` / ``best`` / ``worst``, with an optional format after it (``order.2f``)."""
    for kind in ("order", "best", "worst"):
        if head.startswith(kind):
            return kind, head[len(kind):] or "%"
    return None, ""


def _statement(field: str, figures: dict) -> Statement:
    head, _, body = field.partition(":")
    head = head.strip()
    kind, fmt = _ranking(head)
    if kind:
        pairs = _pairs(body)
        vals = [(_get(figures, n), n, label) for n, label in pairs]
        ranked = sorted(vals, key=lambda t: -t[0])
        if kind == "order":
            text = ranked[0][2] + " " + _value(ranked[0][0], fmt)
            for (a, _, _), (b, _, lb) in zip(ranked, ranked[1:]):
                text += (" = " if _value(a, fmt) == _value(b, fmt) else " > ") + lb + " " + _value(b, fmt)
        else:
            pick = ranked[0][0] if kind == "best" else ranked[-1][0]
            text = " and ".join(lb for v, _, lb in vals if _value(v, fmt) == _value(pick, fmt))
        return Statement(kind, tuple(n for _, n, _ in ranked), text, (fmt,) + tuple(lb for _, _, lb in ranked))
    if head == "cmp":
        parts = [p.strip() for p in body.split(",")]
        if len(parts) != 5:
            raise TextError("cmp needs A,B,word if more,word if less,word if the same")
        a, b = _get(figures, parts[0]), _get(figures, parts[1])
        word = parts[4] if abs(a - b) < _SAME else parts[2] if a > b else parts[3]
        return Statement("cmp", (parts[0], parts[1]), word, tuple(parts[2:]))
    if head == "diff":
        parts = [p.strip() for p in body.split(",")]
        if len(parts) != 2:
            raise TextError("diff needs A,B")
        return Statement("diff", tuple(parts), _points(_get(figures, parts[0]) - _get(figures, parts[1])))
    fmt = body.strip() or "%"
    return Statement("value", (head,), _value(_get(figures, head), fmt), (fmt,))


def render_checked(template: str, figures: dict) -> tuple[str, list[Statement]]:
    """The text with every placeholder filled from ``figures``, and what it states."""
    said: list[Statement] = []

    def fill(m):
        st = _statement(m.group(1), figures)
        said.append(st)
        return st.shown

    return _FIELD.sub(fill, template), said


def render(template: str, figures: dict) -> str:
    """``template`` filled from ``figures`` (see the module docstring); raises :class:`TextError`."""
    return render_checked(template, figures)[0]


def names(template: str) -> set[str]:
    """The figures a template reads (checked against what the steps record when a lesson loads)."""
    out: set[str] = set()
    for m in _FIELD.finditer(template):
        head, _, body = m.group(1).partition(":")
        head = head.strip()
        if _ranking(head)[0]:
            out.update(n for n, _ in _pairs(body))
        elif head in ("cmp", "diff"):
            out.update(p.strip() for p in body.split(",")[:2])
        else:
            out.add(head)
    return out


def check(text: str, said: list[Statement], figures: dict) -> list[str]:
    """What in ``text`` (a rendered template and its statements) the ``figures`` contradict:
    a number that does not show the figure, an ordering the figures do not have, a word the
    comparison does not give. Empty when the text agrees with the figures."""
    wrong: list[str] = []
    for st in said:
        if st.shown not in text:
            wrong.append(f"{st.shown!r} is not in the text")
            continue
        try:
            vals = [_get(figures, n) for n in st.names]
        except TextError as exc:
            wrong.append(str(exc))
            continue
        if st.kind == "value":
            if _value(vals[0], st.arg[0]) != st.shown:
                wrong.append(f"{st.names[0]} is {_value(vals[0], st.arg[0])}, the text says {st.shown}")
        elif st.kind == "order":
            fmt = st.arg[0]
            for n, v in zip(st.names, vals):
                if f" {_value(v, fmt)}" not in st.shown:
                    wrong.append(f"{n} is {_value(v, fmt)}; the text does not say so")
            for (na, a), (nb, b) in zip(zip(st.names, vals), zip(st.names[1:], vals[1:])):
                if _value(b, fmt) != _value(a, fmt) and b > a:
                    wrong.append(f"the text orders {na} ({_value(a, fmt)}) above {nb} ({_value(b, fmt)})")
        elif st.kind in ("best", "worst"):
            fmt = st.arg[0]
            pick = max(vals) if st.kind == "best" else min(vals)
            by_name = dict(zip(st.names, vals))
            named = [n for n, lb in zip(st.names, st.arg[1:]) if lb in st.shown.split(" and ")]
            if any(_value(by_name[n], fmt) != _value(pick, fmt) for n in named):
                wrong.append(f"the text names {', '.join(named)} the {st.kind}; the {st.kind} is {_value(pick, fmt)}")
        elif st.kind == "cmp":
            a, b = vals
            right = st.arg[2] if abs(a - b) < _SAME else st.arg[0] if a > b else st.arg[1]
            if st.shown != right:
                wrong.append(f"{st.names[0]} ({a:.4f}) vs {st.names[1]} ({b:.4f}) reads {right!r}, the text says {st.shown!r}")
        elif st.kind == "diff":
            if _points(vals[0] - vals[1]) != st.shown:
                wrong.append(f"{st.names[0]} − {st.names[1]} is {_points(vals[0] - vals[1])}, the text says {st.shown}")
    return wrong


def static(template: str) -> str:
    """The words of a template written before the run: everything outside its placeholders."""
    return _FIELD.sub(" ", template)
