"""Encoder–decoder data without transformers: a small seq2seq look-alike (encoder input as the
positional argument, ``decoder_input_ids`` as a keyword, ``{"logits": ...}`` out) read from an
``.npz`` holding ``x``, ``decoder_input_ids`` and ``labels``. The extra arrays must follow every
batch cut: evaluation order, training batches, score batches, calibration subsets."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pruneviz.core.data import open_data
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from pruneviz.core.training import complete

V, N, TE, TD = 12, 40, 7, 5


class TinySeq2Seq(nn.Module):
    """Encoder: embedding, Linear, mean over positions. Decoder: its own embedding plus the
    encoder summary, a Linear, the vocabulary head. Each decoder token depends on its own id, so a
    misaligned decoder_input_ids changes the figures."""

    def __init__(self):
        super().__init__()
        self.enc_emb = nn.Embedding(V, 16)
        self.enc = nn.Linear(16, 16)
        self.dec_emb = nn.Embedding(V, 16)
        self.dec = nn.Linear(16, 24)
        self.head = nn.Linear(24, V)

    def forward(self, input_ids, decoder_input_ids):
        summary = torch.relu(self.enc(self.enc_emb(input_ids))).mean(1, keepdim=True)
        return {"logits": self.head(torch.relu(self.dec(self.dec_emb(decoder_input_ids) + summary)))}


def _arrays(seed):
    g = np.random.default_rng(seed)
    x = g.integers(0, V, (N, TE))
    dec = g.integers(0, V, (N, TD))
    labels = (dec + 1) % V  # learnable from each sample's own decoder inputs only
    labels[:, -1] = np.where(g.random(N) < 0.5, -100, labels[:, -1])  # padding: not scored
    return {"x": x, "decoder_input_ids": dec, "labels": labels}


def _npz(tmp_path, name, seed=0, **change):
    arrays = {**_arrays(seed), **change}
    path = tmp_path / f"{name}.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def _session(tmp_path):
    torch.manual_seed(0)
    data = open_data(_npz(tmp_path, "eval"))
    model = TinySeq2Seq().eval()
    return Session(LoadedModel(model, "seq2seq", "state_dict", None, data.x[:1], True), data, device="cpu", batch_size=16), data


def _oracle(model, data):
    """A plain torch loop: mean cross-entropy and the number of hits over the scored tokens."""
    with torch.no_grad():
        z = model(data.x, decoder_input_ids=data.extra["decoder_input_ids"])["logits"].reshape(-1, V)
    t = data.y.reshape(-1)
    keep = t != -100
    return float(F.cross_entropy(z[keep], t[keep], reduction="sum")) / int(keep.sum()), int((z[keep].argmax(1) == t[keep]).sum())


def test_npz_with_decoder_inputs_and_labels_evaluates_like_a_plain_loop(tmp_path):
    s, data = _session(tmp_path)
    assert set(data.extra) == {"decoder_input_ids"} and data.tokens and tuple(data.y.shape) == (N, TD)
    result = s.evaluate()
    loss, acc = _oracle(s.model, data)
    assert result.tokens == int((data.y != -100).sum())  # padding is not a prediction
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert result.correct == acc
    # the data's order is shuffled for evaluation: a misaligned decoder input would change the loss
    shuffled = {**data.extra, "decoder_input_ids": data.extra["decoder_input_ids"].roll(1, 0)}
    with torch.no_grad():
        off = F.cross_entropy(s.model(data.x, **shuffled)["logits"].reshape(-1, V), data.y.reshape(-1), ignore_index=-100)
    assert abs(float(off) - loss) > 1e-4


def test_an_input_alone_gets_the_first_decoder_inputs_and_the_model_still_pickles(tmp_path):
    s, data = _session(tmp_path)
    first = data.extra["decoder_input_ids"][:1].repeat(3, 1)
    with torch.no_grad():
        expected = s.model(data.x[:3], decoder_input_ids=first)["logits"]
        torch.testing.assert_close(s.model(data.x[:3])["logits"], expected, rtol=0, atol=0)  # tracing, shrink
        copy = pickle.loads(pickle.dumps(s.model))  # copies sent to worker processes
        torch.testing.assert_close(copy(data.x[:3])["logits"], expected, rtol=0, atol=0)
    s.set_data(None)  # no encoder-decoder data: the model is called as it is again
    with pytest.raises(TypeError):
        s.model(data.x[:3])


@pytest.mark.slow  # scores, training and shrinking of a seq2seq model; quick: the other tests of this module
def test_scores_train_and_shrink_carry_the_decoder_inputs(tmp_path):
    s, data = _session(tmp_path)
    # taylor: (g·w)² with g the gradient of the summed loss over all samples / N (one batch)
    model = s.model
    w = model.dec.weight
    out = model(data.x, decoder_input_ids=data.extra["decoder_input_ids"])["logits"]
    g = torch.autograd.grad(F.cross_entropy(out.reshape(-1, V), data.y.reshape(-1), ignore_index=-100, reduction="sum") / N, w)[0]
    torch.testing.assert_close(s.scores("dec", "taylor", "weight"), (g * w.detach()) ** 2, rtol=1e-4, atol=1e-9)
    for method in ("obd", "wanda"):
        assert bool(torch.isfinite(s.scores("dec", method, "weight")).all()), method
    s.prune(0.4, layers="dec")
    s.prune_neurons("dec", [0, 3])  # traces the model with the first sample's decoder inputs
    assert s.coupling_builds == 1
    sens = complete(s.sensitivity(layers=["dec"], levels=[0.5]))
    assert set(sens["layers"]) == {"dec"}
    before = s.evaluate().loss
    run = complete(s.finetune(2, data=_npz(tmp_path, "train", seed=1), lr=0.05, batch_size=8))
    assert run.steps == 10
    for layer in s.layers:  # pruned entries stay exactly 0 through fine-tuning
        assert bool((s.weight(layer.name)[~s.mask(layer.name)] == 0).all()), layer.name
    after = s.evaluate()
    assert after.loss < before - 0.2  # learnt from each sample's decoder inputs
    assert after.loss == pytest.approx(_oracle(s.model, data)[0], rel=1e-5)
    rep = s.export(tmp_path / "m.pt", shrink=True)
    assert rep["params_after"] < rep["params_before"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"decoder_input_ids": np.zeros((N - 1, TD), np.int64)}, "decoder_input_ids has shape [39, 5] but x has 40 samples"),
        ({"decoder_input_ids": np.zeros((N, TD), np.float32)}, "decoder_input_ids is float32; expected integers"),
        ({"decoder_input_ids": np.zeros((N, TD + 1), np.int64)}, "one label per decoder token"),
        ({"y": np.zeros((N, TD), np.int64)}, "holds both y and labels"),
        ({"labels": np.full((N, TD), -7)}, "(or -100 for padding), but one is -7"),
        ({"labels": None}, "decoder_input_ids but no labels"),
    ],
)
def test_bad_encoder_decoder_arrays_are_refused_in_one_line(tmp_path, change, message):
    arrays = {**_arrays(0), **change}
    if change.get("labels", 0) is None:  # token ids x alone would be next-token data
        arrays.pop("labels")
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(PrunevizError) as err:
        open_data(str(path))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_extra_arrays_count_against_the_size_limit(tmp_path):
    path = _npz(tmp_path, "big", decoder_input_ids=np.zeros((N, 4000), np.int64), labels=np.zeros((N, 4000), np.int64))
    x_and_labels = N * TE * 8 + N * 4000 * 8
    with pytest.raises(PrunevizError, match="over the .* limit"):
        open_data(path, max_bytes=x_and_labels + 1000)  # fits without the decoder inputs
    assert len(open_data(path, max_bytes=2 * x_and_labels)) == N
