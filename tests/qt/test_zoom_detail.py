"""Zooming into a big layer: the region in view is re-pooled finer (down to exact weights), pruned
cells stay marked at every zoom, edits reach the detail, and zooming out returns to the
whole-layer image."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF

from pruneviz.core import display
from pruneviz.qt.heatmap_detail import detail_region
from tests.qt.test_views import _big_session

N = 2048


def test_detail_region_only_when_finer_and_aligned_to_its_blocks():
    shape, target, block = (N, N), (600, 800), (4, 3)
    assert detail_region(((0, N), (0, N)), shape, target, block) is None  # whole layer: as drawn
    assert detail_region(((1000, 1064), (500, 564)), shape, target, block) == (500, 564, 1000, 1064, (1, 1))
    assert detail_region(((999.9999999, 1064.0000001), (500, 564)), shape, target, block)[:4] == (500, 564, 1000, 1064)
    r0, r1, c0, c1, (by, bx) = detail_region(((101, 1001), (301, 1101)), shape, target, block)
    assert (by, bx) == (2, 2) and r0 % by == 0 and c0 % bx == 0 and (r0, c0) == (300, 100)
    assert r1 >= 1101 and c1 >= 1001 and (r1 - r0) % by == 0
    assert detail_region(((2000, 2100), (-50, 40)), shape, target, block) == (0, 40, 2000, N, (1, 1))  # clipped
    assert detail_region(((N + 10, N + 20), (0, 10)), shape, target, block) is None  # outside the layer
    assert detail_region(((0, 64), (0, 64)), (64, 64), target, (1, 1)) is None  # small layers: already exact


def _window(qtbot):
    from pruneviz.qt.main_window import MainWindow

    w = MainWindow(_big_session(N, N), restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    hv = w.heatmap
    qtbot.waitUntil(lambda: hv.image_shape[0] <= hv.target_shape()[0] + 1 and not hv._repool.isActive(), timeout=5_000)
    return w, hv


def _item_rect(item) -> QRectF:
    return item.mapRectToParent(item.boundingRect())


def test_zoom_in_shows_exact_weights_then_zoom_out_restores_pooled_image(qtbot):
    w, hv = _window(qtbot)
    s = w.session
    s.prune_rect("0", (510, 514), (1010, 1030))
    s.prune_weights("0", [520 * N + 1040])  # one lone pruned weight in the region
    assert hv.block[0] > 1 and hv.block[1] > 1 and not hv.detail.active
    weights = s.weight("0").numpy()
    pruned = ~s.mask("0").numpy()

    hv.vb.setRange(xRange=(1000, 1064), yRange=(500, 564), padding=0)
    qtbot.waitUntil(lambda: hv.detail.active, timeout=2_000)  # after the ~100 ms debounce
    assert hv.detail.region == (500, 564, 1000, 1064) and hv.detail.block == (1, 1)
    img, pimg = hv.detail.image.image, hv.detail.pruned.image
    assert img.shape == (64, 64) and pimg.shape == (64, 64)  # one cell per weight
    np.testing.assert_array_equal(img, weights[500:564, 1000:1064])
    np.testing.assert_array_equal(pimg.astype(bool), pruned[500:564, 1000:1064])
    assert pimg[20, 40] == 1 and pimg.sum() == 4 * 20 + 1
    assert _item_rect(hv.detail.image) == QRectF(1000, 500, 64, 64) == _item_rect(hv.detail.pruned)
    assert hv.detail.image.isVisible() and hv.detail.image.zValue() > hv.pruned.zValue()
    assert hv.detail.image.levels is not None and tuple(hv.detail.image.levels) == tuple(hv.levels)  # same colours

    # an edit while zoomed in reaches the detail (rows re-read through Session.view_rows)
    w.editing.select_neurons([530])
    w.editing.prune_selected()
    assert hv.detail.pruned.image[30].all()
    np.testing.assert_array_equal(hv.detail.image.image, s.weight("0").numpy()[500:564, 1000:1064])

    hv.vb.setRange(xRange=(0, N), yRange=(0, N), padding=0.01)
    qtbot.waitUntil(lambda: not hv.detail.active, timeout=2_000)
    assert not hv.detail.image.isVisible() and not hv.detail.pruned.isVisible()
    weights = s.weight("0").numpy()
    pruned = ~s.mask("0").numpy()
    np.testing.assert_array_equal(hv.image.image, display.pool_signed_max(weights, hv.block))
    np.testing.assert_array_equal(hv.pruned.image, display.pool_any(pruned, hv.block))


def test_pruned_weight_stays_marked_at_an_intermediate_zoom(qtbot):
    w, hv = _window(qtbot)
    s = w.session
    r, c = 777, 555
    s.prune_weights("0", [r * N + c])
    th, tw = hv.target_shape()
    side = int(math.sqrt(1.5 * th * tw))  # under 2 cells per pixel, more than one cell per pixel
    hv.vb.setRange(xRange=(c - side // 2, c + side // 2), yRange=(r - side // 2, r + side // 2), padding=0)
    qtbot.waitUntil(lambda: hv.detail.active, timeout=2_000)
    r0, r1, c0, c1 = hv.detail.region
    by, bx = hv.detail.block
    assert (by, bx) != (1, 1) and by <= hv.block[0] and bx <= hv.block[1] and (by, bx) != hv.block
    pimg = hv.detail.pruned.image
    assert pimg[(r - r0) // by, (c - c0) // bx] == 1 and pimg.sum() == 1  # max-|w| / any-pruned, never averaged
    assert pimg.shape == (math.ceil((r1 - r0) / by), math.ceil((c1 - c0) / bx))


def test_threshold_preview_is_drawn_in_the_detail(qtbot):
    w, hv = _window(qtbot)
    hv.vb.setRange(xRange=(0, 32), yRange=(0, 32), padding=0)
    qtbot.waitUntil(lambda: hv.detail.active, timeout=2_000)
    w.editing.threshold.setValue(float(w.editing.threshold.maximum()) * 0.2)
    src, _ = hv.preview_source
    r0, r1, c0, c1 = hv.detail.region
    np.testing.assert_array_equal(hv.detail.preview.image.astype(bool), display.as_2d(src)[r0:r1, c0:c1])
    assert hv.detail.preview.isVisible() and hv.detail.preview.zValue() > hv.detail.pruned.zValue()
    w.editing.threshold.setValue(0.0)
    assert not hv.detail.preview.isVisible()
