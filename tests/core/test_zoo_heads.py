"""Whole attention heads on the zoo's attention families (separate q/k/v, fused qkv,
``nn.MultiheadAttention``): masked == a copy whose head slices were zeroed by hand, shrunk (written
as ``.pt2``, loaded with plain torch) == masked, undo bit-identical, clean refusals."""

import copy

import pytest
import torch

from pruneviz.cli import main
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import zoo

FAMILIES = {f.name: f for f in zoo.ZOO}
HEADS = [1, 3]  # of 4 heads of width 4 (dim 16)
D, E = 4, 16


def open_session(name):
    family = FAMILIES[name]
    model = family.factory()
    ref = copy.deepcopy(model)
    x = zoo.inputs(family, 6, seed=0)
    return Session(LoadedModel(model, name, "state_dict", None, x[:1], True), None, device="cpu"), ref, family


def head_rows(heads, offset=0):
    return [offset + h * D + j for h in heads for j in range(D)]


def zero_by_hand(name, m, heads, biases=False):
    """Zero every slice the heads own: q/k/v rows (3 blocks of a fused qkv) and proj columns."""
    a = m.attn
    with torch.no_grad():
        if name == "vit_fused":
            rows = head_rows(heads, 0) + head_rows(heads, E) + head_rows(heads, 2 * E)
            a.qkv.weight[rows] = 0
            if biases:
                a.qkv.bias[rows] = 0
            a.proj.weight[:, head_rows(heads)] = 0
        elif name == "vit_separate":
            for lin in (a.query, a.key, a.value):
                lin.weight[head_rows(heads)] = 0
                if biases:
                    lin.bias[head_rows(heads)] = 0
            a.proj.weight[:, head_rows(heads)] = 0
        else:  # nn.MultiheadAttention: q/k/v in in_proj_weight, masked through out_proj's columns
            if biases:
                rows = head_rows(heads, 0) + head_rows(heads, E) + head_rows(heads, 2 * E)
                a.in_proj_weight[rows] = 0
                a.in_proj_bias[rows] = 0
            a.out_proj.weight[:, head_rows(heads)] = 0


