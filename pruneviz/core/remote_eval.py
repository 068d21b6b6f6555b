"""Evaluation on a remote replica through Ray: ``--eval-on local|ray://HOST:PORT``.

:func:`attach` starts a :class:`~pruneviz.core.remote_replica.Replica` as a Ray actor (on a GPU
when the cluster has one), ships it the model once (its spec, opened on the cluster, and the
``state_dict`` at the root of the history as bytes) and the data once (or names a file on the
cluster, ``remote_data``), and puts a :class:`RemoteEvaluation` in place of the session's
evaluation part. From then on ``session.evaluate_iter()`` — what the app, the CLI and notebooks
call — runs on the replica and yields the same items as a local evaluation (a ``Progress`` with
its interval per batch, then the ``EvalResult``).

Each evaluation ships one journal message: the flips between the state the replica has and the
local one, found on the history tree (undo = the step's flips reversed, redo and plan switches =
the steps' flips), with a sequence number and a checksum of the local masks. A replica that is
behind (restarted, missed a message, or its masks do not match) is rebuilt from the whole journal
and checked before it answers. Weights are never shipped after the start; a history that changed
weights (fine-tuning, compensation) is evaluated here, with a notice.

``local`` starts a private Ray head on this machine in processes of its own and joins it through
Ray's client (:mod:`pruneviz.core.ray_local`), so that its death cannot end this process.

Faults: when the replica or the cluster fails, the evaluation goes on here (one notice), the
session is untouched, and :meth:`RemoteEvaluator.reconnect` later starts a new replica and
replays the journal. Ray is imported only here, when asked for.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import threading
import time

import torch

from . import evaluate as ev
from .errors import PrunevizError, reason
from .remote_address import check_client, client_hint, parse_address
from .remote_replica import Checksum, Replica, ReplicaSpec, encode, fingerprint

WAIT_S = 0.2  #: how long one call waits on the replica for progress before returning
STALL_S = 60.0  #: a replica silent this long is taken as gone


def replica_spec(session, local=None, remote_data: str | None = None, remote_model: str | None = None) -> ReplicaSpec:
    """What a replica of ``session`` is built from: its model spec with the weights at the root of
    its history as ``state_dict`` bytes (or ``remote_model``, the model file as the cluster reads
    it: no weights shipped), and its data (or ``remote_data``, a DATA spec read on the cluster)."""
    s = session
    local = local if local is not None else s.evaluation
    state = None
    if not remote_model:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in local.loaded_model().state_dict().items()}, buf)
        state = buf.getvalue()
    return ReplicaSpec(
        model=remote_model or s.spec, arch=s.arch, trust=s.loaded.source == "pickle", state=state,
        example_input=s.loaded.example_input, data=None if remote_data else s.data, data_spec=remote_data,
        seed=s.seed, batch_size=s.batch_size, cache_bytes=s.cache.budget_bytes, layers=[layer.name for layer in s.layers], session_class=type(s),
    )


class _EvaluateHere(Exception):
    """This evaluation cannot run on the replica (the message says why); it runs here."""


class RemoteEvaluator:
    """The client side: the replica's handle, the journal position it has, and the fallback."""

    def __init__(self, session, address: str, remote_data: str | None = None, remote_model: str | None = None, local=None):
        from .workers import ray_module

        self.address = parse_address(address)
        self.ray = ray_module()  # installed? one line if not
        self.session = session
        self.remote_data = remote_data
        self.remote_model = remote_model
        #: the session's own evaluation part: the fallback, and what reads the root weights
        self.local = local if local is not None else session.evaluation
        self.checksum = Checksum(session.masks)
        self.layer_no = {layer.name: i for i, layer in enumerate(session.layers)}
        self.seq = 0  #: the journal sequence number of the last message sent
        self.shipped: list = []  #: the history nodes the replica has applied (root first)
        self.down: str | None = None  #: why evaluation runs here, when the replica is gone
        self.resyncs = 0  #: how many times the replica was rebuilt from the journal
        self.last_payload = b""  #: the last journal message sent (``remote_edit_bytes``)
        self.eval_id = 0  #: the replica's number for the last evaluation asked of it
        self._ids = itertools.count(1)
        self._told: set[str] = set()
        self.actor = None
        self.replica_info: dict = {}
        self.head = None  #: the private Ray head that ``local`` started (:mod:`.ray_local`), held
        try:
            self._start()
        except BaseException:
            self.shutdown()
            raise

    # ------------------------------------------------------------ the replica
    def _spec(self) -> ReplicaSpec:
        return replica_spec(self.session, self.local, self.remote_data, self.remote_model)

    def _local_target(self) -> str:
        """Where ``local`` connects: a private Ray head in processes of its own, through Ray's
        client (:mod:`.ray_local`: its death leaves this process alone); a Ray this process runs
        already (a notebook's) as it is; without Ray's client, a Ray inside this process."""
        import importlib.util

        from . import ray_local

        ray = self.ray
        if ray.is_initialized() and not (self.head is not None or ray_local.current() is not None):
            return "local"
        if importlib.util.find_spec("grpc") is None:
            self._tell("Ray's client is not installed here (pip install 'ray[client]'): the local Ray instance runs inside this process, "
                       "which Ray ends about a minute after Ray's own processes die")
            return "local"
        held = self.head is not None
        self.head, fresh = ray_local.acquire()
        if held:
            ray_local.release()  # one hold per evaluator
        if fresh:
            ray.shutdown()  # Ray's client keeps the context of a head that died until this
        return self.head.address

    def _start(self) -> None:
        import os

        from .workers import connect_ray

        ray = self.ray
        target = self._local_target() if self.address == "local" else self.address
        check_client(target)
        grace = os.environ.get("RAY_CLIENT_RECONNECT_GRACE_PERIOD")
        if self.head is not None and grace is None:
            from .ray_local import RECONNECT_GRACE_S

            os.environ["RAY_CLIENT_RECONNECT_GRACE_PERIOD"] = RECONNECT_GRACE_S  # read when the client connects
        try:
            connect_ray(target)
        except PrunevizError as exc:
            if client_hint(str(exc)) == str(exc):
                raise
            raise PrunevizError(client_hint(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - whatever ray.init raises is one line
            raise PrunevizError(client_hint(f"cannot connect to Ray at {self.address}: {_cause(exc)}")) from None
        finally:
            if self.head is not None and grace is None:
                os.environ.pop("RAY_CLIENT_RECONNECT_GRACE_PERIOD", None)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        # no CPU reserved: on a small cluster the replica never waits for (nor holds) the CPUs
        # that analysis tasks use; a GPU, when there is one, is what places it
        actor_cls = ray.remote(Replica).options(num_cpus=0, num_gpus=gpus, max_concurrency=4, max_restarts=0)
        self.close()
        self.actor = actor_cls.remote(self._spec())
        self.data_ref = self.session.data
        try:
            self.replica_info = self._get(self.actor.info.remote(), None, STALL_S * 5)
        except PrunevizError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to start is one line
            raise PrunevizError(f"the Ray replica did not start: {_cause(exc)}") from None
        if self.remote_model and self.replica_info["fingerprint"] != fingerprint(self.local.loaded_model().state_dict()):
            self.close()
            raise PrunevizError(f"the cluster's copy of the model ({self.remote_model}): the model the cluster reads has other weights than the one opened here")
        self.down = None

    def close(self) -> None:
        """End the replica (if any); evaluation then runs here until :meth:`reconnect`."""
        actor, self.actor = self.actor, None
        if actor is not None:
            self.down = self.down or "closed"
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - gone already
                pass

    def shutdown(self) -> None:
        """End the replica and let go of the private Ray head (stopped with its last holder)."""
        self.close()
        head, self.head = self.head, None
        if head is not None:
            from . import ray_local

            ray_local.release()

    def reconnect(self) -> dict:
        """Start a new replica (after the old one or its cluster went away) and replay the
        journal into it; returns the replica's info (device, sequence number, checksum)."""
        ray = self.ray
        if not ray.is_initialized():
            ray.shutdown()  # Ray's client keeps the context of a cluster that went away until this
        try:
            self._start()  # ``local``: a new private head when the last one died
        except PrunevizError:
            if self.address != "local" or self.head is not None:
                raise
            ray.shutdown()  # our in-process instance is gone: start another
            self._start()
        self._rebuild()
        return self.replica_info

    # ------------------------------------------------------------ journal
    def _message(self):
        """Under the session's lock: the next journal message, and what a rebuild would send."""
        s = self.session
        target = s.history.nodes[: s.history.index]
        if any(node.step.weights is not None for node in target):
            raise _EvaluateHere("the history changed weights (fine-tuning or compensation), which are not shipped to the replica: evaluating here")
        if s.data is not self.data_ref:
            if self.remote_data:
                raise _EvaluateHere("the evaluation data changed here and the replica reads its own copy on the cluster: evaluating here")
            self._get(self.actor.set_data.remote(s.data), None, STALL_S)
            self.data_ref = s.data
        p = 0
        while p < min(len(target), len(self.shipped)) and target[p] is self.shipped[p]:
            p += 1
        flips = [f for node in reversed(self.shipped[p:]) for f in reversed(node.step.flips)]
        flips += [f for node in target[p:] for f in node.step.flips]
        checksum = self.checksum.refresh((f.store, f.layer) for f in flips)
        self.seq += 1
        self.shipped = target
        payload = encode(self.seq, checksum, flips, self.layer_no)
        journal = encode(self.seq, checksum, [f for node in target for f in node.step.flips], self.layer_no)
        return payload, journal

    def _rebuild(self, journal: bytes | None = None) -> None:
        if journal is None:
            with self.session.lock:
                s = self.session
                target = s.history.nodes[: s.history.index]
                self.shipped = target
                journal = encode(self.seq, self.checksum.full(), [f for node in target for f in node.step.flips], self.layer_no)
        self.resyncs += 1
        self._get(self.actor.rebuild.remote(journal), None, STALL_S)

    # ------------------------------------------------------------ evaluation
    def evaluate_iter(self, cancel: threading.Event | None = None, incremental: bool = True):
        """Generator like :meth:`Session.evaluate_iter`, on the replica (here when it is gone)."""
        if self.session.data is None:
            self.local.eval_tensors()  # the local error: no data
        return self._evaluate(cancel, incremental)

    def _tell(self, note: str) -> None:
        if note not in self._told:
            self._told.add(note)
            self.session.notices.append(note)

    def _evaluate(self, cancel, incremental):
        if self.down is None:
            try:
                yield from self._remote(cancel)
                return
            except _Cancelled:
                return
            except _EvaluateHere as exc:
                self._tell(str(exc))
            except Exception as exc:  # noqa: BLE001 - Ray's errors (actor died, connection lost, timeouts)
                self.down = _cause(exc)
                self._tell(f"the Ray replica at {self.address} is gone ({self.down}): evaluating here; nothing was lost (reconnect to evaluate there again)")
        yield from self.local.evaluate_iter(cancel, incremental)

    def _remote(self, cancel):
        s = self.session
        with s.lock:
            payload, journal = self._message()
            batch_size, amp = s.batch_size, s.amp
        self.last_payload = payload
        eval_id = self.eval_id = next(self._ids)
        done = False
        try:
            status, _seq, items, done = self._get(self.actor.ask.remote(payload, eval_id, batch_size, amp, WAIT_S), cancel)
            if status == "behind":  # restarted, missed a message, or its masks differ: replay the journal
                self._rebuild(journal)
                with s.lock:
                    payload, _ = self._message()  # the flips since (often none)
                eval_id = self.eval_id = next(self._ids)
                status, _seq, items, done = self._get(self.actor.ask.remote(payload, eval_id, batch_size, amp, WAIT_S), cancel)
                if status != "ok":
                    raise PrunevizError("the replica did not accept the journal")
            while True:
                for item in items:
                    if isinstance(item, Exception):
                        raise item
                    if isinstance(item, ev.EvalResult):
                        item = dataclasses.replace(item, device=f"{item.device} (Ray replica)")
                    yield item
                if done or (cancel is not None and cancel.is_set()):
                    return
                items, done = self._get(self.actor.poll.remote(eval_id, WAIT_S), cancel)
        finally:
            if not done:
                try:
                    self.actor.cancel.remote(eval_id)
                except Exception:  # noqa: BLE001 - the replica is gone: nothing to stop
                    pass

    def _get(self, ref, cancel, stall_s: float = STALL_S):
        """``ray.get`` that notices ``cancel`` (then stops waiting) and a silent replica."""
        ray = self.ray
        deadline = time.monotonic() + stall_s
        while True:
            ready, _ = ray.wait([ref], timeout=0.05)
            if ready:
                return ray.get(ready[0])
            if cancel is not None and cancel.is_set():
                raise _Cancelled  # the caller tells the replica to stop
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the replica in {stall_s:.0f} s")


class _Cancelled(Exception):
    pass


def _cause(exc: BaseException) -> str:
    name = type(exc).__name__
    text = reason(exc)
    return name if text == name else f"{name}: {text[:160]}"


class RemoteEvaluation:
    """Stands in for the session's :class:`~pruneviz.core.session_eval.Evaluation`: evaluation
    goes to the replica, everything else (data, baseline, device) to the local part."""

    def __init__(self, local, remote: RemoteEvaluator):
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "remote", remote)

    def __getattr__(self, name):
        return getattr(self.local, name)

    def __setattr__(self, name, value):
        setattr(self.local, name, value)

    def evaluate_iter(self, cancel: threading.Event | None = None, incremental: bool = True):
        return self.remote.evaluate_iter(cancel, incremental)

    def evaluate(self, incremental: bool = True) -> ev.EvalResult:
        return ev.run(self.evaluate_iter(incremental=incremental))


def attach(session, evaluator: str, remote_data: str | None = None, remote_model: str | None = None) -> RemoteEvaluator:
    """Evaluate ``session`` on a Ray replica from now on (see the module's text); returns the
    :class:`RemoteEvaluator` (also ``session.evaluation.remote``).

    Example::

        s = Session.open("demo:cnn", data="demo:digits")
        attach(s, "local").replica_info["device"]     # 'cpu', or 'cuda' on a GPU node
        s.evaluate().device                           # 'cpu (Ray replica)'
    """
    current = session.evaluation
    old = current.remote if isinstance(current, RemoteEvaluation) else None
    current = current.local if old is not None else current
    with session.lock:
        session.check_writable()
        remote = RemoteEvaluator(session, evaluator, remote_data, remote_model, local=current)
        session.evaluation = RemoteEvaluation(current, remote)
    if old is not None:
        old.shutdown()  # after the new one holds the private head, if both use it
    return remote


def detach(session) -> None:
    """Evaluate here again; the replica is ended (and ``local``'s private Ray head with its last user)."""
    if isinstance(session.evaluation, RemoteEvaluation):
        session.evaluation.remote.shutdown()
        session.evaluation = session.evaluation.local
