"""Opening a Llama-style model (grouped-query attention) builds no coupling graph; the first neuron
edit does, once. Heads of a GQA model prune by key/value group (each with its query heads) and
shrink to a model that runs and equals the masked one. Needs the ``models`` extra."""

import copy
import warnings

import pytest
import torch

from pruneviz.core import attention_heads as ah
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session

pytestmark = pytest.mark.slow  # real Hugging Face model classes (the models extra): importing transformers alone costs the quick loop a second; quick: the torch-only zoo (test_zoo*.py)
transformers = pytest.importorskip("transformers", reason="the models extra (transformers) is not installed")


def llama(layers=2, hidden=64, heads=4, kv=2):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=100, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                   num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=64)  # fmt: skip
    return transformers.LlamaForCausalLM(cfg).eval()


def ids(n, seed):
    return torch.randint(0, 100, (n, 12), generator=torch.Generator().manual_seed(seed))


def session(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Session(LoadedModel(model, "llama", "state_dict", None, ids(1, 0), True), None, device="cpu")


def test_opening_builds_no_coupling_and_the_first_neuron_edit_builds_it_once():
    s = session(llama())
    assert s.coupling_builds == 0 and s.coupling_built is None and s.neuron_pruning
    s.prune(0.3)  # weight pruning never needs the graph
    assert s.coupling_builds == 0
    layer = "model.layers.1.mlp.gate_proj"
    s.prune_neurons(layer, [1, 5])
    assert s.coupling_builds == 1 and s.coupling_built is not None
    c = s.coupling[layer]
    assert "model.layers.1.mlp.up_proj" in c.coupled  # gate * up: their neurons go together
    assert {e.param for e in c.effects} >= {"model.layers.1.mlp.down_proj.weight"}
    s.prune_neurons("model.layers.0.self_attn.k_proj", [0])  # GQA projection: its own rows
    assert s.coupling_builds == 1
    w = s.model.model.layers[1].mlp
    assert bool((w.gate_proj.weight[[1, 5]] == 0).all()) and bool((w.down_proj.weight[:, [1, 5]] == 0).all())


def test_repeated_blocks_take_the_first_blocks_coupling_renamed():
    s = session(llama(layers=3))
    a, b = s.coupling["model.layers.0.mlp.gate_proj"], s.coupling["model.layers.2.mlp.gate_proj"]
    assert [e.param.replace("layers.0", "layers.2") for e in a.effects] == [e.param for e in b.effects]
    assert all(torch.equal(x.target_idx, y.target_idx) for x, y in zip(a.effects, b.effects))


def test_gqa_heads_prune_by_key_value_group_and_shrink_to_the_masked_model():
    model = llama(kv=2, heads=4)  # G = 2 query heads per key/value head, head_dim 16
    ref = copy.deepcopy(model)
    s = session(model)
    unit = "model.layers.0.self_attn"
    assert s.attention_heads()[unit] == 2  # the unit is a key/value head with its query group
    s.prune_heads(unit, [1])
    att = s.model.model.layers[0].self_attn
    # key/value head 1 = rows 16..31 of k and v; its query heads 2, 3 = rows 32..63 of q and
    # the same columns of o
    assert bool((att.k_proj.weight[16:32] == 0).all()) and bool((att.v_proj.weight[16:32] == 0).all())
    assert bool((att.q_proj.weight[32:64] == 0).all()) and bool((att.o_proj.weight[:, 32:64] == 0).all())
    assert bool((att.q_proj.weight[:32] != 0).any()) and bool((att.k_proj.weight[:16] != 0).any())
    shrunk = ah.shrink_heads(copy.deepcopy(s.model), ah.find_heads(s), ah.pruned_heads(s), ids(2, 0))
    sa = shrunk.model.layers[0].self_attn
    assert sa.q_proj.out_features == 32 and sa.k_proj.out_features == 16 and sa.o_proj.in_features == 32
    with torch.no_grad():
        x = ids(4, 3)
        torch.testing.assert_close(shrunk(x).logits, s.model(x).logits, rtol=0, atol=1e-5)
        assert not torch.allclose(ref(x).logits, s.model(x).logits)  # the head did matter
    s.undo()
    assert bool((att.k_proj.weight[16:32] != 0).any())