@pytest.mark.parametrize("name", ["vit_separate", "vit_fused", "mha"])
def test_masked_heads_equal_a_hand_pruned_copy(name):
    s, ref, family = open_session(name)
    assert s.attention_heads() == {"attn": 4}
    assert s.prune_heads("attn", HEADS) == 2
    assert s.head_mask("attn").tolist() == [True, False, True, False]
    zero_by_hand(name, ref, HEADS)
    gone = copy.deepcopy(family.factory())
    zero_by_hand(name, gone, HEADS, biases=True)  # the head's biases too: it adds nothing either way
    x = zoo.inputs(family, 6, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(s.model(x), ref(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(s.model(x), gone(x), rtol=0, atol=1e-6)
    assert s.prune_heads("attn", HEADS) == 0  # already pruned: no step
    assert len(s.history.labels) == 1


@pytest.mark.parametrize("name", ["vit_separate", "vit_fused"])
def test_shrunk_heads_equal_the_masked_model(name, tmp_path):
    s, _, family = open_session(name)
    s.prune_heads("attn", HEADS)
    out = tmp_path / "m.pt2"
    rep = s.export(out, format="pt2", shrink=True)
    shrunk = torch.export.load(str(out)).module()
    removed = 3 * len(HEADS) * D * (E + 1) + E * len(HEADS) * D  # q/k/v rows with bias, proj columns
    assert rep["params_after"] == rep["params_before"] - removed == sum(p.numel() for p in shrunk.parameters())
    x = zoo.inputs(family, 7, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(shrunk(x), s.model(x), rtol=0, atol=1e-5)


@pytest.mark.slow  # shrinks a ViT twice; quick: test_shrunk_heads_equal_the_masked_model[vit_fused]
def test_heads_and_neurons_shrink_together(tmp_path):
    s, _, family = open_session("vit_fused")
    s.prune_neurons("fc1", [3, 17])
    s.prune_heads("attn", [0])
    rep = s.export(tmp_path / "m.pt2", format="pt2", shrink=True)
    shrunk = torch.export.load(str(tmp_path / "m.pt2")).module()
    assert rep["params_after"] == rep["params_before"] - 2 * (E + 1 + E) - (3 * D * (E + 1) + E * D)
    x = zoo.inputs(family, 5, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(shrunk(x), s.model(x), rtol=0, atol=1e-5)


def test_unshrinkable_heads_are_refused_before_anything_is_written(tmp_path):
    s, _, _ = open_session("mha")
    s.prune_heads("attn", [2])
    with pytest.raises(PrunevizError, match="MultiheadAttention requires num_heads"):
        s.export(tmp_path / "m.pt2", format="pt2", shrink=True)
    assert not (tmp_path / "m.pt2").exists()
    s, _, _ = open_session("vit_fused")
    s.model.attn.fixed_width = True  # reshapes the heads' output to the input width
    s.prune_heads("attn", [2])
    with pytest.raises(PrunevizError, match="forward fails with fewer heads"):
        s.export(tmp_path / "m.pt2", format="pt2", shrink=True)
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize("name", ["vit_separate", "vit_fused", "mha"])
def test_head_undo_is_bit_identical(name):
    s, ref, _ = open_session(name)
    s.prune(0.3, granularity="weight")
    s.prune(0.5, granularity="head")
    assert s.head_mask("attn").sum() == 2
    s.undo()
    s.undo()
    for (n, p), (_, q) in zip(s.model.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), n


def test_magnitude_head_scores_are_the_l2_norm_of_the_heads_qkv_rows_and_prune_takes_the_lowest():
    s, ref, _ = open_session("vit_fused")
    w = ref.attn.qkv.weight.detach()
    oracle = torch.stack([w[head_rows([h]) + head_rows([h], E) + head_rows([h], 2 * E)].norm() for h in range(4)])
    torch.testing.assert_close(s.head_scores("attn"), oracle)
    assert s.scores(None, "magnitude", "head")["attn"].shape == (4,)
    lowest = oracle.argsort()[:2].tolist()
    assert s.prune(0.5, granularity="head") == 2
    assert sorted((~s.head_mask("attn")).nonzero().flatten().tolist()) == sorted(lowest)
    assert s.prune(1.0, granularity="head") == 1  # the last head stays
    assert int(s.head_mask("attn").sum()) == 1
    s.restore_heads("attn", range(4))
    assert bool(s.head_mask("attn").all())


def test_head_errors_are_one_line():
    s, _, _ = open_session("plain_cnn")
    with pytest.raises(PrunevizError, match="no attention heads"):
        s.prune(0.5, granularity="head")
    s, _, _ = open_session("vit_fused")
    with pytest.raises(PrunevizError, match="out of range"):
        s.prune_heads("attn", [4])
    with pytest.raises(PrunevizError, match="no attention module named"):
        s.prune_heads("fc1", [0])
    with pytest.raises(PrunevizError, match="head importance method"):
        s.head_scores("attn", "apoz")


@pytest.mark.slow  # the CLI on two attention models; quick: test_shrunk_heads_equal_the_masked_model
def test_cli_prunes_and_shrinks_heads_and_refuses_a_model_without_attention(tmp_path, capsys):
    sd = tmp_path / "vit.pt"
    torch.save(zoo.vit_fused().state_dict(), sd)
    out = tmp_path / "v.pt2"
    code = main(["prune", str(sd), "--arch", "tests.core.zoo:vit_fused", "--input-shape", "3,8,8", "--granularity", "head",
                 "--amount", "0.5", "--shrink", "--out", str(out)])  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "pruned 2 attention heads" in stdout
    same, _, family = open_session("vit_fused")  # the same prune in Python: the file is its shrunk model
    same.prune(0.5, granularity="head")
    shrunk = torch.export.load(str(out)).module()
    assert sum(p.numel() for p in shrunk.parameters()) == same.original_params - 2 * (3 * D * (E + 1) + E * D)
    x = zoo.inputs(family, 4, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(shrunk(x), same.model(x), rtol=0, atol=1e-5)
    sd2 = tmp_path / "cnn.pt"
    torch.save(zoo.plain_cnn().state_dict(), sd2)
    code = main(["prune", str(sd2), "--arch", "tests.core.zoo:plain_cnn", "--input-shape", "3,8,8", "--granularity", "head", "--amount", "0.5", "--out", str(tmp_path / "c.pt")])
    stdout, err = capsys.readouterr()
    assert code == 2
    assert err.strip().count("\n") == 0 and "no attention heads" in err
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("method", ["taylor", "obd"])
def test_data_driven_head_scores_sum_the_weight_scores_of_the_heads_qkv_rows(method, tmp_path):
    import numpy as np

    from pruneviz.core.data import open_data

    g = torch.Generator().manual_seed(5)
    np.savez(tmp_path / "d.npz", x=torch.randn(40, 3, 8, 8, generator=g).numpy(), y=torch.randint(0, 4, (40,), generator=g).numpy())
    s, _, _ = open_session("vit_separate")
    s.set_data(open_data(str(tmp_path / "d.npz")))
    w = s.scores(None, method, "weight")
    oracle = torch.stack([sum(w[f"attn.{k}"][head_rows([h])].sum() for k in ("query", "key", "value")) for h in range(4)])
    torch.testing.assert_close(s.head_scores("attn", method), oracle.float())
    s.prune(0.25, granularity="head", method=method)
    assert (~s.head_mask("attn")).nonzero().flatten().tolist() == [int(oracle.argmin())]


def test_cli_head_shrink_of_multihead_attention_is_refused_before_pruning(tmp_path, capsys):
    sd = tmp_path / "mha.pt"
    torch.save(zoo.mha().state_dict(), sd)
    out = tmp_path / "m.pt"
    code = main(["prune", str(sd), "--arch", "tests.core.zoo:mha", "--input-shape", "5,6", "--granularity", "head", "--amount", "0.5", "--shrink", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "MultiheadAttention requires num_heads" in err
    assert not out.exists()
    code = main(["score", str(sd), "--arch", "tests.core.zoo:mha", "--input-shape", "5,6", "--granularity", "head", "--method", "magnitude", "--out", str(tmp_path / "s.npz")])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    import numpy as np

    s, _, _ = open_session("mha")
    np.testing.assert_allclose(np.load(tmp_path / "s.npz")["attn"], s.head_scores("attn").numpy())
