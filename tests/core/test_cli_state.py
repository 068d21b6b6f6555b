"""The command line keeps no state from one command to the next in the same process (tests,
notebooks and the app's embedded runs call ``main`` many times)."""

import torch

from tests.core import models


def test_a_failed_commands_notices_are_not_printed_by_the_next_command(tmp_path, cli):
    sd = tmp_path / "mlp.pt"
    torch.save(models.mlp().state_dict(), sd)
    # opens the model (which records the notice "no example input given: …"), then refuses the layer pattern
    res = cli("prune", sd, "--arch", "tests.core.models:mlp", "--amount", "0.25", "--granularity", "neuron", "--layers", "no_such_layer*", "--out", tmp_path / "m.pt")
    assert res.code == 2 and "no example input given" not in res.err
    res = cli("inspect", "demo:mlp")
    assert res.code == 0 and "note:" not in res.err, res.err
    # the notice still belongs to a command of its own that succeeds
    res = cli("prune", sd, "--arch", "tests.core.models:mlp", "--amount", "0.25", "--granularity", "neuron", "--out", tmp_path / "m.pt")
    assert res.code == 0 and res.err.count("note: no example input given") == 1, res.err
