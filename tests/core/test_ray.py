"""Analyses on a local Ray (started here with 2 CPUs) give exactly the local worker's results."""

import pytest

ray = pytest.importorskip("ray")

from pruneviz.core import analysis as an  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402

pytestmark = pytest.mark.slow  # starting Ray takes seconds; one start for the module


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def cnn():
    return Session.open("demo:cnn", data="demo:digits", device="cpu")


def test_sensitivity_and_sweep_on_ray_equal_local_exactly(cnn):
    cnn.prune_neurons("4", [0, 3])
    try:
        local = an.collect(cnn.sensitivity(levels=[0.3, 0.6, 0.9]))
        streamed = list(cnn.sensitivity(levels=[0.3, 0.6, 0.9], ray=True))
        remote = an.collect(cnn.sensitivity(levels=[0.3, 0.6, 0.9], ray=True))
        assert remote == local
        assert len(streamed) == 15 and {(p["layer"], p["level"]) for p in streamed} == {(n, v) for n in local["layers"] for v in local["levels"]}
        local = an.collect(an.sweeps(cnn, [0.2, 0.8], scopes=["layer", "global"], methods=["magnitude", "random"]))
        remote = an.collect(an.sweeps(cnn, [0.2, 0.8], scopes=["layer", "global"], methods=["magnitude", "random"], ray="local"))
        assert remote == local
    finally:
        cnn.undo()


def test_knockout_on_ray_equals_local_exactly(cnn):
    local = an.collect(cnn.knockout("8", methods=["magnitude", "taylor"]))
    remote = an.collect(cnn.knockout("8", methods=["magnitude", "taylor"], ray=True))
    assert remote == local and len(remote["neurons"]) == 32


def test_cli_ray_option_writes_the_local_result(tmp_path, capsys):
    import json

    from pruneviz.cli import main

    args = ["knockout", "demo:mlp", "--data", "demo:digits", "--layer", "4", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "local.json")]) == 0
    assert main([*args, "--ray", "local", "--out", str(tmp_path / "ray.json")]) == 0
    assert json.loads((tmp_path / "ray.json").read_text()) == json.loads((tmp_path / "local.json").read_text())
