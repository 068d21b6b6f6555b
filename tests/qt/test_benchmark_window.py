"""The window benchmarks (tests/benchmarks/window.py) run end to end at small sizes; the figures
themselves come from running tests/benchmarks/run.py."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_window_benchmarks_run_through_the_real_window(qapp):
    """Small sizes: every figure is measured (median within its min and max), each click was
    undone, and the global prune's mask is the kthvalue mask."""
    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        import window
    finally:
        sys.path.pop(0)
    fig = window.big_window(True, n=256, repeat=3)
    fig.update(window.cnn_estimate(True, repeat=2))
    for key in window.GOALS:
        if key.startswith("window_"):
            assert fig[f"{key}_min"] <= fig[key] <= fig[f"{key}_max"], key
    assert fig["window_switch_layer_ms_4096_min"] <= fig["window_switch_layer_ms_4096"]
    assert fig["window_pruned_after_clicks"] == 0
    g = window.global_vs_kthvalue(True, dims=[256, 512, 256])
    assert g["global_kthvalue_mask_agreement"] > 0.9999  # only ties at the threshold may differ
    assert g["global_magnitude_vs_kthvalue_ratio"] > 0


def test_undo_memory_is_measured_from_what_the_history_holds():
    import torch

    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        import window
    finally:
        sys.path.pop(0)
    fig = window.undo_memory(True)
    # at least the int32 payload of every changed index, plus object overhead
    assert 4.0 < fig["undo_bytes_per_changed_weight"] < 9.0
    # a history whose index tensor is a view into a big buffer is charged the whole buffer
    from pruneviz.core.history import Flip, History, Step

    h = History()
    big = torch.arange(1000, dtype=torch.int32)
    h.push(Step("view", [Flip("elem", "x", big[:10])]))
    assert window.history_bytes_held(h) >= 4000
