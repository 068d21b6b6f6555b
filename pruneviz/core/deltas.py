"""Weight changes as undo steps: the XOR of the values' bit patterns.

Fine-tuning, compensation and re-initialisation change values, not masks. Their undo step keeps,
for every tensor they changed, ``old_bits ^ new_bits`` (an int32 tensor for float32 values:
4 bytes a value). XOR is its own inverse, so the same delta undoes and redoes the change, bit for
bit, and nothing else of the model is copied. What is XORed:

* ``("orig", name)``: the original values the masks keep (:attr:`MaskStore.orig`); the live
  parameter is then rebuilt as ``orig * mask`` exactly as a mask flip writes it;
* ``("param", name)``: a parameter no mask touches (biases of unpruned layers, …);
* ``("buffer", name)``: buffers such as BatchNorm's running statistics.

Deltas past a memory budget (:data:`BUDGET_BYTES`, or ``session.weights_budget_bytes``) are
written to a temporary folder and read back when undone or redone.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .bounded import inflate

#: bytes of weight deltas a session keeps in memory before writing new ones to disk
BUDGET_BYTES = 256 * 1024**2

_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_NP = {"uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64}
_KINDS = ("orig", "param", "buffer")
_dir: Path | None = None

Key = tuple[str, str]


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s storage seen as integers of the same width (no copy)."""
    t = t.detach()
    if t.dtype == torch.bool:
        return t.view(torch.uint8)
    return t.view(_INT[t.element_size()])


def targets(session) -> dict[Key, torch.Tensor]:
    """Every tensor a weight edit may change: mask originals, unmasked parameters, buffers."""
    masks = session.masks
    out: dict[Key, torch.Tensor] = {("orig", n): t for n, t in masks.orig.items()}
    for n, p in masks.params.items():
        if n not in masks.orig:
            out[("param", n)] = p.data
    for n, b in session.model.named_buffers():
        out[("buffer", n)] = b
    return out


def _resolve(key: Key, tg: dict) -> Key:
    """Where a recorded part lives now. A parameter's true value is its mask original once it is
    masked and the parameter itself before: a bias recorded as ``param`` by a fine-tune becomes
    an ``orig`` when a later neuron edit builds the coupling and masks it (and the reverse never
    loses the value either), so undo XORs the delta into whichever holds the value today."""
    if key in tg:
        return key
    kind, name = key
    other = {"param": "orig", "orig": "param"}.get(kind)
    if other is not None and (other, name) in tg:
        return (other, name)
    raise KeyError(key)


def refresh(session, names) -> None:
    """Rebuild the live parameters ``names`` as ``orig * mask`` (the way a mask flip writes them)."""
    session.editable.refresh(names)


def invalidate(session) -> None:
    """Values changed: cached activations and scores are stale (the change token moves)."""
    session.editable.values_changed()


class Snapshot:
    """The bit patterns of every target, taken before a weight edit; becomes its delta."""

    def __init__(self, session):
        self._bits = {k: bits(t).clone() for k, t in targets(session).items()}

    def restore(self, session) -> None:
        """Put every value back as it was when the snapshot was taken (masks are the caller's)."""
        tg = targets(session)
        keys = {k: _resolve(k, tg) for k in self._bits}
        with session.lock, torch.no_grad():
            for k, b in self._bits.items():
                bits(tg[keys[k]]).copy_(b)
            refresh(session, [n for kind, n in keys.values() if kind == "orig"])
            invalidate(session)

    def delta(self, session) -> "WeightDelta | None":
        """The XOR of the snapshot with the current values (None when nothing changed).
        Consumes the snapshot: its buffers become the delta."""
        parts = {}
        tg = targets(session)
        for k, b in self._bits.items():
            b.bitwise_xor_(bits(tg[_resolve(k, tg)]))
            if bool(b.any()):
                parts[k] = b.cpu()
        self._bits = {}
        if not parts:
            return None
        return WeightDelta(parts)


