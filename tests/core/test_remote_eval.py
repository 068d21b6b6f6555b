"""Evaluation on a Ray replica (issue 19): the replica's figures are the local ones, a replica that
missed an edit is caught and rebuilt from the journal, and a replica that dies mid-evaluation
leaves the session usable, evaluating here.

The protocol tests run a :class:`Replica` in this process (no Ray); the tests marked slow start
one local Ray instance for the module, as ``tests/core/test_ray.py`` does."""

import math
import os
import random
import signal
import threading

import pytest

from pruneviz.core import evaluate as ev
from pruneviz.core.errors import PrunevizError
from pruneviz.core.remote_eval import detach, parse_address, replica_spec
from pruneviz.core.remote_replica import Checksum, Replica, decode, encode, fingerprint
from pruneviz.core.session import Session


def _figures(r: ev.EvalResult):
    return (r.accuracy, r.loss, r.correct, r.samples, [None if math.isnan(v) else v for v in r.per_class])


def _journal(s):
    return [f for node in s.history.nodes[: s.history.index] for f in node.step.flips]


# ------------------------------------------------------------------- the protocol, no Ray
@pytest.mark.slow  # many replica round trips; quick: test_a_neuron_edit_ships_within_64_bytes_plus_4_per_flipped_index
def test_replica_catches_a_missed_edit_by_the_checksum_and_a_lost_message_by_the_sequence():
    s = Session.open("demo:cnn", data="demo:digits", device="cpu")
    rep = Replica(replica_spec(s))
    no = {layer.name: i for i, layer in enumerate(s.layers)}
    check = Checksum(s.masks)
    s.prune_neurons("4", list(range(0, 32, 2)))
    s.prune(0.6, scope="global")
    step_a, step_b = s.history.steps
    cs = check.refresh((f.store, f.layer) for f in [*step_a.flips, *step_b.flips])
    assert s.evaluate().accuracy != Session.open("demo:cnn", data="demo:digits", device="cpu").evaluate().accuracy  # the edits matter
    # one message with the first edit lost: the sequence number is right, the masks are not
    assert rep.sync(encode(1, cs, step_b.flips, no)) == ("behind", -1)
    assert rep.sync(encode(2, cs, [], no))[0] == "behind"  # refused until rebuilt
    assert rep.rebuild(encode(2, cs, _journal(s), no)) == ("ok", 2)
    assert rep.checksum.value == Checksum(s.masks).value
    assert _figures(rep.session.evaluate()) == _figures(s.evaluate())
    # a message after a lost one: caught by the sequence number, before anything is applied
    s.undo()
    cs = check.refresh((f.store, f.layer) for f in step_b.flips)
    assert rep.sync(encode(4, cs, list(reversed(step_b.flips)), no)) == ("behind", 2)
    assert rep.sync(encode(3, cs, list(reversed(step_b.flips)), no)) == ("ok", 3)
    assert _figures(rep.session.evaluate()) == _figures(s.evaluate())


def test_a_neuron_edit_ships_within_64_bytes_plus_4_per_flipped_index():
    s = Session.open("demo:cnn", data="demo:digits", device="cpu")
    no = {layer.name: i for i, layer in enumerate(s.layers)}
    for edit in (lambda: s.prune_neurons("8", [3]), lambda: s.prune_weights("12", list(range(0, 500, 7))), s.undo):
        edit()
        flips = s.history.steps[-1].flips
        payload = encode(123456, 2**64 - 1, flips, no)
        flipped = sum(f.idx.numel() for f in flips)
        assert flipped and len(payload) <= 64 + 4 * flipped, (len(payload), flipped)
        seq, cs, back = decode(payload, list(no))
        assert (seq, cs) == (123456, 2**64 - 1) and [(f.store, f.layer, f.idx.tolist()) for f in back] == [(f.store, f.layer, f.idx.tolist()) for f in flips]


def test_ray_client_address_without_the_client_installed_is_one_line(monkeypatch):
    import importlib.util

    from pruneviz.core.remote_eval import check_client

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(PrunevizError, match=r"pip install 'ray\[client\]'"):
        check_client("ray://gpu-box:10001")
    check_client("local")  # a local instance needs no client


