"""Arbitrary edit sequences (hypothesis): undo to the start is bit-identical and redo replays;
any sequence with plan switches round-trips through a saved session and the autosave.

Slow as a whole (a property run of many sequences, and importing hypothesis costs the quick loop
a second); the quick loop keeps the fixed sequences of test_history.py and test_plans.py.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneviz.core import persist
from pruneviz.core.session import Session
from tests.core.test_history import check_undo_all_and_redo
from tests.core.test_plans import same, state, tree

pytestmark = pytest.mark.slow

EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("prune"), st.floats(0, 1), st.sampled_from(["layer", "global"]), st.sampled_from(["weight", "neuron"]), st.sampled_from(["magnitude", "random", "taylor"])),
        st.tuples(st.just("neurons"), st.sampled_from(["stem", "conv1", "conv2"]), st.lists(st.integers(0, 7), min_size=1, max_size=4), st.booleans()),
        st.tuples(st.just("weights"), st.sampled_from(["stem", "conv1", "head"]), st.lists(st.integers(0, 215), min_size=1, max_size=20), st.booleans()),
        st.tuples(st.just("rect"), st.sampled_from(["conv1", "head"]), st.integers(0, 8), st.integers(0, 8), st.booleans()),
        st.tuples(st.just("undo")),
        st.tuples(st.just("redo")),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_undo_all_restores_bit_identical_and_redo_replays(edits):
    check_undo_all_and_redo(edits)


OPS = st.lists(st.one_of(
    st.tuples(st.just("prune"), st.sampled_from(["0", "2", "4"]), st.integers(0, 60)),
    st.tuples(st.just("neuron"), st.sampled_from(["0", "2"]), st.integers(0, 63)),
    st.tuples(st.just("undo")), st.tuples(st.just("redo")),
    st.tuples(st.just("switch"), st.integers(0, 5)),
), min_size=1, max_size=14)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(OPS)
def test_any_edit_sequence_round_trips_through_save_and_autosave(tmp_path, ops):
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, tmp_path / "auto")
    for op in ops:
        if op[0] == "prune":
            s.prune_weights(op[1], [op[2], op[2] + 1])
        elif op[0] == "neuron":
            s.prune_neurons(op[1], [op[2]])
        elif op[0] == "undo":
            s.undo()
        elif op[0] == "redo":
            s.redo()
        else:
            plans = s.plans()
            s.switch_plan(plans[op[1] % len(plans)]["name"])
    persist.save_session(s, tmp_path / "s.pvz")
    for path in (tmp_path / "s.pvz", auto.path):
        r = persist.load_session(path)
        assert tree(r) == tree(s) and same(state(r), state(s))
    auto.close()
