"""Regressions found by opening real model families: each test failed before its fix."""

import copy

import pytest
import torch
import torch.nn as nn

from pruneviz.core.data import EvalData
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session


def make_session(model, in_shape, classes=4, n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, *in_shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return Session(LoadedModel(model.eval(), "t", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu"), x


class Upsampler(nn.Module):
    """Conv -> ConvTranspose2d (weight [in, out, kh, kw]) -> head."""

    def __init__(self, mid=8, up=4):
        super().__init__()
        self.conv = nn.Conv2d(3, mid, 3, padding=1)
        self.up = nn.ConvTranspose2d(mid, up, 2, stride=2)
        self.head = nn.Linear(up * 8 * 8, 4)

    def forward(self, x):
        return self.head(torch.flatten(self.up(torch.relu(self.conv(x))), 1))


def snapshot(s):
    return {
        "params": {k: v.detach().clone() for k, v in s.model.named_parameters()},
        "elem": {k: v.clone() for k, v in s.masks.elem.items()},
        "chan": {k: v.clone() for k, v in s.masks.chan.items()},
        "keep": {k: v.clone() for k, v in s.masks.keep.items()},
        "kept": dict(s.masks.kept),
        "version": s.masks.version,
        "history": (list(s.history.labels), s.history.index),
    }


def assert_same(a, b, version=True):
    if not version:  # undo/redo move the version on (caches key on it); the masks must be the same
        a, b = dict(a, version=0), dict(b, version=0)
    assert a.keys() == b.keys()
    for key in ("params", "elem", "chan", "keep"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert (a["kept"], a["version"], a["history"]) == (b["kept"], b["version"], b["history"])


@pytest.mark.parametrize("up", [8, 4])
def test_conv_transpose_consumer_is_masked_on_its_input_dimension(up):
    torch.manual_seed(0)
    model = Upsampler(8, up)
    ref = copy.deepcopy(model)
    s, x = make_session(model, (3, 4, 4))
    s.prune_neurons("conv", [1, 5])
    with torch.no_grad():
        for i in (1, 5):
            ref.conv.weight[i] = 0
            ref.conv.bias[i] = 0
            ref.up.weight[i] = 0  # ConvTranspose weight is [in, out, kh, kw]
    with torch.no_grad():
        torch.testing.assert_close(s.model(x), ref(x), rtol=0, atol=1e-6)
    assert int(s.model.up.weight.count_nonzero()) == int(ref.up.weight.count_nonzero())


def test_a_failure_in_the_middle_of_an_edit_leaves_the_session_as_it_was(monkeypatch):
    torch.manual_seed(0)
    from tests.core import models

    s, x = make_session(models.resnet(), (3, 8, 8), classes=6)
    s.prune(0.3, granularity="weight")
    s.prune_neurons("conv1", [0])
    before = snapshot(s)
    with torch.no_grad():
        out_before = s.model(x)
    calls = {"n": 0}
    real = torch.Tensor.index_copy_

    def failing(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # after some slices were written
            raise RuntimeError("injected failure")
        return real(self, *args)

    monkeypatch.setattr(torch.Tensor, "index_copy_", failing)
    with pytest.raises(RuntimeError, match="injected"):
        s.prune_neurons("stem", [1, 2, 3])
    assert calls["n"] == 3
    monkeypatch.undo()
    assert_same(before, snapshot(s))
    with torch.no_grad():
        assert torch.equal(s.model(x), out_before)
    # the session still works: the same edit now succeeds and undoes bit-identically
    s.prune_neurons("stem", [1, 2, 3])
    s.undo()
    after = snapshot(s)
    after["history"] = before["history"]  # the undone step stays redoable
    assert_same(before, after, version=False)


def test_a_failure_in_a_multi_flip_edit_rolls_back_the_flips_already_applied(monkeypatch):
    torch.manual_seed(0)
    from tests.core import models

    s, x = make_session(models.cnn_seq(), (3, 8, 8))
    before = snapshot(s)
    from pruneviz.core import masks as masks_mod

    real = masks_mod.MaskStore.flip_elem
    calls = {"n": 0}

    def failing(self, layer, idx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure")
        return real(self, layer, idx)

    monkeypatch.setattr(masks_mod.MaskStore, "flip_elem", failing)
    with pytest.raises(RuntimeError, match="injected"):
        s.prune(0.5, scope="global")  # one flip per layer: the third fails
    monkeypatch.undo()
    assert_same(before, snapshot(s))


def test_undo_that_fails_keeps_history_and_masks_in_step(monkeypatch):
    torch.manual_seed(0)
    from tests.core import models

    s, x = make_session(models.resnet(), (3, 8, 8), classes=6)
    s.prune_neurons("conv1", [0, 3])
    before = snapshot(s)
    calls = {"n": 0}
    real = torch.Tensor.index_copy_

    def failing(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure")
        return real(self, *args)

    monkeypatch.setattr(torch.Tensor, "index_copy_", failing)
    with pytest.raises(RuntimeError, match="injected"):
        s.undo()
    monkeypatch.undo()
    assert_same(before, snapshot(s))
    s.undo()
    assert s.history.index == 0


class TiedLM(nn.Module):
    """A language model whose head shares the embedding matrix (GPT-2 style)."""

    def __init__(self, vocab=40, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, x):
        return self.lm_head(torch.relu(self.fc(self.embed(x)))).mean(1)


def test_tied_head_prunes_scores_and_views_without_key_errors(tmp_path):
    torch.manual_seed(0)
    model = TiedLM()
    ref = copy.deepcopy(model)
    x = torch.randint(0, 40, (16, 5))
    s = Session(LoadedModel(model.eval(), "t", "state_dict", None, x[:1], True), None, device="cpu")
    assert s.layer("lm_head").weight == "embed.weight"
    s.scores("lm_head")
    s.view_rows("lm_head", 0, 4)
    s.prune(0.3, layers="lm_head")
    kept = s.mask("lm_head")
    s.prune_neurons("fc", [2, 7])
    with torch.no_grad():
        w = ref.embed.weight  # tied: one tensor for the embedding and the head
        w.mul_(kept)
        w[:, [2, 7]] = 0
        ref.fc.weight[[2, 7]] = 0
        ref.fc.bias[[2, 7]] = 0
        torch.testing.assert_close(s.model(x), ref(x), rtol=0, atol=1e-6)
    # shrinking would untie the head from the embedding: refused before anything is written
    out = tmp_path / "lm.pt"
    with pytest.raises(PrunevizError, match="tied"):
        s.export(out, shrink=True)
    assert not out.exists()


@pytest.mark.slow  # shrinks a grouped conv model; quick: test_zoo.py::test_shrink_equals_masked_or_refuses_cleanly[grouped]
def test_grouped_conv_shrinks_group_by_group_and_keeps_unbalanced_channels_as_zeros(tmp_path):
    from tests.core import zoo

    x = torch.randn(5, 3, 8, 8)
    for layer, idx, zeros in (("gconv", [1, 6], None), ("conv1", [2, 5], None), ("gconv", [1, 2], {"gconv": 2}), ("conv1", [0, 1, 6], {"conv1": 1})):
        s = Session(LoadedModel(zoo.grouped(), "t", "state_dict", None, x[:1], True), None, device="cpu")
        s.prune_neurons(layer, idx)
        rep = s.export(tmp_path / "g.pt2", format="pt2", shrink=True)
        shrunk = torch.export.load(str(tmp_path / "g.pt2")).module()
        with torch.no_grad():
            torch.testing.assert_close(shrunk(x), s.model(x), rtol=0, atol=1e-5)
        assert rep.get("kept_as_zeros") == zeros
        removed = len(idx) - sum((zeros or {}).values())  # one channel per group and layer, or none
        assert (rep["params_after"] < rep["params_before"]) == (removed > 0)


def test_data_dependent_branch_layers_are_refused_and_shrink_says_why(tmp_path):
    from tests.core import zoo

    x = torch.randn(4, 12)
    s = Session(LoadedModel(zoo.branching(), "t", "state_dict", None, x[:1], True), None, device="cpu")
    for name in ("b", "b2"):
        with pytest.raises(PrunevizError, match="data-dependent control flow"):
            s.prune_neurons(name, [0])
    s.prune_neurons("fc1", [1])
    with pytest.raises(PrunevizError, match="data-dependent control flow"):
        s.export(tmp_path / "b.pt2", format="pt2", shrink=True)
    assert not (tmp_path / "b.pt2").exists()


def test_shrinking_attention_projections_is_refused_before_anything_is_written(tmp_path):
    from tests.core import zoo

    x = torch.randn(3, 3, 8, 8)
    s = Session(LoadedModel(zoo.vit_separate(), "t", "state_dict", None, x[:1], True), None, device="cpu")
    with torch.no_grad():
        before = s.model(x)
    s.prune_neurons("attn.query", [1, 2])  # masking is exact: q·k loses those dimensions
    out = tmp_path / "v.pt2"
    with pytest.raises(PrunevizError, match="attention heads"):
        s.export(out, format="pt2", shrink=True)
    assert not out.exists() and s.history.index == 1
    s.undo()
    with torch.no_grad():
        assert torch.equal(s.model(x), before)
    fused = Session(LoadedModel(zoo.vit_fused(), "t", "state_dict", None, x[:1], True), None, device="cpu")
    with pytest.raises(PrunevizError, match="attention heads"):
        fused.prune_neurons("attn.qkv", [0])


@pytest.mark.parametrize("fixed", [1, 4])
def test_pt2_exported_with_a_fixed_batch_evaluates_and_scores_in_its_own_batches(tmp_path, fixed):
    from pruneviz.core import evaluate as ev
    from tests.core import models

    model = models.mlp()
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(fixed, 12),)), str(path))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 12, generator=g), torch.randint(0, 5, (50,), generator=g)
    s = Session.open(str(path), device="cpu")
    s.data = EvalData(x=x, y=y, spec="t")
    s.batch_size = 7  # neither the program's batch nor a divisor of 50: the last chunk is padded
    r = s.evaluate()
    with torch.no_grad():
        want = ev.run(ev.evaluate_iter(model, x, y, 50, None, 5))
    assert r.correct == int((model(x).argmax(1) == y).sum()) == want.correct
    assert r.loss == pytest.approx(want.loss, rel=1e-5)
    scores = s.scores("0", method="taylor")
    assert scores.shape == (20, 12) and bool(torch.isfinite(scores).all())
    s.prune(0.5)
    out = tmp_path / "out.pt2"
    s.export(out, format="pt2")
    reopened = Session.open(str(out), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(reopened.model(x), s.model(x))
