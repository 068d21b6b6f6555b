"""The editable model (model, masks, activation cache, flips, the earliest-changed-child rule) is one
object, owned by the session and, as a copy, by the analyses' probes; parts write only their own
state."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import torch
import torch.nn as nn

from pruneviz import Session
from pruneviz.core.editable import EditableModel
from pruneviz.core.history import Flip
from pruneviz.core.inventory import find_layers, with_outputs
from pruneviz.core.workers import Probe

CORE = Path(__file__).resolve().parents[2] / "pruneviz" / "core"


def tiny() -> EditableModel:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    layers = find_layers(model)
    return EditableModel(model, with_outputs(layers, {layers[-1].name}))


def test_flips_change_the_masks_and_the_live_weights_and_come_back():
    e = tiny()
    w0 = e.model[0].weight.detach().clone()
    flip = Flip.make("elem", "0", torch.tensor([0, 5, 7]), 24)
    assert e.apply_flips([flip]) == {"0"}
    assert e.model[0].weight.view(-1)[[0, 5, 7]].eq(0).all() and e.sparsity("0") == 3 / 24
    e.apply_flips([flip])
    assert torch.equal(e.model[0].weight, w0) and e.sparsity() == 0.0


def test_the_earliest_changed_child_is_where_cached_activations_are_dropped():
    e = tiny()
    e.cache.points = {0: ["x"], 1: ["a"], 2: ["b"]}
    assert e.earliest[("elem", "2")] == 2 and e.earliest[("elem", "0")] == 0
    e.apply_flips([Flip.make("elem", "2", torch.tensor([1]), 18)])
    assert sorted(e.cache.points) == [0, 1, 2]  # the input of child 2 stays: only later points go
    e.apply_flips([Flip.make("elem", "0", torch.tensor([1]), 24)])
    assert sorted(e.cache.points) == [0]


def test_a_write_sets_kept_values_keeps_pruned_ones_zero_and_moves_the_token():
    e = tiny()
    e.apply_flips([Flip.make("elem", "0", torch.tensor([0]), 24)])
    version = e.masks.version
    e.write("0.weight", torch.full((6, 4), 2.0))
    w = e.model[0].weight.detach().view(-1)
    assert w[0] == 0 and bool((w[1:] == 2).all()) and e.masks.orig["0.weight"].view(-1)[0] == 2
    e.values_changed()
    assert e.masks.version > version


def test_a_copy_is_independent_and_travels_by_pickle():
    e = tiny()
    c = e.copy()
    c.apply_flips([Flip.make("elem", "0", torch.tensor([3]), 24)])
    assert e.sparsity() == 0.0 and c.masks.pruned_count("0") == 1
    back = pickle.loads(pickle.dumps(c))
    assert torch.equal(back.model[0].weight, c.model[0].weight) and back.sparsity() == c.sparsity()
    assert back.masks.params["0.weight"] is dict(back.model.named_parameters())["0.weight"]  # still one model


def test_a_probe_owns_a_copy_of_the_sessions_editable_model_and_follows_its_rule():
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.build_coupling()  # as the analyses do before they copy: neuron flips reach coupled channels
    s.evaluate()  # cached activations the probe starts from
    probe = Probe(s)
    assert isinstance(probe.editable, EditableModel) and probe.editable is not s.editable
    assert probe.child_of == s.editable.earliest
    first, second = s.layers[0].name, s.layers[1].name
    flips = [*s.neuron_flips({first: [0, 2]}), Flip.make("elem", second, torch.tensor([1, 4, 9]), s.layer(second).numel)]
    probe.apply(flips)
    s.apply_flips(flips)
    for store in ("elem", "chan"):
        for n, m in getattr(s.masks, store).items():
            assert torch.equal(getattr(probe.masks, store)[n], m)
    assert all(torch.equal(p, probe.masks.params[n]) for n, p in s.masks.params.items())
    assert sorted(probe.cache.points) == sorted(s.cache.points)  # both dropped from the same child
    assert probe.evaluate().correct == s.evaluate().correct


def _assigned(path: Path, owners: set[str]) -> list[str]:
    """``owner.attr = …`` (or ``+=``) in ``path`` where ``owner`` is one of ``owners``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in owners:
                out.append(f"{path.name}:{node.lineno}: {ast.unparse(t)}")
    return out


def test_the_evaluation_and_the_heads_never_assign_the_sessions_attributes():
    found = [w for f in ("session_eval.py", "attention_heads.py", "attention_find.py", "compensate.py", "training.py", "training_run.py") for w in _assigned(CORE / f, {"s", "session"})]
    assert found == []


def test_the_assignment_finder(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f(s, session, self):\n    s.data = 1\n    session.n += 1\n    self.x = 2\n    s.cache.graph = None\n")
    assert [w.split(":")[1] for w in _assigned(f, {"s", "session"})] == ["2", "3"]