class WeightDelta:
    """XOR deltas of changed tensors, in memory or offloaded to a file."""

    def __init__(self, parts: dict[Key, torch.Tensor]):
        self._parts: dict[Key, torch.Tensor] | None = parts
        self.path: Path | None = None
        self.values = sum(t.numel() for t in parts.values())  #: number of values changed (or not) in the changed tensors
        self._bytes = sum(t.numel() * t.element_size() for t in parts.values())

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (0 once offloaded)."""
        return self._bytes if self._parts is not None else 0

    @property
    def disk_bytes(self) -> int:
        return self._bytes if self.path is not None else 0

    def parts(self) -> dict[Key, torch.Tensor]:
        if self._parts is not None:
            return self._parts
        raw = torch.load(self.path, weights_only=True)
        return {tuple(k.split("\0", 1)): v for k, v in raw.items()}

    def offload(self) -> None:
        """Write the delta to the session's temporary folder and free its memory."""
        if self._parts is None:
            return
        fd, name = tempfile.mkstemp(suffix=".pt", dir=_offload_dir())
        os.close(fd)
        torch.save({"\0".join(k): v for k, v in self._parts.items()}, name)
        self.path = Path(name)
        self._parts = None

    def apply(self, session) -> None:
        """XOR the delta into the session's values (undo and redo alike); rebuild the live
        parameters of changed originals with the current masks."""
        parts = self.parts()
        tg = targets(session)
        keys = {k: _resolve(k, tg) for k in parts}
        with session.lock, torch.no_grad():
            for k, d in parts.items():
                t = tg[keys[k]]
                bits(t).bitwise_xor_(d.to(t.device))
            refresh(session, [n for kind, n in keys.values() if kind == "orig"])
            invalidate(session)

    # ------------------------------------------------------------ journal form
    def to_json(self) -> list[dict]:
        out = []
        for (kind, name), d in self.parts().items():
            arr = d.contiguous().numpy()
            out.append({"kind": kind, "name": name, "dtype": str(arr.dtype), "shape": list(arr.shape), "bits": base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii")})
        return out

    @staticmethod
    def from_json(records, session) -> "WeightDelta":
        """Decode a journal's delta, checking every tensor against ``session``'s model."""
        if not isinstance(records, list):
            raise ValueError("bad weights record")
        tg = targets(session)
        parts = {}
        for rec in records:
            if not isinstance(rec, dict) or rec.get("kind") not in _KINDS or rec.get("dtype") not in _NP:
                raise ValueError("bad weights record")
            key = (rec["kind"], rec.get("name"))
            try:
                want = bits(tg[_resolve(key, tg)])
            except KeyError:
                raise ValueError(f"weights of {key[1]!r} are not in this model") from None
            if list(want.shape) != rec.get("shape") or str(want.dtype).split(".")[-1] != rec["dtype"] or not isinstance(rec.get("bits"), str):
                raise ValueError(f"weights of {key[1]!r} do not match the model's shape or type")
            # inflated within the size the model's tensor has: a bomb stops there, not in memory
            raw = inflate(base64.b64decode(rec["bits"], validate=True), want.numel() * want.element_size())
            arr = np.frombuffer(raw, dtype=_NP[rec["dtype"]])
            if arr.size != want.numel():
                raise ValueError(f"weights of {key[1]!r} do not match the model's shape or type")
            parts[key] = torch.from_numpy(arr.copy()).view(want.shape)
        return WeightDelta(parts)


def budget(session) -> int:
    return int(getattr(session, "weights_budget_bytes", BUDGET_BYTES))


def record(session, step) -> None:
    """Push ``step`` (flips and/or weights) as one undo step; offload its delta past the budget."""
    w = step.weights
    if w is not None:
        held = sum(s.weights.nbytes for s in session.history.steps if s.weights is not None)
        if held + w.nbytes > budget(session):
            w.offload()
    session.history.push(step)


def disk_bytes(history) -> int:
    """Bytes of weight deltas the history keeps on disk."""
    return sum(s.weights.disk_bytes for s in history.all_steps() if s.weights is not None)


def replay(session, step, kind: str) -> set[str]:
    """Apply a step's flips and weights for ``kind`` "undo" or "redo" (and a journal's "push").

    Undo XORs the weights back first, then reverses the flips, so restored entries come back
    with the values they had; redo flips first, then XORs. Returns the touched layers."""
    weights = getattr(step, "weights", None)
    if kind == "undo":
        if weights is not None:
            weights.apply(session)
        try:
            touched = session.apply_flips(list(reversed(step.flips)))
        except BaseException:  # the flips rolled themselves back; an XOR is its own inverse
            if weights is not None:
                weights.apply(session)
            raise
    else:
        touched = session.apply_flips(step.flips)
        if weights is not None:
            try:
                weights.apply(session)
            except BaseException:
                session.apply_flips(list(reversed(step.flips)))
                raise
    if weights is not None:
        touched = {layer.name for layer in session.layers}
    return touched


def _offload_dir() -> Path:
    global _dir
    if _dir is None or not _dir.is_dir():
        _dir = Path(tempfile.mkdtemp(prefix="pruneviz-undo-"))
        atexit.register(shutil.rmtree, _dir, True)
    return _dir
