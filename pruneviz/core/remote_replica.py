"""The replica side of remote evaluation: a headless session that follows a local one by its flips.

A :class:`Replica` holds its own :class:`~pruneviz.core.session.Session` (the model at the root
of the local history, the data, its own activation cache) and answers evaluation requests. It
never receives weights after it starts: each request carries a *journal message* — a sequence
number, the flips that bring the replica from the state of the previous message to the local
state (int32 indices, the very deltas the undo history keeps) and a checksum of the local masks
after them. A replica whose sequence number is not the one before the message's (it restarted,
or a message was lost) or whose masks do not match the checksum after applying the flips
(it missed an edit) answers ``behind`` instead of a figure; the client then sends the whole
journal (:meth:`Replica.rebuild`), which starts again from the unpruned masks and is checked
against the checksum too.

This module never imports Ray: :mod:`pruneviz.core.remote_eval` wraps :class:`Replica` as a Ray
actor. It is plain Python so that tests and benchmarks can read the protocol (the encoding, the
checksum) without a cluster.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import torch

from .errors import PrunevizError
from .history import Flip

_STORES = ("elem", "chan")
_MIX = 0x1E3779B97F4A7C15  # odd, below 2**63: a multiplicative hash of the flat index


# ------------------------------------------------------------------- the masks checksum
def part_sum(mask: torch.Tensor) -> tuple[int, int]:
    """(pruned count, a hash sum of the pruned flat indices) of one bool kept-mask, on its device.

    Integer sums wrap the same way on every device and in any order, so the CPU session and a
    GPU replica compute the same value for the same mask."""
    idx = (~mask.reshape(-1)).nonzero().flatten()
    if not idx.numel():
        return 0, 0
    x = (idx + 1) * _MIX
    x = x ^ (x >> 29)
    return int(idx.numel()), int(x.sum())


def _digest(key: tuple[str, str], count: int, total: int) -> int:
    h = hashlib.blake2b(f"{key[0]}\0{key[1]}\0{count}\0{total}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


class Checksum:
    """A checksum of a mask store's ``elem`` and ``chan`` masks, refreshed per (store, layer).

    :meth:`refresh` recomputes only the masks a message touched (O(edited layers), not O(model));
    :meth:`full` recomputes every one (at the start and after a rebuild)."""

    def __init__(self, masks):
        self.masks = masks
        self.parts: dict[tuple[str, str], int] = {}
        self.full()

    def _one(self, key: tuple[str, str]) -> None:
        store, layer = key
        self.parts[key] = _digest(key, *part_sum(getattr(self.masks, store)[layer]))

    def full(self) -> int:
        self.parts = {}
        for store in _STORES:
            for layer in getattr(self.masks, store):
                self._one((store, layer))
        return self.value

    def refresh(self, keys: Iterable[tuple[str, str]]) -> int:
        for key in set(keys):
            self._one(key)
        return self.value

    @property
    def value(self) -> int:
        out = 0
        for v in self.parts.values():
            out ^= v
        return out


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A hash of a ``state_dict``'s names, dtypes, shapes and values: the replica that opened the
    model file on the cluster (``--remote-model``) proves it holds the same weights as here."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(state[name].shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ------------------------------------------------------------------- journal messages
def encode(seq: int, checksum: int, flips: Iterable[Flip], layer_no: dict[str, int]) -> bytes:
    """One journal message as bytes: what is shipped per edit (``remote_edit_bytes``).

    Each flip is ``(store code, layer number, raw int32 indices)``: a layer is named by its
    position in the session's layer list, which both sides share; the indices travel as the
    history keeps them (int64 only for tensors past 2**31 elements)."""
    rows = tuple((_STORES.index(f.store) | (2 if f.idx.dtype == torch.int64 else 0), layer_no[f.layer], f.idx.numpy().tobytes()) for f in flips)
    return pickle.dumps((seq, checksum, rows), protocol=5)


def decode(payload: bytes, layers: list[str]) -> tuple[int, int, list[Flip]]:
    """The (sequence number, checksum, flips) of a message made by :func:`encode`."""
    seq, checksum, rows = pickle.loads(payload)
    flips = []
    for code, no, raw in rows:
        dtype = torch.int64 if code & 2 else torch.int32
        idx = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        flips.append(Flip(_STORES[code & 1], layers[no], idx))
    return seq, checksum, flips


# ------------------------------------------------------------------- the replica
@dataclass
class ReplicaSpec:
    """What a replica is built from: the model spec (opened where the replica runs) with the
    local root weights as ``state_dict`` bytes, and the data (an EvalData shipped once, or a
    DATA spec read on the cluster)."""

    model: str
    arch: str | None = None
    trust: bool = False
    state: bytes | None = None  #: torch.save(state_dict) of the model at the root of the history
    example_input: torch.Tensor | None = None
    data: object | None = None  #: an EvalData, shipped once
    data_spec: str | None = None  #: or a DATA spec opened on the cluster (``--remote-data``)
    seed: int = 0
    batch_size: int = 256
    cache_bytes: int = 512 * 1024**2
    device: str = "auto"
    layers: list[str] = field(default_factory=list)  #: the local layer names, in order (message numbering)
    #: the class the replica's session is built with: the local session's (pickled by reference, so
    #: this module does not import :mod:`pruneviz.core.session`, which imports the remote hook)
    session_class: type | None = None


class Replica:
    """A session that follows a local one (see the module's text). One evaluation at a time;
    :meth:`ask` syncs and starts one, :meth:`poll` collects its progress, :meth:`cancel` stops it."""

    def __init__(self, spec: ReplicaSpec):
        from .data import open_data
        from .model_io import open_model

        if spec.session_class is None:
            raise PrunevizError("a replica needs the session class it follows (ReplicaSpec.session_class)")
        Session = spec.session_class
        loaded = open_model(spec.model, arch=spec.arch, trust=spec.trust)
        if spec.state is not None:
            state = torch.load(io.BytesIO(spec.state), map_location="cpu", weights_only=True)
            loaded.model.load_state_dict(state)
        if spec.example_input is not None:
            loaded.example_input = spec.example_input
        self.fingerprint = fingerprint(loaded.model.state_dict())
        data = open_data(spec.data_spec) if spec.data_spec else spec.data
        self.session = Session(loaded, data, device=spec.device, seed=spec.seed, batch_size=spec.batch_size, cache_bytes=spec.cache_bytes)
        names = [layer.name for layer in self.session.layers]
        if spec.layers and spec.layers != names:
            raise PrunevizError("the replica's model has other layers than the local one: open the same model on the cluster")
        self.layers = names
        self.checksum = Checksum(self.session.masks)
        self.seq = 0
        self._lock = threading.Lock()  # one sync/evaluation start at a time
        self._cond = threading.Condition()
        self._eval_id = None
        self._items: list = []
        self._done = True
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ reads
    def info(self) -> dict:
        import os

        return {"device": str(self.session.device), "pid": os.getpid(), "seq": self.seq, "checksum": self.checksum.value, "fingerprint": self.fingerprint}

    # ------------------------------------------------------------------ sync
    def _apply(self, flips: list[Flip]) -> None:
        if flips:
            self.session.apply_flips(flips)

    def sync(self, payload: bytes) -> tuple[str, int]:
        """Apply one journal message. Returns ``("ok", seq)``, or ``("behind", seq)`` when the
        message is not the next one or the masks after it do not match its checksum (the replica
        then refuses every message until :meth:`rebuild`)."""
        seq, checksum, flips = decode(payload, self.layers)
        if self.seq < 0 or seq != self.seq + 1:
            return "behind", self.seq
        self._apply(flips)
        if self.checksum.refresh((f.store, f.layer) for f in flips) != checksum:
            self.seq = -1  # missed an edit somewhere: only a rebuild brings it back
            return "behind", -1
        self.seq = seq
        return "ok", seq

    def rebuild(self, payload: bytes) -> tuple[str, int]:
        """Start again from the unpruned masks and apply the whole journal (every flip from the
        root of the history to the local state), then check the checksum."""
        with self._lock:
            self._stop()
            seq, checksum, flips = decode(payload, self.layers)
            masks = self.session.masks
            reset = [Flip.make("chan", n, (~m).nonzero().flatten().cpu(), m.numel()) for n, m in masks.chan.items() if not bool(m.all())]
            reset += [Flip.make("elem", n, (~m).reshape(-1).nonzero().flatten().cpu(), m.numel()) for n, m in masks.elem.items() if not bool(m.all())]
            self._apply(reset)
            self._apply(flips)
            if self.checksum.full() != checksum:
                self.seq = -1
                raise PrunevizError("the replica's masks differ from the local ones after replaying the journal")
            self.seq = seq
            return "ok", seq

    def set_data(self, data) -> None:
        """New evaluation data (shipped once)."""
        with self._lock:
            self._stop()
            self.session.set_data(data)

    # ------------------------------------------------------------ evaluation
    def _stop(self) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def ask(self, payload: bytes, eval_id: int, batch_size: int, amp: bool, wait_s: float) -> tuple[str, int, list, bool]:
        """Sync with ``payload`` (see :meth:`sync`), then start evaluation ``eval_id`` and wait up to
        ``wait_s`` for its first items. Returns ``(status, seq, items, done)``; nothing runs when
        the status is ``behind``."""
        with self._lock:
            self._stop()
            status, seq = self.sync(payload)
            if status != "ok":
                return status, seq, [], True
            s = self.session
            if s.batch_size != batch_size:
                s.batch_size = batch_size
            s.amp = bool(amp)
            cancel = threading.Event()
            gen = s.evaluate_iter(cancel=cancel)  # no data: raises here, to the caller
            with self._cond:
                self._eval_id, self._items, self._done, self._cancel = eval_id, [], False, cancel
            self._thread = threading.Thread(target=self._run, args=(gen, eval_id), daemon=True)
            self._thread.start()
        items, done = self.poll(eval_id, wait_s)
        return status, seq, items, done

    def _run(self, gen, eval_id) -> None:
        try:
            for item in gen:
                self._push(eval_id, item)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, who falls back
            self._push(eval_id, PrunevizError(f"the replica failed: {type(exc).__name__}: {exc}"))
        finally:
            gen.close()
            with self._cond:
                if self._eval_id == eval_id:
                    self._done = True
                self._cond.notify_all()

    def _push(self, eval_id, item) -> None:
        with self._cond:
            if self._eval_id == eval_id:
                self._items.append(item)
                self._cond.notify_all()

    def poll(self, eval_id: int, wait_s: float) -> tuple[list, bool]:
        """The items of evaluation ``eval_id`` since the last poll, and whether it has ended.
        Waits up to ``wait_s`` for the evaluation to end (returning earlier, after a short
        gathering pause, once progress is there) so that a quick evaluation takes one round trip."""
        deadline = time.monotonic() + wait_s
        gather = None
        with self._cond:
            while self._eval_id == eval_id and not self._done:
                now = time.monotonic()
                if self._items and gather is None:  # progress is there: gather a little more, then send it
                    gather = now + 0.05
                until = deadline if gather is None else min(deadline, gather)
                if now >= until:
                    break
                self._cond.wait(until - now)
            if self._eval_id != eval_id:
                return [], True
            items, self._items = self._items, []
            return items, self._done

    def cancel(self, eval_id: int) -> None:
        """Stop evaluation ``eval_id`` at its next batch."""
        with self._cond:
            if self._eval_id == eval_id:
                self._cancel.set()
