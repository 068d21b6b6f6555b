"""Incremental evaluation of Hugging Face models (built from a config, random weights), against
its oracle, the full pass: GPT-2 (Conv1D layers, tied embedding and head), BERT, a Llama-style
decoder (grouped-query attention, rotary positions) and GPT-2 for sequence classification (it
reads the token ids again after the last block). transformers 5 has no fx tracer, so these go
through ``torch.export``; every result must equal a full pass exactly, and edits late in the
model must start late.
"""

from __future__ import annotations

import random

import pytest
import torch

from pruneviz.core.data import EvalData
from pruneviz.core.graph_cuts import Graph
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session

from .test_incremental import _random_edit, check_exact

pytestmark = pytest.mark.slow  # exporting a model takes seconds
transformers = pytest.importorskip("transformers", reason="the models extra (transformers) is not installed")

V, N, T = 50, 40, 8


def gpt2():
    cfg = transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=3, n_head=2, n_positions=16, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg), "lm", "transformer.h.2.mlp.c_fc", "transformer.h.0.attn.c_attn"


def gpt2_classifier():
    cfg = transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=3, n_head=2, n_positions=16, num_labels=3, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2ForSequenceClassification(cfg), "cls", "transformer.h.2.mlp.c_proj", "transformer.h.0.mlp.c_fc"


def bert():
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, max_position_embeddings=16, num_labels=3)
    return transformers.BertForSequenceClassification(cfg), "cls", "bert.encoder.layer.2.output.dense", "bert.encoder.layer.0.attention.self.query"


def llama():
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=0)
    return transformers.LlamaForCausalLM(cfg), "lm", "model.layers.2.mlp.down_proj", "model.layers.0.self_attn.k_proj"


MODELS = {"gpt2": gpt2, "gpt2_classifier": gpt2_classifier, "bert": bert, "llama": llama}


def _session(name: str) -> tuple[Session, str, str]:
    torch.manual_seed(0)
    model, task, late, early = MODELS[name]()
    model.eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, V, (N, T + 1), generator=g)
    if task == "lm":  # next-token prediction: accuracy and loss per token
        data = EvalData(ids[:, :-1].contiguous(), ids[:, 1:].contiguous(), name)
    else:
        data = EvalData(ids[:, :-1].contiguous(), torch.randint(0, 3, (N,), generator=g), name)
    s = Session(LoadedModel(model, name, "state_dict", None, data.x[:1], True), data, device="cpu", batch_size=16)
    return s, late, early


@pytest.mark.parametrize("name", list(MODELS))
def test_hugging_face_models_evaluate_incrementally_and_exactly(name):
    s, late, early = _session(name)
    s.evaluate()
    graph = s.cache.graph
    assert isinstance(graph, Graph), graph
    assert len(graph.cuts) >= 4  # between the blocks, not only at the head
    s.prune_weights(late, torch.arange(0, s.layer(late).numel, 5))
    at_late = check_exact(s)
    s.prune_weights(early, torch.arange(0, s.layer(early).numel, 7))
    at_early = check_exact(s)
    assert at_late > at_early > 0
    rng = random.Random(1)
    for _ in range(6):  # then a random sequence of neuron and weight edits, undos and redos
        _random_edit(s, rng)
        check_exact(s)
    while s.undo() is not None:
        check_exact(s)


def test_a_tied_head_edit_starts_before_the_embedding_it_shares():
    """GPT-2's head is its token embedding: an edit of ``lm_head`` changes the first node."""
    s, _, _ = _session("gpt2")
    s.evaluate()
    graph = s.cache.graph
    embedding = graph.position(["transformer.wte"])
    assert graph.position(["lm_head"]) == embedding < max(graph.cuts)
    s.prune_weights("lm_head", torch.arange(0, s.layer("lm_head").numel, 9))
    assert check_exact(s) <= embedding
