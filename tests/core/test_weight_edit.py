"""Values change through one verb (Session.edit_weights) that records the undo delta: fine-tuning,
compensation and re-initialisation undo bit for bit (every tensor of the model and of its masks,
compared with torch.equal and on its bit patterns), and redo brings the changed state back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from pruneviz import Session
from pruneviz.core import deltas
from pruneviz.core.training import complete

CORE = Path(__file__).resolve().parents[2] / "pruneviz" / "core"


def state(s) -> dict[str, torch.Tensor]:
    """Every tensor of the session's model and masks, copied."""
    out = {f"param {n}": p.detach().clone() for n, p in s.model.named_parameters()}
    out |= {f"buffer {n}": b.detach().clone() for n, b in s.model.named_buffers()}
    out |= {f"orig {n}": t.clone() for n, t in s.masks.orig.items()}
    out |= {f"elem {n}": t.clone() for n, t in s.masks.elem.items()}
    out |= {f"chan {n}": t.clone() for n, t in s.masks.chan.items()}
    return out


def same(a: dict, b: dict) -> list[str]:
    """Names of the tensors that differ (by value or by bit pattern); [] when every one is equal."""
    assert a.keys() == b.keys()
    return [k for k in a if not (torch.equal(a[k], b[k]) and torch.equal(deltas.bits(a[k]), deltas.bits(b[k])))]


@pytest.fixture
def pruned():
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.prune(0.5)
    s.prune_neurons(s.layers[0].name, [0, 3])  # coupled biases become masked originals too
    return s


def check_undo_redo(s, change) -> None:
    before = state(s)
    steps = len(s.history.steps)
    change()
    assert len(s.history.steps) == steps + 1
    after = state(s)
    assert same(before, after), "the edit changed nothing: the test would prove nothing"
    s.undo()
    assert same(before, state(s)) == []
    s.redo()
    assert same(after, state(s)) == []


@pytest.mark.slow
def test_fine_tuning_undoes_bit_for_bit(pruned):
    check_undo_redo(pruned, lambda: complete(pruned.finetune(1, batch_size=256)))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exact", "sparsegpt"])
def test_compensation_undoes_bit_for_bit(pruned, mode):
    check_undo_redo(pruned, lambda: pruned.prune(0.3, compensate=mode, calib="demo:digits-train"))


def test_re_initialisation_undoes_bit_for_bit(pruned):
    check_undo_redo(pruned, lambda: pruned.reinitialize(seed=3))


def test_a_weight_edit_that_fails_leaves_everything_as_it_was(pruned):
    s = pruned
    before, steps, version = state(s), len(s.history.steps), s.version
    name = s.layers[1].weight
    with pytest.raises(RuntimeError, match="boom"):
        with s.edit_weights("halve") as edit:
            edit.write(name, s.masks.orig[name] / 2)
            edit.flip(s.neuron_flips({s.layers[1].name: [1]}))
            assert same(before, state(s))  # written and flipped, then
            raise RuntimeError("boom")
    assert same(before, state(s)) == [] and len(s.history.steps) == steps
    assert s.version != version  # values were written in between: results of then are stale


def test_a_weight_edit_writes_kept_values_and_keeps_pruned_entries_zero(pruned):
    s = pruned
    layer = s.layers[1]
    kept = s.mask(layer.name)
    with s.edit_weights("ones") as edit:
        edit.write(layer.weight, torch.ones(layer.shape))
    w = s.weight(layer.name)
    assert torch.equal(w[kept], torch.ones(int(kept.sum()))) and bool((w[~kept] == 0).all())
    assert s.history.labels[-1] == "ones"
    s.undo()
    assert not bool((s.weight(layer.name)[kept] == 1).all())


def _orig_writes(path: Path) -> list[str]:
    """Writes into ``….orig[...]`` (assignment, or a mutating call such as ``copy_``) in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = [t for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if not isinstance(t, ast.Name)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.endswith("_") and not node.func.attr.startswith("_"):
            targets = [node.func.value]
        for t in targets:
            if "orig" in {getattr(x, "attr", None) for x in ast.walk(t)} or "orig" in {getattr(x, "id", None) for x in ast.walk(t)}:
                found.append((node.lineno, f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}"))
    return [text for _, text in sorted(found)]


def test_training_and_compensation_never_write_the_masks_originals_themselves():
    files = sorted(CORE.glob("training*.py")) + sorted(CORE.glob("compensate*.py")) + [CORE / "schedules.py"]
    assert len(files) >= 5
    assert [w for f in files for w in _orig_writes(f)] == []


def test_the_orig_write_finder(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f(m, n, v):\n    m.orig[n].copy_(v)\n    m.orig[n][0] = 1\n    orig = m.orig[n]\n    orig.mul_(2)\n    m.params[n].copy_(v)\n")
    assert [w.split(":")[1] for w in _orig_writes(f)] == ["2", "3", "5"]
