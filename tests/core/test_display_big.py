"""Big layers in the heatmap: max |w| per block with levels fitted to the pooled values, small
layers as before, and pooling by row chunks that keeps memory bounded."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pruneviz.core import display


def _brute_abs_max(a, block):
    by, bx = block
    H, W = -(-a.shape[0] // by), -(-a.shape[1] // bx)
    out = np.zeros((H, W), np.float32)
    for i in range(H):
        for j in range(W):
            out[i, j] = np.abs(a[i * by : (i + 1) * by, j * bx : (j + 1) * bx]).max()
    return out


@pytest.mark.parametrize("shape,block", [((37, 91), (4, 7)), ((64, 64), (8, 8)), ((5, 3), (1, 1)), ((33, 10), (5, 1))])
def test_pool_abs_max_against_a_loop(shape, block):
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(display.pool_abs_max(a, block), _brute_abs_max(a, block))
    # by row chunks (tiny chunks: many of them, the last one short): the same image
    for pool in (display.pool_abs_max, display.pool_signed_max):
        np.testing.assert_array_equal(display.pool_rows_chunked(pool, a, block, chunk_bytes=64), pool(a, block))
    m = a < 0
    np.testing.assert_array_equal(display.pool_rows_chunked(display.pool_any, m, block, chunk_bytes=64), display.pool_any(m, block))


def _colour_position(img, levels):
    lo, hi = levels
    return np.clip((img - lo) / (hi - lo), 0, 1)


@pytest.mark.slow  # pools a large layer; quick: the other display tests
def test_planted_structure_is_visible_in_a_pooled_layer():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2048, 8192)).astype(np.float32)
    w[512:1024, 2048:4096] *= 1.3  # a region of 30% larger weights
    li = display.LayerImage(w, np.zeros(w.shape, bool), (256, 256))
    assert li.block == (8, 32) and li.magnitude
    np.testing.assert_array_equal(li.weights, _brute_abs_max(w, li.block))
    lo, hi = li.levels()
    assert 0 < lo < hi and (hi - lo) > 0.3 * hi  # a range fitted to the values, not [0, max]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(li.weights, [1, 99.5])))
    pos = _colour_position(li.weights, (lo, hi))
    planted = pos[64:128, 64:128].mean()
    rest = np.concatenate([pos[:64].ravel(), pos[128:].ravel()]).mean()
    assert planted - rest > 0.3  # the region is a clearly different colour
    # before: signed max with levels symmetric around 0; both regions sit near the map's ends
    old = display.pool_signed_max(w, li.block)
    m = display.symmetric_levels(old)[1]
    old_pos = np.abs(old) / m
    old_gap = old_pos[64:128, 64:128].mean() - np.concatenate([old_pos[:64].ravel(), old_pos[128:].ravel()]).mean()
    assert planted - rest > 1.5 * old_gap
    # an edit re-pools one block row the same way
    w[600:608] = 0
    li.update(600 // 8, w[600:608], np.ones((8, 8192), bool))
    np.testing.assert_array_equal(li.weights[75], np.zeros(256, np.float32))
    assert li.pruned[75].all()


def test_small_layers_keep_signed_weights_and_symmetric_levels():
    w = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)
    li = display.LayerImage(w, np.zeros(w.shape, bool), (1024, 1024))
    assert li.block == (1, 1) and not li.magnitude
    np.testing.assert_array_equal(li.weights, w)
    assert li.levels() == display.symmetric_levels(w)
    # fewer than MAGNITUDE_FROM cells per block: still signed
    li = display.LayerImage(w, np.zeros(w.shape, bool), (10, 15))
    assert li.block == (7, 9) and not li.magnitude and li.levels() == display.symmetric_levels(li.weights)


def test_robust_levels_ignore_outliers_and_never_collapse():
    a = np.linspace(1, 2, 10_000, dtype=np.float32)
    a[:5] = 1000
    lo, hi = display.robust_levels(a)
    assert hi < 3
    assert display.robust_levels(np.full((4, 4), 2.0, np.float32)) == (2.0, 4.0)
    assert display.robust_levels(np.zeros((0, 3), np.float32)) == (0.0, 1.0)


@pytest.mark.slow  # pools a 411 MB layer to measure peak memory; quick: test_planted_structure_is_visible_in_a_pooled_layer
def test_a_4096x25088_layer_pools_within_bounded_memory():
    rng = np.random.default_rng(2)
    w = np.tile(rng.standard_normal((64, 25088)).astype(np.float32), (64, 1))  # 411 MB, cheap to make
    w[1024:1088] *= 2
    pruned = np.zeros(w.shape, bool)
    tracemalloc.start()
    try:
        li = display.LayerImage(w, pruned, (1000, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert li.magnitude and li.block == (5, 26) and li.weights.shape == (820, 965)
    assert peak < 3 * display.CHUNK_BYTES, peak  # the layer is 411 MB; no full-size temporary
    for i, j in [(0, 0), (204, 500), (819, 964), (210, 17)]:  # oracle on sampled blocks
        blk = w[i * 5 : (i + 1) * 5, j * 26 : (j + 1) * 26]
        assert li.weights[i, j] == np.abs(blk).max()
    lo, hi = li.levels()
    pos = _colour_position(li.weights, (lo, hi))
    assert pos[205:217].mean() - np.concatenate([pos[:204], pos[218:]]).mean() > 0.5  # the doubled rows stand out
