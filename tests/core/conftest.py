"""Shared helpers of the core tests: one way to run the command line in-process, and read-only
demo sessions opened once per test run.

``cli`` runs ``pruneviz.cli.main`` in this process (no subprocess: a subprocess start costs
seconds of imports; the few tests that need a real process say so and are marked slow). Every
run checks the CLI's promise that no traceback reaches the terminal (unless ``--debug``);
``cli.strict(...)`` also checks that a refusal is exactly one ``pruneviz: error: …`` line.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


class CliRunner:
    """``cli("inspect", "demo:mlp")`` -> ``CliResult(code, out, err)``; arguments go through ``str``."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *argv) -> CliResult:
        from pruneviz.cli import main

        args = [str(a) for a in argv]
        self.capsys.readouterr()  # what an earlier step printed is not this command's
        code = main(args)
        out, err = self.capsys.readouterr()
        if "--debug" not in args:
            assert "Traceback" not in err and "Traceback" not in out, (args, err)
        return CliResult(code, out, err)

    def strict(self, *argv) -> CliResult:
        """Run and check the exit contract: 0, or 2 with exactly one ``pruneviz: error: …`` line."""
        res = self(*argv)
        assert res.code in (0, 2), (argv, res.code, res.err)
        if res.code == 2:
            lines = res.err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("pruneviz: error: "), res.err
        return res


@pytest.fixture
def cli(capsys) -> CliRunner:
    return CliRunner(capsys)


@pytest.fixture(scope="session")
def _demo_session_cache() -> dict:
    return {}


@pytest.fixture
def demo_session(_demo_session_cache):
    """``demo_session("mlp")`` -> a Session on ``demo:<name>`` with ``demo:digits``, on the CPU,
    opened once per test run and shared (its activation cache is primed once, which the analyses
    reuse). Read-only: a test that edits it fails at its teardown; a test that edits opens its own."""
    from pruneviz.core.session import Session

    used = []

    def get(name: str = "mlp"):
        if name not in _demo_session_cache:
            _demo_session_cache[name] = Session.open(f"demo:{name}", data="demo:digits", device="cpu")
        s = _demo_session_cache[name]
        used.append((name, s, s.masks.version, s.history.index))
        return s

    yield get
    for name, s, version, index in used:
        assert (s.masks.version, s.history.index) == (version, index), f"the test edited the shared demo:{name} session: open one of its own"


# Single cases of parametrized core tests that leave the quick loop (``pytest -m "not slow"``),
# each with the case of the same test that stays in it; the full run (.ci/run) runs them all.
# Whole tests are marked with ``@pytest.mark.slow`` beside their definition instead.
SLOW_CASES = {
    "test_readme.py::test_console_example": (  # README examples that train, fine-tune or run analyses over every layer
        "pruneviz prune demo:mlp --amount 0.9 --data demo:digits --finetune",
        "pruneviz prune demo:cnn --data demo:digits --amount 0.6 --scope sensitivity",
        "pruneviz train ",
        "pruneviz knockout ",
        "pruneviz sweep ",
        "pruneviz sensitivity ",
        "pruneviz prune demo:cnn --amount 0.2 --granularity neuron --data demo:digits --shrink --format pt2",
    ),  # quick: the inspect, score, prune and loop examples
    "test_training.py::test_finetune_keeps_pruned_entries_exactly_zero": ("adamw", "sgd"),  # quick: adam, the default
    "test_incremental.py::test_random_edits_undo_and_redo_equal_a_full_pass": ("residual", "dense", "depthwise", "vit_separate", "vit_fused", "conv1d", "mha"),  # quick: grouped
    "test_compensate.py::test_exact_is_the_per_row_least_squares_optimum": ("linear (demo:mlp)", "depthwise-separable block", "grouped conv2d"),  # quick: conv2d, both Conv1D layouts
    "test_plan_curves.py::test_the_session_and_the_copy_end_as_they_started": ("done", "error"),  # quick: cancel, close
    "test_allocation.py::test_allocation_hits_target_and_never_empties_a_layer": ("0.3",),  # quick: 0.6, 0.8
    "test_compensate_fast.py::test_the_next_stage_starts_from_the_cached_outputs_of_the_last": ("exact",),  # quick: sparsegpt
    "test_bad_models.py::test_zero_size_layers_are_skipped": ("zero_branch",),  # quick: zero_seq
    "test_pruning_oracles.py::test_shrunk_model_matches_masked": ("resnet", "cnn_seq"),  # quick: mlp
    "test_zoo_heads.py::test_shrunk_heads_equal_the_masked_model": ("vit_separate",),  # quick: vit_fused
    "test_demo.py::test_export_writes_files_plain_torch_opens": ("cnn",),  # quick: mlp
    "test_torchscript_guard.py::test_benign_library_modules_open_without_trust": ("transformer",),  # quick: the other library modules
    "test_model_io.py::test_pt2_varied_exports_open": ("cond",),  # torch.export of a control-flow model; quick: the other exports
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent.name != "core" or item.path.parent.parent.name != "tests":
            continue
        cases = SLOW_CASES.get(f"{item.path.name}::{item.originalname}")
        param = item.callspec.id if cases and hasattr(item, "callspec") else None
        if param is not None and any(param == case or param.startswith(case) for case in cases):
            item.add_marker(pytest.mark.slow)
