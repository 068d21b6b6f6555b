"""Evaluation on a Ray replica (issue 19): the replica's figures are the local ones, a replica that
missed an edit is caught and rebuilt from the journal, and a replica that dies mid-evaluation
leaves the session usable, evaluating here.

The protocol tests run a :class:`Replica` in this process (no Ray); the tests marked slow use
``local``'s private Ray head (``ray start --head`` in processes of its own, joined through Ray's
client: :mod:`pruneviz.core.ray_local`), one for the module; the last one kills it mid-evaluation
and this process goes on, evaluating here."""

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
from tests.core.remote_cases import LoseFirstFlip, figures, for_seconds, kill_mid_evaluation, random_edit


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
    assert figures(rep.session.evaluate()) == figures(s.evaluate())
    # a message after a lost one: caught by the sequence number, before anything is applied
    s.undo()
    cs = check.refresh((f.store, f.layer) for f in step_b.flips)
    assert rep.sync(encode(4, cs, list(reversed(step_b.flips)), no)) == ("behind", 2)
    assert rep.sync(encode(3, cs, list(reversed(step_b.flips)), no)) == ("ok", 3)
    assert figures(rep.session.evaluate()) == figures(s.evaluate())


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
    with pytest.raises(PrunevizError, match="cannot evaluate on"):
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
@pytest.mark.slow
def test_local_without_rays_client_runs_ray_in_this_process_and_says_so_once(monkeypatch):
    """Before the module's private head (below) starts: ``local`` without ``grpc`` is a Ray
    inside this process, with one notice."""
    import importlib.util

    from pruneviz.core import ray_local

    ray = pytest.importorskip("ray")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    if ray.is_initialized():
        ray.shutdown()
    try:
        s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
        remote, local = s.evaluation.remote, s.evaluation.local
        assert remote.head is None and ray_local.current() is None and not ray.util.client.ray.is_connected() and ray.is_initialized()
        s.prune_neurons("8", [1, 2])
        result = s.evaluate()
        assert result.device == "cpu (Ray replica)" and figures(result) == figures(local.evaluate())
        s.evaluate()
        assert len(s.notices) == 1 and "Ray's client is not installed" in s.notices[0] and "pip install 'ray[client]'" in s.notices[0]
        detach(s)
    finally:
        ray.shutdown()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    from pruneviz.core import ray_local

    ray = pytest.importorskip("ray")
    pytest.importorskip("grpc")  # Ray's client (ray[client]): without it ``local`` runs Ray in this process
    if not os.path.isdir("/proc/self"):
        pytest.skip("ends the head's processes by their session (Linux /proc)")
    if ray.is_initialized():
        ray.shutdown()
    head, _ = ray_local.acquire()  # held for the module: each test's detach lets go of its own hold only
    yield ray
    ray_local.release()  # the CLI's session, run in this process, may still hold the head:
    ray_local.shutdown()  # what the process's exit does: the client disconnects and the head stops
    assert ray_local.current() is None and not head.processes() and not ray.is_initialized()


@pytest.mark.slow
def test_replica_equals_local_after_200_random_edits_undos_and_plan_switches(local_ray):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    assert s.evaluate().device == "cpu (Ray replica)"
    rng = random.Random(19)
    compared = 0
    for k in range(200):
        random_edit(s, rng)
        if k % 25 == 24:
            if k == 99:
                s.batch_size = 64  # another batching: shipped with the request
            assert figures(s.evaluate()) == figures(local.evaluate()), k
            compared += 1
    assert compared == 8 and len(s.plans()) > 1 and s.history.index > 0
    assert remote.resyncs == 0 and remote.down is None and not s.notices
    info = local_ray.get(remote.actor.info.remote())
    assert (info["seq"], info["checksum"]) == (remote.seq, Checksum(s.masks).value)
    detach(s)  # evaluation here again; the replica ends
    assert s.evaluate().device == "cpu" and remote.actor is None


