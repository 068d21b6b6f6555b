"""A lesson's text says what its own figures show: every ordering and number it states about
the run is computed from the figures (lesson_text), checked against them, and caught when a
figure does not agree; static captions state no ordering between the arms."""

from __future__ import annotations

import json

import pytest

from pruneviz.cli import main
from pruneviz.core import lessons
from pruneviz.core.lesson_format import LessonError, parse_lesson
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_text import COMPARATIVES, check, render_checked, static

#: the criteria chart of issue 20 at 90 %: OBD above magnitude, which the old caption denied
FIG = {"accuracy_magnitude_90": 0.364, "accuracy_obd_90": 0.397, "accuracy_taylor_90": 0.2, "accuracy_random_90": 0.1}
ORDER = "At 90 %: {order:accuracy_magnitude_90=magnitude,accuracy_taylor_90=Taylor,accuracy_obd_90=OBD,accuracy_random_90=random}."


def test_an_ordering_is_written_from_the_figures():
    text, said = render_checked(ORDER, FIG)
    assert text == "At 90 %: OBD 39.7 % > magnitude 36.4 % > Taylor 20.0 % > random 10.0 %."
    assert check(text, said, FIG) == []
    swapped = dict(FIG, accuracy_obd_90=0.3, accuracy_magnitude_90=0.4)
    assert render_checked(ORDER, swapped)[0].startswith("At 90 %: magnitude 40.0 % > OBD 30.0 %")


@pytest.mark.parametrize(
    "template, figure, value",
    [
        (ORDER, "accuracy_obd_90", 0.35),  # the order no longer holds
        (ORDER, "accuracy_random_90", 0.11),  # a number quoted no longer the figure
        ("{accuracy_obd_90:%}", "accuracy_obd_90", 0.398),
        ("{best:accuracy_obd_90=OBD,accuracy_magnitude_90=magnitude}", "accuracy_magnitude_90", 0.5),
        ("OBD {cmp:accuracy_obd_90,accuracy_magnitude_90,keeps more,keeps less,keeps as much}", "accuracy_obd_90", 0.3),
        ("{diff:accuracy_obd_90,accuracy_magnitude_90}", "accuracy_magnitude_90", 0.37),
    ],
)
def test_the_check_catches_a_perturbed_figure(template, figure, value):
    text, said = render_checked(template, FIG)
    assert check(text, said, FIG) == []
    assert check(text, said, dict(FIG, **{figure: value})), f"{text!r} still reads true with {figure} = {value}"


def test_an_explain_quoting_a_figure_no_step_records_is_refused():
    text = 'title = "t"\nmodel = "demo:mlp"\ndata = "demo:digits"\nclaim = "a > 0"\n\n[[steps]]\ncaption = "c"\naction = "evaluate"\nrecord = "a"\nexplain = "{a:%} vs {b:%}"\n'
    with pytest.raises(LessonError, match=r"x.toml, line 10: step 1: explain quotes b, which no step up to this one records"):
        parse_lesson(text, "x.toml", ACTIONS)


def _static_texts(lesson):
    for i, step in enumerate(lesson.steps, 1):
        yield f"step {i} caption", step["caption"]
        if step.get("explain"):
            yield f"step {i} explain", static(step["explain"])


@pytest.mark.parametrize("name", lessons.available())
def test_static_captions_state_no_ordering(name):
    """An ordering between arms written before the run can contradict the run's chart (the old
    criteria caption 'Taylor, OBD cut worse than plain magnitude' beside OBD 39.7 % > magnitude
    36.4 %): orderings are computed ({order:…}, {cmp:…}), never typed."""
    lesson = lessons.load(name)
    bad = [f"{where}: {m.group(0)!r}" for where, text in _static_texts(lesson) for m in [COMPARATIVES.search(text)] if m]
    assert not bad, bad


#: lessons whose steps explain what they measured
EXPLAINED = [n for n in lessons.available() if any(s.get("explain") for s in lessons.load(n).steps)]


def test_the_rewritten_lessons_explain_their_figures():
    assert {"criteria", "faithful", "global-vs-layer", "fine-tune", "when"} <= set(EXPLAINED)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPLAINED)
def test_each_lesson_text_agrees_with_its_result_json(name, tmp_path, capsys):
    """Run the lesson (one seed), read result.json, render every explain from it: the handout
    says exactly that, and the check passes; each figure an ordering or a number reads, nudged
    past what the text shows, makes the check fail."""
    out = tmp_path / name
    assert main(["lesson", "run", name, "--out", str(out), "--seeds", "1"]) in (0, 1)
    capsys.readouterr()
    figures = json.loads((out / "result.json").read_text())["figures"]
    page = (out / "handout.html").read_text()
    import html

    checked = 0
    for step in lessons.load(name).steps:
        if not step.get("explain"):
            continue
        text, said = render_checked(step["explain"], figures)
        assert html.escape(text) in page
        assert check(text, said, figures) == [], (name, text)
        for st in said:
            if st.kind in ("value", "order", "best", "worst", "cmp", "diff"):
                for n in st.names:
                    up, down = dict(figures), dict(figures)
                    other = st.names[1] if st.kind == "cmp" and n == st.names[0] else st.names[0] if st.kind == "cmp" else None
                    if other is not None:  # a comparison word: move the figure just past the other
                        up[n], down[n] = figures[other] + 0.01, figures[other] - 0.01
                    else:
                        nudge = max(0.6, 0.2 * abs(figures[n]))  # past the rounding of a share, a ρ or a count (a count of 0 shows 0 up to 0.5)
                        up[n], down[n] = figures[n] + nudge, figures[n] - nudge
                    assert check(text, said, up) or check(text, said, down), (name, st, n)
                    checked += 1
    assert checked >= 4
