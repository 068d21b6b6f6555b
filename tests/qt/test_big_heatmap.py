"""A big layer in the heatmap view: max |w| per block on a sequential map with fitted levels, the
zoomed-in detail on the same scale; a small layer keeps signed weights and symmetric levels."""

from __future__ import annotations

import numpy as np

from pruneviz.core import display


import pytest


@pytest.fixture
def hv(qtbot):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.heatmap_view import HeatmapView

    make_app()
    view = HeatmapView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    yield view
    view._repool.stop()  # standalone (no window): no re-pool after the test closes it
    view.detail._timer.stop()


def test_big_layer_shows_fitted_magnitudes(qtbot, hv, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4096, 8192)).astype(np.float32)
    w[1024:2048, 2048:4096] *= 1.5  # planted: a region of larger weights
    hv.set_layer(w, np.zeros(w.shape, bool))
    by, bx = hv.block
    assert by * bx >= display.MAGNITUDE_FROM and hv.magnitude
    lo, hi = hv.levels
    assert 0 < lo < hi and tuple(hv.image.levels) == (lo, hi)
    assert hv.bar.axis.labelText == "max |weight| per block" and hv.bar.colorMap() is hv.cmap_importance
    img = hv.image.image
    np.testing.assert_array_equal(img, hv.layer_image.weights)
    pos = np.clip((img - lo) / (hi - lo), 0, 1)
    r0, r1, c0, c1 = 1024 // by + 1, 2048 // by - 1, 2048 // bx + 1, 4096 // bx - 1
    inside = pos[r0:r1, c0:c1].mean()
    outside = pos[: 1024 // by].mean()
    assert inside - outside > 0.4  # the planted region is a different colour
    assert hv.weight_levels == (-hi, hi)  # signed views (kernels) get a symmetric scale of the same size
    assert hv.grab().save(str(tmp_path / "big.png"))
    # zoomed in: exact |w| on the same levels
    hv.vb.setRange(xRange=(3000, 3064), yRange=(1500, 1564), padding=0)
    qtbot.waitUntil(lambda: hv.detail.active, timeout=3_000)
    assert hv.detail.block == (1, 1)
    np.testing.assert_array_equal(hv.detail.image.image, np.abs(w[1500:1564, 3000:3064]))
    assert tuple(hv.detail.image.levels) == (lo, hi)


def test_small_layer_keeps_signed_weights(hv):
    w = np.random.default_rng(1).standard_normal((64, 300)).astype(np.float32)
    hv.set_layer(w, np.zeros(w.shape, bool))
    assert not hv.magnitude
    assert hv.levels == display.symmetric_levels(w) == hv.weight_levels
    assert hv.bar.axis.labelText == "weight" and hv.bar.colorMap() is hv.cmap_weights