@pytest.mark.slow
def test_checksum_catches_a_replica_that_missed_an_edit_and_the_session_resyncs(local_ray):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    s.evaluate()
    real = remote.actor
    remote.actor = LoseFirstFlip(real, [layer.name for layer in s.layers])
    s.prune(0.7, scope="global")  # one flip per layer: the replica gets all but the first
    s.prune_weights("12", list(range(0, 2000, 3)))
    result = s.evaluate()
    assert remote.actor.lost and remote.resyncs == 1
    assert figures(result) == figures(local.evaluate()) and result.device == "cpu (Ray replica)"
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
    assert result.device == "cpu (Ray replica)" and result.samples == 1437 and figures(result) == figures(local.evaluate())
    s.reinitialize(seed=3)
    here = s.evaluate()
    assert "Ray replica" not in here.device and figures(here) == figures(local.evaluate())
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
    assert figures(s.evaluate()) == figures(local.evaluate()) and len([n for n in s.notices if "is gone" in n]) == 1
    # a new replica gets the whole journal, checked against the local masks, before it answers
    info = remote.reconnect()
    assert info["pid"] != old_pid and remote.down is None and remote.resyncs == 1 and remote.head is not None
    assert local_ray.get(remote.actor.info.remote())["checksum"] == Checksum(s.masks).value
    again = s.evaluate()
    assert again.device == "cpu (Ray replica)" and figures(again) == figures(local.evaluate())
    detach(s)


@pytest.mark.slow
def test_cli_eval_on_local_prints_the_localfigures(local_ray, capsys):
    import json

    from pruneviz.cli import main

    args = ["eval", "demo:mlp", "--data", "demo:digits", "--device", "cpu", "--json"]
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)
    # the model and the data read on the cluster (no weights shipped: their fingerprint is checked)
    assert main([*args, "--eval-on", "local", "--remote-data", "demo:digits", "--remote-model", "demo:mlp"]) == 0
    there = json.loads(capsys.readouterr().out)
    assert there.pop("device") == "cpu (Ray replica)" and here.pop("device") == "cpu" and there == here


def test_the_silent_failures_of_rays_client_say_what_to_do_in_one_line():
    from pruneviz.core.remote_eval import client_hint

    fork = client_hint("cannot connect to Ray at ray://gpu-box:10001: Initialization failure from server:\n  detail")
    assert "\n" not in fork and fork.startswith("cannot connect to Ray at ray://gpu-box:10001: Initialization failure from server: ") and "GRPC_ENABLE_FORK_SUPPORT=false" in fork
    assert "RAY_AUTH_MODE=token" in client_hint("cannot connect to Ray at ray://gpu-box:10001: ConnectionError: ray client connection timeout")
    assert client_hint("cannot connect to Ray at ray://gpu-box:10001: Connection refused") == "cannot connect to Ray at ray://gpu-box:10001: Connection refused"


@pytest.mark.slow
def test_private_head_killed_mid_evaluation_leaves_this_process_alive_and_evaluating_here(local_ray):
    """``local`` joins its own head through Ray's client: this process is not Ray's driver, so
    Ray does not end it (a driver whose GCS died was ended about 60 s later) when the head dies."""
    from pruneviz.core import ray_local

    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator="local")
    remote, local = s.evaluation.remote, s.evaluation.local
    head = ray_local.current()
    assert head is not None and remote.head is head and local_ray.util.client.ray.is_connected()
    assert remote.replica_info["pid"] in head.processes() and os.getpid() not in head.processes()
    s.prune_neurons("8", [1, 2, 3])
    kill_mid_evaluation(s, head.kill)  # every process of the head: GCS, raylet, client server, the replica
    assert remote.down
    assert [n for n in s.notices if "is gone" in n] == [s.notices[-1]]
    s.batch_size = 256
    journal = [node.step.label for node in s.history.nodes[: s.history.index]]

    def edit_and_evaluate(n):
        s.prune_weights("4", [n])
        journal.append(s.history.nodes[s.history.index - 1].step.label)
        here = s.evaluate()
        assert "Ray replica" not in here.device and figures(here) == figures(local.evaluate()), n

    rounds = for_seconds(75.0, edit_and_evaluate, interval=2.0)  # past the 60 s Ray gives a driver
    assert rounds >= 2 and len([n for n in s.notices if "is gone" in n]) == 1
    assert [node.step.label for node in s.history.nodes[: s.history.index]] == journal  # no edit lost
    detach(s)
