"""The front ends keep no list of their own of what the core offers: units, importance methods,
schedules, scopes and compensation modes come from the core's registries (a copy drifted once:
``train --schedule granet`` was refused while the core, the app and the README offered it)."""

import ast
from pathlib import Path

import pruneviz
from pruneviz.core import compensate, importance, schedules, units

ROOT = Path(pruneviz.__file__).parent
FRONTS = sorted([*ROOT.glob("cli*.py"), *(ROOT / "qt").glob("*.py")])
NAMES = set(units.names()) | set(units.all_methods()) | set(schedules.SCHEDULES) | set(schedules.METHODS) | set(units.SCOPES) | set(compensate.MODES) | set(importance.WEIGHT_METHODS) | set(importance.NEURON_METHODS)


def hand_written_lists(source: str) -> list[tuple[int, list[str]]]:
    """Literal lists, tuples, sets and dict keys holding two or more of the core's names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else None
        if items is None:
            continue
        hits = [e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in NAMES]
        if len(hits) >= 2:
            found.append((node.lineno, hits))
    return found


def test_the_check_catches_a_hand_written_list():
    assert hand_written_lists('p.add_argument("--granularity", choices=["weight", "neuron"])') == [(1, ["weight", "neuron"])]
    assert hand_written_lists('unit = {"neuron": "neurons", "head": "attention heads"}.get(g)') == [(1, ["neuron", "head"])]
    assert hand_written_lists('ms = ("magnitude", "random")') and not hand_written_lists('m = "magnitude"')


def test_front_ends_read_their_choices_from_the_core():
    assert len(FRONTS) > 20  # the CLI modules and the app's
    bad = {f"{path.relative_to(ROOT)}:{line}": hits for path in FRONTS for line, hits in hand_written_lists(path.read_text(encoding="utf-8"))}
    assert not bad, f"hand-written lists of units/methods/schedules/scopes in the front ends (read them from the core): {bad}"
