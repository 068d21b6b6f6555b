"""The zoo checks on real model classes (the optional ``models`` extra; skipped when absent).

Random weights from a small config: nothing is downloaded. transformers runs with the CPU torch
this project tests with; torchvision and timm need a torch build that matches theirs (README).
"""

import copy
import warnings

import pytest
import torch
import torch.nn.utils.prune

from pruneviz.core import attention_heads as ah
from pruneviz.core import export
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session

pytestmark = pytest.mark.slow  # BERT and GPT-2 from transformers (the models extra); quick: the torch-only zoo (test_zoo*.py)
transformers = pytest.importorskip("transformers", reason="the models extra (transformers) is not installed")


def bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=3)  # fmt: skip
    return transformers.BertForSequenceClassification(cfg).eval()


def gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def ids(n, seed):
    return torch.randint(0, 100, (n, 16), generator=torch.Generator().manual_seed(seed))


def session(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Session(LoadedModel(model, "hf", "state_dict", None, ids(1, 0), True), None, device="cpu")


def test_bert_mlp_neurons_mask_like_a_hand_pruned_copy_and_shrink_exactly(tmp_path):
    model = bert()
    ref, orig = copy.deepcopy(model), copy.deepcopy(model)
    s = session(model)
    assert "SequenceClassifierOutput" in " ".join(s.notices)
    layer = "bert.encoder.layer.0.intermediate.dense"
    idx = [3, 10, 41]
    s.prune_neurons(layer, idx)
    with torch.no_grad():
        blk = ref.bert.encoder.layer[0]
        blk.intermediate.dense.weight[idx] = 0
        blk.intermediate.dense.bias[idx] = 0
        blk.output.dense.weight[:, idx] = 0
        x = ids(5, 1)
        torch.testing.assert_close(s.model(x).logits, ref(x).logits, rtol=0, atol=1e-6)
    # attention projections: masked fine, shrink refused before anything is written
    s.prune_neurons("bert.encoder.layer.1.attention.self.query", [0])
    with pytest.raises(PrunevizError, match="attention heads"):
        s.export(tmp_path / "b.pt", shrink=True)
    assert not (tmp_path / "b.pt").exists()
    s.undo()
    rep = s.export(tmp_path / "b.pt", shrink=True)
    assert rep["params_after"] == rep["params_before"] - 3 * (32 + 1 + 32)
    pruned = {n.name: ~s.neuron_mask(n.name) for n in s.layers}
    shrunk = export.shrink_model(s.model, ids(2, 0), pruned, {n.name for n in s.layers if n.is_output})
    with torch.no_grad():
        x = ids(6, 2)
        torch.testing.assert_close(shrunk(x).logits, s.model(x).logits, rtol=0, atol=1e-5)
    s.undo()  # both steps undone: bit-identical to the model as it came
    for (n, p), (_, q) in zip(s.model.named_parameters(), orig.named_parameters()):
        assert torch.equal(p, q), n


def test_bert_neuron_prune_skips_each_unprunable_layer_with_a_notice():
    s = session(bert())
    s.prune(0.25, granularity="neuron")
    skipped = [n for n in s.notices if n.startswith("skipped ")]
    assert len(skipped) == len(set(skipped)) == 4  # attention.output.dense and output.dense, 2 blocks
    assert all("Embedding" in n or "LayerNorm" in n for n in skipped)
    assert not bool(s.neuron_mask("bert.encoder.layer.1.intermediate.dense").all())


def test_gpt2_conv1d_layers_are_weight_pruned_like_l1_unstructured_and_undo_exactly():
    model = gpt2()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    s = session(model)
    conv1d = [layer for layer in s.layers if layer.kind == "Conv1D"]
    assert len(conv1d) == 8 and s.layer("lm_head").weight == "transformer.wte.weight"  # tied head
    s.prune(0.3, layers="transformer.h.*")
    for layer in conv1d:
        w = original[layer.weight]
        oracle = torch.nn.utils.prune.L1Unstructured(0.3).compute_mask(w, torch.ones_like(w)).bool()
        assert torch.equal(s.mask(layer.name), oracle), layer.name
    with torch.no_grad():
        x = ids(3, 3)
        hand = gpt2()
        for layer in conv1d:
            hand.state_dict()[layer.weight].mul_(s.mask(layer.name))
        torch.testing.assert_close(s.model(x).logits, hand(x).logits, rtol=0, atol=1e-6)
    s.undo()
    for k, v in s.model.state_dict().items():
        assert torch.equal(v, original[k]), k


def _head_rows(heads, d, offset=0):
    return [offset + h * d + j for h in heads for j in range(d)]


def test_bert_heads_mask_like_a_hand_pruned_copy_shrink_exactly_and_undo(tmp_path):
    model = bert()
    ref, orig = copy.deepcopy(model), copy.deepcopy(model)
    s = session(model)
    unit = "bert.encoder.layer.0.attention.self"
    assert s.attention_heads() == {unit: 4, "bert.encoder.layer.1.attention.self": 4}
    assert s.prune_heads(unit, [0, 2]) == 2
    rows = _head_rows([0, 2], 8)
    with torch.no_grad():
        att = ref.bert.encoder.layer[0].attention
        for lin in (att.self.query, att.self.key, att.self.value):
            lin.weight[rows] = 0
        att.output.dense.weight[:, rows] = 0
        x = ids(5, 1)
        torch.testing.assert_close(s.model(x).logits, ref(x).logits, rtol=0, atol=1e-6)
    rep = s.export(tmp_path / "b.pt", shrink=True)
    assert rep["params_after"] == rep["params_before"] - (3 * 16 * (32 + 1) + 32 * 16)
    shrunk = ah.shrink_heads(copy.deepcopy(s.model), ah.find_heads(s), ah.pruned_heads(s), ids(2, 0))
    assert shrunk.bert.encoder.layer[0].attention.self.num_attention_heads == 2
    with torch.no_grad():
        x = ids(6, 2)
        torch.testing.assert_close(shrunk(x).logits, s.model(x).logits, rtol=0, atol=1e-5)
    s.undo()
    for (n, p), (_, q) in zip(s.model.named_parameters(), orig.named_parameters()):
        assert torch.equal(p, q), n


def test_gpt2_heads_in_conv1d_mask_like_a_hand_pruned_copy_and_shrink_exactly(tmp_path):
    model = gpt2()
    ref, orig = copy.deepcopy(model), copy.deepcopy(model)
    s = session(model)
    unit = "transformer.h.1.attn"
    assert s.attention_heads()[unit] == 4
    s.prune(0.5, granularity="head", layers=unit)
    gone = (~s.head_mask(unit)).nonzero().flatten().tolist()
    assert len(gone) == 2
    with torch.no_grad():  # Conv1D weights are [in, out]: a head is columns of c_attn, rows of c_proj
        att = ref.transformer.h[1].attn
        att.c_attn.weight[:, _head_rows(gone, 8) + _head_rows(gone, 8, 32) + _head_rows(gone, 8, 64)] = 0
        att.c_proj.weight[_head_rows(gone, 8)] = 0
        x = ids(4, 1)
        torch.testing.assert_close(s.model(x).logits, ref(x).logits, rtol=0, atol=1e-6)
    rep = s.export(tmp_path / "g.pt", shrink=True)
    assert rep["params_after"] == rep["params_before"] - (3 * 16 * (32 + 1) + 16 * 32)
    shrunk = ah.shrink_heads(copy.deepcopy(s.model), ah.find_heads(s), ah.pruned_heads(s), ids(2, 0))
    assert shrunk.transformer.h[1].attn.num_heads == 2
    with torch.no_grad():
        x = ids(5, 2)
        torch.testing.assert_close(shrunk(x).logits, s.model(x).logits, rtol=0, atol=1e-5)
    s.undo()
    for (n, p), (_, q) in zip(s.model.named_parameters(), orig.named_parameters()):
        assert torch.equal(p, q), n


def test_gpt2_conv1d_neurons_mask_like_a_hand_pruned_copy_and_shrink_exactly(tmp_path):
    model = gpt2()
    ref = copy.deepcopy(model)
    s = session(model)
    layer, idx = "transformer.h.0.mlp.c_fc", [3, 10, 41]
    assert s.layer(layer).out_channels == 128 and s.neuron_mask(layer).numel() == 128
    s.prune_neurons(layer, idx)
    with torch.no_grad():  # Conv1D weights are [in, out]: a neuron is a column of c_fc, a row of c_proj
        mlp = ref.transformer.h[0].mlp
        mlp.c_fc.weight[:, idx] = 0
        mlp.c_fc.bias[idx] = 0
        mlp.c_proj.weight[idx] = 0
        x = ids(4, 1)
        torch.testing.assert_close(s.model(x).logits, ref(x).logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(s.scores(layer, "magnitude", "neuron"), ref.transformer.h[0].mlp.c_fc.weight.detach().norm(dim=0))
    rep = s.export(tmp_path / "g.pt", shrink=True)
    assert rep["params_after"] == rep["params_before"] - 3 * (32 + 1 + 32)
    pruned = {n.name: ~s.neuron_mask(n.name) for n in s.layers}
    shrunk = export.shrink_model(s.model, ids(2, 0), pruned, {n.name for n in s.layers if n.is_output})
    assert shrunk.transformer.h[0].mlp.c_fc.weight.shape == (32, 125)
    with torch.no_grad():
        x = ids(5, 2)
        torch.testing.assert_close(shrunk(x).logits, s.model(x).logits, rtol=0, atol=1e-5)
    with pytest.raises(PrunevizError, match="attention heads"):  # c_attn: masked, never shrunk by neuron
        s.prune_neurons("transformer.h.0.attn.c_attn", [0])
        s.export(tmp_path / "h.pt", shrink=True)
