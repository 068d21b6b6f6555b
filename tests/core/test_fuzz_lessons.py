"""Fuzz lesson files: every damaged or hostile lesson is a Lesson that names no code, or one
clean error (LessonError, TrustRequired); nothing is imported, nothing else escapes.

The shipped lessons are mutated as bytes (flip, insert, delete, truncate) and as text (a value
replaced by a hostile or random one: factory specs, paths out of the folder, deep nesting, long
claims). Hypothesis runs derandomized with fixed example counts."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneviz.core import lessons
from pruneviz.core.errors import PrunevizError, TrustRequired
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_format import parse_lesson

pytestmark = pytest.mark.slow  # a fuzzer; the quick loop's damaged-lesson tests are test_lessons.py and test_lesson_safety.py

EXAMPLES = {"bytes": 1500, "values": 1500}
SHIPPED = {name: (lessons.LESSON_DIR / f"{name}.toml").read_bytes() for name in lessons.available()}
HOSTILE = ["pv_fuzz_never:make", "os:abort", "tempfile:mkdtemp", "subprocess:getoutput", "../x.npz", "/etc/passwd", "~/x.npz", "a/../../x.pt", "demo:nope", "", "x.npz", "evil.pt"]


def _check(text: str, folder) -> None:
    before = set(sys.modules)
    try:
        lesson = parse_lesson(text, "f.toml", ACTIONS, path=folder / "f.toml")
    except TrustRequired as exc:
        assert exc.imports and "\n" not in str(exc)
    except PrunevizError as exc:  # LessonError and friends: one line
        assert "\n" not in str(exc) and str(exc)
    else:
        assert lesson.specs is not None and lesson.specs.code == []
        for spec in (lesson.specs.model, lesson.specs.data):
            assert spec is None or spec.startswith("demo:") or spec.startswith(str(folder))
    assert not {m for m in set(sys.modules) - before if m.startswith("pv_fuzz")}


@settings(max_examples=EXAMPLES["bytes"], derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(SHIPPED)), edits=st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_lesson_bytes(tmp_path_factory, name, edits):
    data = bytearray(SHIPPED[name])
    for op, pos, value in edits:
        pos %= max(1, len(data))
        if op == "flip" and data:
            data[pos] ^= 1 << (value % 8)
        elif op == "insert":
            data[pos:pos] = bytes([value])
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    folder = tmp_path_factory.getbasetemp()
    path = folder / "f.toml"
    path.write_bytes(bytes(data))
    before = set(sys.modules)
    try:
        lesson = lessons.load(path)
        assert lesson.specs.code == []
    except PrunevizError as exc:
        assert "\n" not in str(exc)
    assert not {m for m in set(sys.modules) - before if m.startswith("pv_fuzz")}


_VALUE = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.sampled_from("ab_:./~-0 ()<>=+*"), max_size=40),
    st.integers(1, 3000).map(lambda n: "(" * n + "a" + ")" * n + " > 0"),
    st.integers(1, 3000).map(lambda n: "not " * n + "a > 0"),
)


@settings(max_examples=EXAMPLES["values"], derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(SHIPPED)), key=st.sampled_from(["model", "data", "claim", "title", "record"]), value=_VALUE, nest=st.integers(0, 4000))
def test_hostile_lesson_values(tmp_path_factory, name, key, value, nest):
    text = SHIPPED[name].decode("utf-8")
    lines = text.splitlines()
    hit = next((i for i, line in enumerate(lines) if line.startswith(f"{key} = ")), None)
    literal = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if nest % 3 == 0:  # sometimes deeply nested instead of a string
        literal = "[" * nest + literal + "]" * nest
    if hit is None:
        lines.insert(1, f"{key} = {literal}")
    else:
        lines[hit] = f"{key} = {literal}"
    _check("\n".join(lines) + "\n", tmp_path_factory.getbasetemp())
