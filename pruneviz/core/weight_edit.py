"""A weight edit: the one way values change (fine-tuning, compensation, re-initialisation).

Mask edits are flips (:meth:`Session.apply_flips`); value edits go through a :class:`WeightEdit`,
made by :meth:`Session.edit_weights`. It snapshots every value the edit may change
(:class:`~pruneviz.core.deltas.Snapshot`), writes through the session's
:class:`~pruneviz.core.editable.EditableModel` (:meth:`write`: the values masks keep, then the live
parameter as ``orig * mask``), applies the flips it is given, and ends in one of two ways:

* :meth:`commit` records **one** undo step: its flips plus the XOR of the values it changed, so
  undo and redo put every tensor back bit for bit (nothing when nothing changed);
* :meth:`abort` puts masks and values back as they were; nothing is recorded.

Used as a context manager it commits on a normal exit and aborts on an exception.

Example::

    with s.edit_weights("halve fc1") as edit:
        edit.write("fc1.weight", s.weight("fc1", original=True) / 2)
    s.undo()   # fc1's values come back bit for bit
"""

from __future__ import annotations

import torch

from . import deltas
from .history import Change, Flip, Step


class WeightEdit:
    """One undoable change of values (and masks) of a session, in progress."""

    def __init__(self, session, label: str = ""):
        self.session = session
        self.editable = session.editable
        self.label = label
        self.snapshot = deltas.Snapshot(session)
        self.flips: list[Flip] = []

    def write(self, param: str, values: torch.Tensor, where: torch.Tensor | None = None, refresh: bool = True) -> None:
        """Set the kept values of ``param`` (``where``: only those entries); see
        :meth:`EditableModel.write` (``refresh=False``: a trainer whose live parameters already
        hold the values it writes back)."""
        self.editable.write(param, values, where, refresh)

    def changed(self) -> None:
        """Values were written: cached activations and scores are stale."""
        self.editable.values_changed()

    def flip(self, flips: list[Flip]) -> set[str]:
        """Apply mask flips as part of this edit (undone with it); returns the touched layers."""
        flips = [f for f in flips if f.idx.numel()]
        if not flips:
            return set()
        touched = self.session.apply_flips(flips)
        self.flips.extend(flips)
        return touched

    def commit(self, label: str | None = None, emit: bool = True) -> Change | None:
        """Record the edit as one undo step called ``label`` (nothing when nothing changed);
        announce it on :attr:`Session.changed` unless ``emit=False`` (the caller emits the returned
        :class:`Change` itself, outside its lock)."""
        s = self.session
        label = self.label if label is None else label
        with s.lock:
            delta = self.snapshot.delta(s)
            self.changed()
        if delta is None and not self.flips:
            return None
        deltas.record(s, Step(label, list(self.flips), weights=delta))
        change = Change(label, frozenset(layer.name for layer in s.layers))
        if emit:
            s.changed.emit(change)
        return change

    def abort(self) -> None:
        """Put masks and values back as they were when the edit began; nothing is recorded."""
        s = self.session
        with s.lock:
            if self.flips:
                s.apply_flips(list(reversed(self.flips)))
            self.flips = []
            self.snapshot.restore(s)

    def __enter__(self) -> "WeightEdit":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.commit()
        else:
            self.abort()
        return False
