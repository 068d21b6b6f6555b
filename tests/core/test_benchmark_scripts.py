"""The benchmark scripts run end to end (tiny sizes, on the CPU): figures come from running them
for real (tests/benchmarks/run.py, gpu.py on a CUDA machine); here we only check they work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a benchmark smoke run in a subprocess (ResNet-18 sized)
def test_gpu_script_code_paths_on_cpu():
    res = subprocess.run([sys.executable, str(ROOT / "tests/benchmarks/gpu.py"), "--cpu-smoke"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    fig = json.loads(res.stdout.strip().splitlines()[-1])
    assert fig["resnet18_params"] > 11_000_000  # ResNet-18 sized
    assert fig["resnet18_incremental_exact"] is True
    assert fig["finetune_undo_bytes_per_param"] <= 4.5 and fig["finetune_overhead_ratio"] > 0
    assert fig["compensate_accuracy_gain_pp"] >= 0
    assert fig["nm24_semi_structured"].startswith("not measured")  # 2:4 speed-up: CUDA only
    assert fig["window_click_to_exact_ms_resnet"] > 0 and fig["window_click_to_exact_started_from_a_cut"] is True


@pytest.mark.slow  # a benchmark smoke run
def test_run_script_pieces_on_small_inputs():
    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        import run
    finally:
        sys.path.pop(0)
    fig = run.global_vs_torch(True)
    assert fig["global_mask_differences"] <= fig["global_ties_at_threshold"]


@pytest.mark.slow
def test_analysis_benchmark_runs_and_its_cached_sweep_is_exact():
    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        import analysis
    finally:
        sys.path.pop(0)
    fig = analysis.analysis_figures(True, ray=False)
    assert fig["sensitivity_incremental_exact"] is True
    assert 0 < fig["sensitivity_incremental_ratio"] and fig["knockout_ms_per_neuron_mlp"] > 0


@pytest.mark.slow
def test_incremental_graph_benchmark_runs_exact_and_within_its_budget():
    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        import incremental
    finally:
        sys.path.pop(0)
    fig = incremental.figures(True)
    assert fig["incremental_graph_exact"] is True
    assert 0 < fig["incremental_cache_mb"] <= fig["incremental_cache_budget_mb"]
    assert 0 < fig["incremental_resnet_last_stage_ratio"] and 0 < fig["incremental_vit_last_block_ratio"]
