"""The model-zoo matrix: every family in ``tests/core/zoo.py`` checked three ways.

1. masked == hand-pruned: pruning neurons through the session gives the outputs of a copy whose
   slices were zeroed by hand (the reference below names every slice);
2. shrink == masked on fresh inputs, loaded back with plain torch from the written ``.pt2``,
   or a clean :class:`PrunevizError` naming the reason, with nothing written;
3. undo gives back bit-identical parameters.
"""

import copy

import pytest
import torch

from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import zoo


def logits(out):
    return out.logits if hasattr(out, "logits") else out


def zero(t, idx, dim=0):
    with torch.no_grad():
        t.index_fill_(dim, torch.as_tensor(idx), 0.0)


def cols(t, idx, per=1, offset=0):
    """Zero input columns ``offset + i*per ... + per`` (a flattened channel spans ``per`` columns)."""
    zero(t, [offset + i * per + k for i in idx for k in range(per)], 1)


def out_rows(*modules):
    def apply(idx):
        for m in modules:
            zero(m.weight, idx)
            if m.bias is not None:
                zero(m.bias, idx)

    return apply


def hand(name: str, m, idx):
    """Zero by hand what pruning output neurons ``idx`` of the family's layer must zero."""
    if name == "plain_cnn":
        out_rows(m[0])(idx), cols(m[2].weight, idx)
    elif name == "bn_cnn":
        out_rows(m[3], m[4])(idx), cols(m[8].weight, idx, per=16)
    elif name == "residual":
        out_rows(m.conv1, m.bn1)(idx), cols(m.conv2.weight, idx)
    elif name == "residual_add":  # the add couples stem and conv2 channel by channel
        out_rows(m.stem, m.bn0, m.conv2, m.bn2)(idx), cols(m.conv1.weight, idx), cols(m.head.weight, idx)
    elif name == "depthwise":  # the depthwise filter of a removed channel goes with it
        out_rows(m.expand, m.bn1, m.dw, m.bn2)(idx), cols(m.project.weight, idx)
    elif name == "grouped":
        out_rows(m.gconv)(idx), cols(m.conv3.weight, idx)
    elif name == "grouped_feeder":  # 2 groups of 4 input channels: column i % 4 of group i // 4's filters
        out_rows(m.conv1)(idx)
        with torch.no_grad():
            for i in idx:
                m.gconv.weight[(i // 4) * 4 : (i // 4 + 1) * 4, i % 4] = 0
    elif name == "transposed":  # ConvTranspose2d weight is [in, out, kh, kw]
        out_rows(m.conv)(idx), zero(m.up.weight, idx, 0)
    elif name == "dense":  # conv1's channels sit after conv0's 6 in both concatenations
        out_rows(m.conv1)(idx), cols(m.conv2.weight, idx, offset=6), cols(m.head.weight, idx, offset=6)
    elif name in ("vit_separate", "vit_fused"):
        out_rows(m.fc1)(idx), cols(m.fc2.weight, idx)
    elif name == "mha":
        out_rows(m.fc)(idx), cols(m.head.weight, idx)
    elif name == "tied_lm":
        out_rows(m.fc1)(idx), cols(m.fc2.weight, idx)
    elif name == "branching":  # fc1 feeds both branches
        out_rows(m.fc1)(idx), cols(m.a.weight, idx), cols(m.b.weight, idx)
    elif name == "output_object":
        out_rows(m.fc1)(idx), cols(m.fc2.weight, idx)
    elif name == "conv1d":  # Conv1D weights are [in, out]: a neuron is a column, its input a row
        zero(m.c_fc.weight, idx, 1), zero(m.c_fc.bias, idx), zero(m.c_proj.weight, idx, 0)
    else:
        raise AssertionError(name)


#: families whose shrink is refused, and why (everything else must shrink exactly)
SHRINK_REFUSED = {
    "branching": "data-dependent control flow",
}


def open_session(family):
    model = family.factory()
    ref = copy.deepcopy(model)
    x = zoo.inputs(family, 6, seed=0)
    s = Session(LoadedModel(model, family.name, "state_dict", None, x[:1], True), None, device="cpu")
    return s, ref


@pytest.mark.parametrize("family", zoo.ZOO, ids=[f.name for f in zoo.ZOO])
def test_masked_equals_hand_pruned(family):
    s, ref = open_session(family)
    idx = list(family.neurons)
    s.prune_neurons(family.layer, idx)
    hand(family.name, ref, idx)
    x = zoo.inputs(family, 6, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(logits(s.model(x)), logits(ref(x)), rtol=0, atol=1e-6)
    assert not bool(s.neuron_mask(family.layer)[idx].any())


# the attention families take a second each to shrink; test_zoo_heads.py shrinks the same models (heads, and heads with neurons) in the quick loop
ATTENTION = {"mha", "vit_separate", "vit_fused"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f.name in ATTENTION else f for f in zoo.ZOO], ids=[f.name for f in zoo.ZOO])
def test_shrink_equals_masked_or_refuses_cleanly(family, tmp_path):
    s, _ = open_session(family)
    s.prune_neurons(family.layer, list(family.neurons))
    out = tmp_path / "m.pt2"
    if family.name in SHRINK_REFUSED:
        with pytest.raises(PrunevizError, match=SHRINK_REFUSED[family.name]):
            s.export(out, format="pt2", shrink=True)
        assert not out.exists()
        return
    rep = s.export(out, format="pt2", shrink=True)
    shrunk = torch.export.load(str(out)).module()
    if family.name != "tied_lm":  # torch.export stores the tied head and embedding apart
        assert rep["params_after"] == sum(p.numel() for p in shrunk.parameters())
    assert rep["params_after"] < rep["params_before"]
    x = zoo.inputs(family, 7, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(logits(shrunk(x)), logits(s.model(x)), rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", zoo.ZOO, ids=[f.name for f in zoo.ZOO])
def test_undo_is_bit_identical(family):
    s, ref = open_session(family)
    s.prune(0.4, granularity="weight")
    s.prune_neurons(family.layer, list(family.neurons))
    s.undo()
    s.undo()
    for (name, p), (_, q) in zip(s.model.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), name
