"""Undo/redo: bit-identical round trips, grouping, diff-sized memory, saved sessions."""

import torch

from pruneviz.core import persist
from tests.core.test_pruning_oracles import make
from tests.core import models


def _state(s):
    return {k: v.detach().clone() for k, v in s.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _apply(s, edit):
    kind = edit[0]
    if kind == "prune":
        s.prune(edit[1], scope=edit[2], granularity=edit[3], method=edit[4])
    elif kind == "neurons":
        (s.restore_neurons if edit[3] else s.prune_neurons)(edit[1], edit[2])
    elif kind == "weights":
        (s.restore_weights if edit[3] else s.prune_weights)(edit[1], edit[2])
    elif kind == "rect":
        s.prune_rect(edit[1], (edit[2], edit[2] + 3), (edit[3], edit[3] + 40), restore=edit[4])
    elif kind == "undo":
        s.undo()
    else:
        s.redo()


def check_undo_all_and_redo(edits):
    """Apply ``edits`` to a small ResNet session; undo to the start is bit-identical, redo replays,
    masks and counts agree with the parameters."""
    s, _, _, _ = make(models.resnet, (3, 8, 8), 6)
    original = _state(s)
    for e in edits:
        _apply(s, e)
    states = _state(s)
    index = s.history.index
    s.goto(0)
    assert _same(_state(s), original)
    assert s.sparsity() == 0.0
    s.goto(index)
    assert _same(_state(s), states)
    # masks and stats agree with the parameters after arbitrary edits
    for layer in s.layers:
        m = s.mask(layer.name)
        assert torch.equal(s.weight(layer.name), s.weight(layer.name, original=True) * m)
        assert s.masks.pruned_count(layer.name) == int((~m).sum())


FIXED_EDITS = [  # every kind of edit once, with an undo and a redo between them
    ("prune", 0.3, "global", "weight", "magnitude"),
    ("neurons", "conv1", [1, 3], False),
    ("weights", "head", [0, 5, 7], False),
    ("rect", "conv1", 2, 4, False),
    ("undo",),
    ("prune", 0.5, "layer", "neuron", "taylor"),
    ("neurons", "conv1", [1], True),
    ("redo",),
    ("weights", "head", [5], True),
]


def test_a_fixed_edit_sequence_undoes_bit_identical_and_redo_replays():
    """The quick loop's case of the property test in test_edit_sequences.py (slow)."""
    check_undo_all_and_redo(FIXED_EDITS)


def test_bulk_prune_is_one_step_and_group_merges():
    s, _, _, _ = make(models.mlp, (12,), 5)
    s.prune(0.5, scope="global")
    assert s.history.labels == ["prune 50% weights by magnitude (global, 3 layers)"]
    with s.group("hand edits"):
        s.prune_neurons("0", [1, 2])
        s.prune_weights("2", [0, 1, 2])
    assert len(s.history.steps) == 2 and s.history.labels[-1] == "hand edits"
    s.undo()
    assert bool(s.neuron_mask("0").all())
    assert s.sparsity("2") > 0  # from the global prune, still applied


def test_history_stores_diffs_only():
    s, _, _, _ = make(models.mlp, (12,), 5)
    n = s.prune(0.5)
    assert s.history.nbytes() == 4 * n  # int32 indices, nothing else


def test_restore_weights_inside_pruned_neuron_keeps_neuron_pruned():
    s, _, _, _ = make(models.mlp, (12,), 5)
    s.prune_weights("0", [0, 1, 2])
    s.prune_neurons("0", [0])
    s.restore_neurons("0", [0])
    # the weight edits survive the neuron round trip
    assert not bool(s.mask("0").view(-1)[:3].any())
    assert bool(s.mask("0")[0, 3:].all())


def test_save_and_reopen_session(tmp_path):
    s, _, x, y = make(models.resnet, (3, 8, 8), 6)
    s.prune(0.3, granularity="neuron")
    s.prune(0.4, scope="global")
    s.prune_weights("head", [1, 2, 3])
    s.undo()
    path = tmp_path / "a.pvz"
    persist.save_session(s, path)
    t, _, _, _ = make(models.resnet, (3, 8, 8), 6)
    head, records = persist.read_journal(path)
    assert head["model"] == "test"
    persist.replay(t, records)
    assert _same(_state(s), _state(t))
    assert t.history.labels == s.history.labels and t.history.index == s.history.index
    t.redo()
    s.redo()
    assert _same(_state(s), _state(t))


def test_autosave_journal_recovers_after_torn_write(tmp_path):
    s, _, _, _ = make(models.mlp, (12,), 5)
    auto = persist.Autosave(s, tmp_path)
    s.prune(0.2)
    s.prune_neurons("2", [3])
    s.undo()
    s.prune_weights("4", [7])
    expected = _state(s)
    assert persist.recoverable(tmp_path) == []  # the app writing it holds its lock: not offered
    auto.close(keep=True)  # as a crash leaves it: everything written, the lock gone with the process
    with open(auto.path, "a") as fh:
        fh.write('{"op": "pu')  # a crash in the middle of a write
    assert persist.recoverable(tmp_path) == [auto.path]
    t, _, _, _ = make(models.mlp, (12,), 5)
    _, records = persist.read_journal(auto.path)
    persist.replay(t, records)
    assert _same(_state(t), expected)


def test_corrupt_session_file_is_a_clean_error(tmp_path):
    import pytest

    from pruneviz.core.errors import PrunevizError

    s, _, _, _ = make(models.mlp, (12,), 5)
    bad = tmp_path / "bad.pvz"
    for text in ("", "garbage\n", '{"format": "pruneviz-session", "version": 1}\n{"op": "push", "flips": [{"store": "elem", "layer": "nope", "dtype": "int32", "idx": ""}]}\n'):
        bad.write_text(text)
        with pytest.raises(PrunevizError):
            _, records = persist.read_journal(bad)
            persist.replay(s, records)


def test_autosave_follows_a_change_of_data(tmp_path):
    from pruneviz.core.data import EvalData

    s, _, x, y = make(models.mlp, (12,), 5)
    auto = persist.Autosave(s, tmp_path)
    s.prune(0.3)
    s.set_data(EvalData(x=x[:10], y=y[:10], spec="other.npz"))
    s.prune_neurons("0", [2])
    head, records = persist.read_journal(auto.path)
    assert head["data"] == "other.npz"
    assert [r["op"] for r in records] == ["push", "push"]
    auto.close()
