"""``--eval-on ray://HOST:PORT`` against a real Ray cluster in a separate process (``ray start
--head``, :mod:`tests.ray_head`), through Ray's client: the replica's figures equal the local ones
after 200 random edits, undos and plan switches; the checksum catches a replica that missed an
edit; cancelling reaches the replica; the whole cluster killed mid-evaluation leaves the session usable, evaluating here with one
message and no edit lost; a cluster back at the address gets the whole journal on reconnect.

Every process of a cluster started here is ended by its process session when the test ends."""

import json
import os
import random
import subprocess
import sys
import threading

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("grpc")  # Ray's client (ray[client])

from pruneviz.core import evaluate as ev  # noqa: E402
from pruneviz.core.remote_eval import detach  # noqa: E402
from pruneviz.core.remote_replica import Checksum  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402
from tests.core.remote_cases import LoseFirstFlip, figures, kill_mid_evaluation, random_edit  # noqa: E402
from tests.ray_head import ROOT, RayHead  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster starts in 10-60 s (not even imported by the quick loop)

if not os.path.isdir("/proc/self"):
    pytest.skip("ends the cluster's processes by their session (Linux /proc)", allow_module_level=True)


@pytest.fixture(scope="module")
def head():
    if ray.is_initialized():
        ray.shutdown()
    h = RayHead().start()
    yield h
    ray.shutdown()
    assert h.stop(), h.processes()  # no process of the cluster is left


def test_replica_over_ray_client_equals_local_after_200_random_edits_undos_and_plan_switches(head):
    s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator=head.address)
    remote, local = s.evaluation.remote, s.evaluation.local
    assert ray.util.client.ray.is_connected()  # through Ray's client, not a Ray started here
    assert remote.replica_info["pid"] in head.processes()  # the replica runs in the cluster's processes
    assert s.evaluate().device == "cpu (Ray replica)"
    rng = random.Random(1919)
    done, compared = [], 0
    for k in range(200):
        done.append(random_edit(s, rng))
        if k % 40 == 39:
            assert figures(s.evaluate()) == figures(local.evaluate()), k
            compared += 1
    assert compared == 5 and {"weights", "neuron", "undo", "redo", "plan"} <= set(done) and len(s.plans()) > 1
    assert remote.resyncs == 0 and remote.down is None and not s.notices
    info = ray.get(remote.actor.info.remote())
    assert (info["seq"], info["checksum"]) == (remote.seq, Checksum(s.masks).value)
    # a replica that misses an edit on the way is caught by the checksum and rebuilt from the journal
    real = remote.actor
    remote.actor = LoseFirstFlip(real, [layer.name for layer in s.layers])
    s.prune(0.5, scope="global")  # one flip per layer: the replica gets all but the first
    result = s.evaluate()
    assert remote.actor.lost and remote.resyncs == 1
    assert figures(result) == figures(local.evaluate()) and result.device == "cpu (Ray replica)"
    remote.actor = real
    assert ray.get(real.info.remote())["checksum"] == Checksum(s.masks).value
    # cancelling reaches the replica through the client: no result here, and the replica stops
    s.batch_size = 1
    cancel = threading.Event()
    gen = s.evaluate_iter(cancel=cancel)
    assert isinstance(next(gen), ev.Progress)
    cancel.set()
    assert not any(isinstance(item, ev.EvalResult) for item in gen)
    items, done = ray.get(real.poll.remote(remote.eval_id, 30.0))
    assert done and not any(isinstance(item, ev.EvalResult) for item in items)
    detach(s)
    assert s.evaluate().device == "cpu"


def test_cli_eval_on_ray_client_prints_the_local_figures(head, capsys):
    from pruneviz.cli import main

    args = ["eval", "demo:mlp", "--data", "demo:digits", "--device", "cpu", "--json"]
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "pruneviz", *args, "--eval-on", head.address], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there.pop("device") == "cpu (Ray replica)" and here.pop("device") == "cpu" and there == here


def test_cluster_killed_mid_evaluation_falls_back_here_and_reconnect_replays_the_journal(monkeypatch):
    """A cluster of its own (the module's stays up for the other tests), killed whole while the
    replica streams progress: Ray's client gives up after its reconnection grace period (30 s
    by default; 2 s here)."""
    ray.shutdown()
    monkeypatch.setenv("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "2")
    gone = RayHead().start()
    back = None
    try:
        s = Session.open("demo:cnn", data="demo:digits", device="cpu", evaluator=gone.address)
        remote, local = s.evaluation.remote, s.evaluation.local
        s.prune_neurons("8", [1, 2, 3])
        result = kill_mid_evaluation(s, gone.kill)  # every process of the cluster: GCS, raylet, client server, the replica
        assert remote.down and [n for n in s.notices if "is gone" in n] == [s.notices[-1]]
        assert (result.accuracy, result.correct) == (local.evaluate().accuracy, local.evaluate().correct)
        # the session goes on here: edits, undo, a plan, evaluation; one message only
        s.batch_size = 256
        s.prune(0.5, scope="global")
        s.undo()
        s.prune_weights("4", [0, 5, 9])
        journal = [node.step.label for node in s.history.nodes[: s.history.index]]
        assert figures(s.evaluate()) == figures(local.evaluate()) and len([n for n in s.notices if "is gone" in n]) == 1
        # the cluster comes back at the same address: a new replica gets the whole journal
        back = RayHead(client_port=gone.client_port).start()
        info = remote.reconnect()
        assert remote.down is None and remote.resyncs == 1 and info["pid"] in back.processes()
        assert ray.get(remote.actor.info.remote())["checksum"] == Checksum(s.masks).value
        again = s.evaluate()
        assert again.device == "cpu (Ray replica)" and figures(again) == figures(local.evaluate())
        assert [node.step.label for node in s.history.nodes[: s.history.index]] == journal  # no edit lost
        detach(s)
    finally:
        ray.shutdown()
        assert gone.stop() and (back is None or back.stop())
