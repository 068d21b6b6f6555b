"""The autosave journal follows the history itself: replay equals the live session after every step.

A random sequence of edits, undos, redos, jumps, plan switches and renames, weight steps
(re-initialise, a fine-tune stopped early) and edits made with the session's signal blocked (as
lesson steps run) is journalled; after each step the journal is replayed into a fresh session
and compared with the live one (masks, every value's bits, the tree of plans).
"""

import random
import threading

import pytest

import torch

from pruneviz.core import persist
from pruneviz.core.history import Change
from pruneviz.core.session import Session


def _edit(s, rng, i):
    """One random thing a user (or a lesson) does; returns its name."""
    ops = ["prune", "neurons", "restore", "weights", "undo", "undo", "redo", "goto", "plan", "rename", "reinit", "blocked"]
    if i % 9 == 4:
        ops.append("finetune")
    op = rng.choice(ops)
    layer = rng.choice(["0", "2", "4"])
    if op == "prune":
        s.prune(rng.choice([0.1, 0.2, 0.3]), scope=rng.choice(["layer", "global"]))
    elif op == "neurons":
        s.prune_neurons(rng.choice(["0", "2"]), rng.sample(range(32), 3))
    elif op == "restore":
        s.restore_neurons(rng.choice(["0", "2"]), rng.sample(range(32), 5))
    elif op == "weights":
        s.prune_weights(layer, rng.sample(range(100), 4))
    elif op == "undo":
        s.undo()
    elif op == "redo":
        s.redo()
    elif op == "goto":
        s.goto(rng.randint(0, len(s.history.steps)))
    elif op == "plan":
        names = [p["name"] for p in s.plans()]
        s.switch_plan(rng.choice(names))
    elif op == "rename":
        s.rename_plan(s.history.current_plan, f"plan r{i}")
    elif op == "reinit":
        s.reinitialize(seed=i)
    elif op == "finetune":
        g = s.finetune(1)
        next(g)
        next(g)
        g.close()  # stopped early: recorded as one step
    elif op == "blocked":  # lesson steps run with the signal blocked, then one notification
        with s.changed.blocked():
            s.prune_weights(layer, rng.sample(range(100), 3))
            s.undo()
            s.prune_neurons("0", rng.sample(range(32), 2))  # a branch no notification saw
        s.changed.emit(Change("lesson step", frozenset(), "edit"))
    return op


@pytest.mark.slow
@pytest.mark.parametrize("background", [False, True], ids=["inline", "writer thread"])
def test_journal_replay_equals_the_live_session_after_every_step(tmp_path, background):
    rng = random.Random(16 + background)
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, tmp_path, background=background)
    done = []
    for i in range(40):
        done.append(_edit(s, rng, i))
        assert auto.flush(120) and auto.error is None
        assert persist.replay_matches(s, auto.path), f"replay differs after {done}"
    assert {"plan", "blocked", "reinit", "finetune", "undo", "redo"} <= set(done)
    assert len(s.plans()) > 1
    auto.close()
    assert not auto.path.exists()


def test_notifications_from_two_threads_catch_up_to_the_last_state(tmp_path):
    """A worker thread's notifications (as a training run sends them) race the main thread's
    edits and their notifications: in whatever order they run, the journal ends at the
    history's last state."""
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, tmp_path, background=True)
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            s.changed.emit(Change("progress", frozenset(), "edit"))

    t = threading.Thread(target=worker)
    t.start()
    try:
        for k in range(20):
            s.prune_weights("2", [300 + k])
            if k % 3 == 2:
                s.undo()
    finally:
        stop.set()
        t.join()
    assert auto.flush(60)
    assert len(s.history.steps) == 20 - 6 and persist.replay_matches(s, auto.path)
    auto.close()


def test_a_missed_notification_is_caught_up_by_the_next(tmp_path):
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, tmp_path)
    s.prune(0.2)
    with s.changed.blocked():
        s.prune_neurons("0", [1, 2])
        s.prune_neurons("2", [3])
    _, records = persist.read_journal(auto.path)
    assert [r["op"] for r in records] == ["push"]  # nothing heard of the two blocked edits yet
    s.undo()  # the next notification writes them, then the undo
    _, records = persist.read_journal(auto.path)
    assert [(r["op"], r["at"]) for r in records] == [("push", 1), ("push", 2), ("push", 3), ("undo", 2)]
    assert persist.replay_matches(s, auto.path)
    auto.close()


@pytest.mark.parametrize("background", [False, True], ids=["inline", "writer thread"])
def test_a_failing_write_stops_the_autosave_with_a_message_and_the_edit_stands(tmp_path, background):
    import shutil

    s = Session.open("demo:mlp", device="cpu")
    errors = []
    auto = persist.Autosave(s, tmp_path / "auto", background=background, on_error=errors.append)
    s.prune(0.2)
    assert auto.flush(60)
    shutil.rmtree(tmp_path / "auto")  # the folder went away (a disk unmounted, a clean-up tool)
    s.rename_plan("plan 1", "kept")  # a rewrite of the journal: it cannot be written
    assert auto.flush(60)
    assert s.history.current_plan == "kept" and len(errors) == 1 and auto.error == errors[0]
    assert errors[0].startswith("autosave stopped") and "\n" not in errors[0]
    s.prune_neurons("0", [1])  # editing goes on; the autosave stays stopped
    assert auto.flush(60) and len(errors) == 1
    auto.close()


def test_weight_steps_recorded_before_the_coupling_undo_after_it(tmp_path):
    """A fine-tune recorded while biases were plain parameters (the coupling is built lazily, at
    the first neuron edit, which then masks them) still undoes bit for bit, replays from a
    journal, and the checksum does not depend on when the coupling was built."""
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    start = {n: p.detach().clone() for n, p in s.model.named_parameters()}
    assert s.coupling_built is None
    g = s.finetune(1)
    next(g)
    next(g)
    g.close()  # one weight step, biases recorded as plain parameters
    s.prune_neurons("0", [1, 2])  # builds the coupling: biases are masked from now on
    assert s.coupling_built is not None
    path = tmp_path / "s.pvz"
    persist.save_session(s, path)
    assert persist.replay_matches(s, path)
    s.goto(0)
    for n, p in s.model.named_parameters():
        assert torch.equal(p, start[n]), n
    s.goto(2)
    assert persist.replay_matches(s, path)
