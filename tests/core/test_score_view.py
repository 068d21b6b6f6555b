"""LayerScores: row updates give exactly what a full re-score and recount give; pooling helpers
equal the plain 4-D reductions they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from pruneviz.core import display
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.score_view import LayerScores
from pruneviz.core.session import Session


def _session():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    loaded = LoadedModel(model=model, spec="t", source="state_dict", arch=None, example_input=torch.randn(1, 3, 8, 8), structured_ok=True)
    return Session(loaded, None, device="cpu")


@pytest.mark.parametrize("method", ["magnitude", "random"])
@pytest.mark.parametrize("layer", ["0", "3"])
def test_row_updates_equal_a_full_recompute(method, layer):
    s = _session()
    v = LayerScores.compute(s, layer, method)
    rng = np.random.default_rng(0)
    rows, cols = s.layer(layer).view_shape
    for step in range(12):
        if step % 3 == 0:
            r = int(rng.integers(rows))
            s.prune_neurons(layer, [r])
            touched = [r]
        elif step % 3 == 1:
            flat = rng.choice(rows * cols, 5, replace=False)
            s.prune_weights(layer, flat)
            touched = sorted(set((flat // cols).tolist()))
        else:
            s.undo()
            touched = range(rows)
        v.update_rows(s, touched)
        full = LayerScores.compute(s, layer, method)
        np.testing.assert_array_equal(v.values, full.values)
        np.testing.assert_array_equal(v.kept, full.kept)
        np.testing.assert_array_equal(v.counts, np.histogram(full.values[full.kept], v.edges)[0])
        assert v.counts.sum() == int(full.kept.sum())
        np.testing.assert_allclose(v.neurons, full.neurons, rtol=1e-6)
        assert v.version == s.masks.version


def test_a_restored_score_beyond_the_bins_widens_them():
    s = _session()
    s.prune_neurons("3", list(range(16))[:8])
    v = LayerScores.compute(s, "3", "magnitude")
    top = float(v.values.max())
    s.undo()
    v.update_rows(s, range(8))
    assert v.edges[-1] >= top and v.edges[-1] == float(v.values.max())
    np.testing.assert_array_equal(v.counts, np.histogram(v.values[v.kept], v.edges)[0])


def test_scores_match_the_session_and_below_matches_preview_below():
    s = _session()
    s.prune(0.3)
    v = LayerScores.compute(s, "3", "magnitude")
    np.testing.assert_array_equal(v.values, display.as_2d(s.scores("3").numpy()))
    t = float(np.quantile(v.values, 0.5))
    np.testing.assert_array_equal(v.below(t), display.as_2d(s.preview_below("3", t).numpy()))
    v.values[0, 0] = 123.0  # the view's own copy: the session's scores are untouched
    assert float(s.scores("3")[0, 0]) != 123.0
    s.prune_neurons("3", [0, 1])
    v = LayerScores.compute(s, "3", "magnitude")
    t = float(np.median(v.neurons))
    by_neuron = v.neurons_below(t, s.neuron_mask("3").numpy())
    np.testing.assert_array_equal(by_neuron, s.preview_below("3", t, granularity="neuron").numpy())
    assert by_neuron.any() and not by_neuron[:2].any()  # already pruned neurons are not previewed again


@pytest.mark.parametrize("shape,block", [((37, 53), (4, 5)), ((64, 64), (1, 4)), ((64, 64), (4, 1)), ((10, 7), (3, 3)), ((8, 8), (1, 1))])
def test_pooling_equals_the_plain_4d_reduction(shape, block):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(shape).astype(np.float32)
    m = rng.random(shape) > 0.8
    by, bx = block

    def ref(x, fill, fn):
        p = display._pad(x, by, bx, fill)
        return fn(p.reshape(p.shape[0] // by, by, p.shape[1] // bx, bx), axis=(1, 3))

    np.testing.assert_array_equal(display.pool_max(a, block), ref(a, -np.inf, np.max))
    np.testing.assert_array_equal(display.pool_any(m, block), ref(m, False, np.any).astype(np.float32))
    hi, lo = ref(a, 0.0, np.max), ref(a, 0.0, np.min)
    np.testing.assert_array_equal(display.pool_signed_max(a, block), np.where(hi >= -lo, hi, lo))