def test_weights_fingerprint_tells_another_file_from_the_same_weights():
    state = Session.open("demo:cnn", device="cpu").model.state_dict()
    same = {k: v.clone() for k, v in state.items()}
    other = {k: v.clone() for k, v in state.items()}
    other["12.weight"].view(-1)[7] += 1e-6
    assert fingerprint(same) == fingerprint(state) != fingerprint(other)


@pytest.mark.parametrize("text", ["", "remote", "ray://", "ray://host", "ray://:10001", "10.0.0.5:6379"])
def test_a_bad_eval_on_address_is_one_line(text):
    with pytest.raises(PrunevizError, match="--eval-on"):
        parse_address(text)


def test_cli_refuses_bad_remote_options_in_one_line(capsys, monkeypatch):
    from pruneviz.cli import main

    args = ["eval", "demo:mlp", "--data", "demo:digits", "--device", "cpu"]
    assert main([*args, "--eval-on", "gpu-box"]) == 2
    assert main([*args, "--remote-data", "/data/digits.npz"]) == 2
    assert main([*args, "--remote-model", "/models/mlp.pt"]) == 2
    assert main(["gui", "demo:mlp", "--eval-on", "gpu-box", "--screenshot", "x.png"]) == 2  # before any window
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    assert main([*args, "--eval-on", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("pruneviz: error: ") for line in err)
    assert "--eval-on" in err[0] and "--remote-data needs --eval-on" in err[1] and "--remote-model needs --eval-on" in err[2]
    assert "--eval-on" in err[3] and "pip install 'pruneviz[ray]'" in err[4]


# ------------------------------------------------------------------- on a local Ray instance
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_replica_equals_local_after_200_random_edits_undos_and_plan_switches(local_ray):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    assert s.evaluate().device == "cpu (Ray replica)"
    rng = random.Random(19)
    layers = [layer for layer in s.layers if not layer.is_output]
    compared = 0
    for k in range(200):
        op = rng.random()
        if op < 0.3:
            layer = rng.choice(layers)
            s.prune_weights(layer.name, rng.sample(range(layer.numel), rng.randint(1, 40)))
        elif op < 0.45:
            layer = rng.choice(layers)
            kept = s.neuron_mask(layer.name).nonzero().flatten().tolist()
            if len(kept) > 2:
                s.prune_neurons(layer.name, rng.sample(kept, 1))
        elif op < 0.5:
            layer = rng.choice(layers)
            gone = (~s.neuron_mask(layer.name)).nonzero().flatten().tolist()
            if gone:
                s.restore_neurons(layer.name, gone[:1])
        elif op < 0.75:
            s.undo()
        elif op < 0.85:
            s.redo()
        else:
            plans = [p["name"] for p in s.plans() if not p["current"]]
            if plans:
                s.switch_plan(rng.choice(plans))
        if k % 25 == 24:
            if k == 99:
                s.batch_size = 64  # another batching: shipped with the request
            assert _figures(s.evaluate()) == _figures(local.evaluate()), k
            compared += 1
    assert compared == 8 and len(s.plans()) > 1 and s.history.index > 0
    assert remote.resyncs == 0 and remote.down is None and not s.notices
    info = local_ray.get(remote.actor.info.remote())
    assert (info["seq"], info["checksum"]) == (remote.seq, Checksum(s.masks).value)
    detach(s)  # evaluation here again; the replica ends
    assert s.evaluate().device == "cpu" and remote.actor is None


class _LoseFirstFlip:
    """The replica's handle, except that the next request loses the flips of its first layer."""

    def __init__(self, actor, layers):
        self.actor, self.layers, self.lost = actor, layers, 0

    def __getattr__(self, name):
        return getattr(self.actor, name)

    @property
    def ask(self):
        outer = self

        class Ask:
            @staticmethod
            def remote(payload, *args):
                if not outer.lost:
                    seq, cs, flips = decode(payload, outer.layers)
                    payload = encode(seq, cs, flips[1:], {n: i for i, n in enumerate(outer.layers)})
                    outer.lost = len(flips) - 1
                return outer.actor.ask.remote(payload, *args)

        return Ask


@pytest.mark.slow
def test_checksum_catches_a_replica_that_missed_an_edit_and_the_session_resyncs(local_ray):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    s.evaluate()
    real = remote.actor
    remote.actor = _LoseFirstFlip(real, [layer.name for layer in s.layers])
    s.prune(0.7, scope="global")  # one flip per layer: the replica gets all but the first
    s.prune_weights("12", list(range(0, 2000, 3)))
    result = s.evaluate()
    assert remote.actor.lost and remote.resyncs == 1
    assert _figures(result) == _figures(local.evaluate()) and result.device == "cpu (Ray replica)"
    remote.actor = real
    info = local_ray.get(real.info.remote())
    assert info["checksum"] == Checksum(s.masks).value and info["seq"] == remote.seq
    # cancelling: the generator ends without a result and the replica stops at its next batch
    s.batch_size = 1
    cancel = threading.Event()
    gen = s.evaluate_iter(cancel=cancel)
    assert isinstance(next(gen), ev.Progress)
    cancel.set()
    assert not any(isinstance(item, ev.EvalResult) for item in gen)
    items, done = local_ray.get(real.poll.remote(remote.eval_id, 30.0))  # the cancelled one
    assert done and not any(isinstance(item, ev.EvalResult) for item in items)
    # new data is shipped once; a history that changed weights is evaluated here, with a notice
    s.batch_size = 256
    s.set_data("demo:digits-train")
    result = s.evaluate()
    assert result.device == "cpu (Ray replica)" and result.samples == 1437 and _figures(result) == _figures(local.evaluate())
    s.reinitialize(seed=3)
    here = s.evaluate()
    assert "Ray replica" not in here.device and _figures(here) == _figures(local.evaluate())
    assert len([n for n in s.notices if "changed weights" in n]) == 1 and remote.down is None
    s.undo()
    assert s.evaluate().device == "cpu (Ray replica)" and remote.resyncs == 1
    detach(s)


@pytest.mark.slow
def test_replica_killed_mid_evaluation_falls_back_here_and_reconnect_replays_the_journal(local_ray):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    s.prune_neurons("8", [1, 2, 3])
    s.batch_size = 1  # a long evaluation: 360 batches
    old_pid = remote.replica_info["pid"]
    gen = s.evaluate_iter(cancel=threading.Event())
    first = next(gen)
    assert isinstance(first, ev.Progress) and first.done < first.total
    os.kill(old_pid, signal.SIGKILL)  # the replica's machine goes away
    items = list(gen)
    result = items[-1]
    assert isinstance(result, ev.EvalResult) and "Ray replica" not in result.device
    assert [n for n in s.notices if "is gone" in n] == [s.notices[-1]] and remote.down
    s.batch_size = 256
    full = local.evaluate()  # the same figures, summed in other batches: the loss to rounding
    assert (result.accuracy, result.correct) == (full.accuracy, full.correct) and math.isclose(result.loss, full.loss, rel_tol=1e-6)
    # the session goes on here: edits, undo, evaluation; no second message
    s.prune(0.5, scope="global")
    s.undo()
    s.prune_weights("4", [0, 5, 9])
    assert _figures(s.evaluate()) == _figures(local.evaluate()) and len([n for n in s.notices if "is gone" in n]) == 1
    # a new replica gets the whole journal, checked against the local masks, before it answers
    info = remote.reconnect()
    assert info["pid"] != old_pid and remote.down is None and remote.resyncs == 1
    assert local_ray.get(remote.actor.info.remote())["checksum"] == Checksum(s.masks).value
    again = s.evaluate()
    assert again.device == "cpu (Ray replica)" and _figures(again) == _figures(local.evaluate())
    detach(s)


@pytest.mark.slow
def test_cli_eval_on_local_prints_the_local_figures(local_ray, capsys):
    import json

    from pruneviz.cli import main

    args = ["eval", "demo:mlp", "--data", "demo:digits", "--device", "cpu", "--json"]
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)
    # the model and the data read on the cluster (no weights shipped: their fingerprint is checked)
    assert main([*args, "--eval-on", "local", "--remote-data", "demo:digits", "--remote-model", "demo:mlp"]) == 0
    there = json.loads(capsys.readouterr().out)
    assert there.pop("device") == "cpu (Ray replica)" and here.pop("device") == "cpu" and there == here
