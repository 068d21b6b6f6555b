"""The edit part of a :class:`~pruneviz.core.session.Session`: mask edits as undoable steps.

Every mask edit is a list of :class:`~pruneviz.core.history.Flip` applied to the session's
:class:`~pruneviz.core.editable.EditableModel` and pushed to its history as one step (or gathered
into the step of an enclosing :meth:`Editor.group`); undo and redo replay a step's flips
backwards or forwards (steps that changed values XOR their delta back too,
:func:`pruneviz.core.deltas.replay`). Every edit emits :attr:`Session.changed` once it is recorded.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Sequence

import torch

from .errors import PrunevizError
from .history import Change, Flip, Step


class Editor:
    """Applies, records, undoes and redoes the mask edits of one session."""

    def __init__(self, session):
        self.session = session
        self.pending: Step | None = None  #: the step an open :meth:`group` gathers edits into
        self.pending_layers: set[str] = set()

    # ---------------------------------------------------------------- steps
    @contextmanager
    def group(self, label: str):
        """See :meth:`Session.group`."""
        s = self.session
        if self.pending is not None:
            yield
            return
        step = Step(label)
        try:
            with s.writing():
                self.pending, self.pending_layers = step, set()
                try:
                    yield
                finally:
                    self.pending = None
                    if step.flips:
                        s.history.push(step)
        finally:
            if step.flips:
                s.changed.emit(Change(label, frozenset(self.pending_layers)))

    def apply_flips(self, flips: Iterable[Flip]) -> set[str]:
        """See :meth:`Session.apply_flips`."""
        s = self.session
        flips = list(flips)
        with s.writing():
            if any(f.store == "chan" for f in flips):
                s.build_coupling()  # a replayed neuron edit (session file) needs the graph
            return s.editable.apply_flips(flips)

    def edit(self, label: str, flips: list[Flip]) -> int:
        """Apply ``flips`` and record them as one step called ``label``; returns how many entries flipped."""
        s = self.session
        with s.writing():  # refused while a job runs (a no-op too); applied and recorded atomically
            flips = [f for f in flips if f.idx.numel()]
            if not flips:
                return 0
            touched = self.apply_flips(flips)
            if self.pending is not None:
                self.pending.flips.extend(flips)
                self.pending_layers |= touched
                return sum(f.idx.numel() for f in flips)
            s.history.push(Step(label, flips))
        s.changed.emit(Change(label, frozenset(touched)))
        return sum(f.idx.numel() for f in flips)

    # ---------------------------------------------------------------- flips
    def elem_flips(self, layer: str, flat: torch.Tensor, prune: bool) -> Flip:
        """The flip that brings weights ``flat`` of ``layer`` to pruned (or kept)."""
        masks = self.session.masks
        info = self.session.layer(layer)
        flat = torch.unique(torch.as_tensor(flat, dtype=torch.long).reshape(-1))
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= info.numel):
            raise PrunevizError(f"weight index out of range for layer {layer} with {info.numel} weights")
        current = masks.elem[layer].view(-1)[flat.to(masks.elem[layer].device)].cpu()
        sel = flat[current] if prune else flat[~current]
        return Flip.make("elem", layer, sel, info.numel)

    def to_flat(self, layer: str, index) -> torch.Tensor:
        info = self.session.layer(layer)
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            if index.numel() != info.numel:
                raise PrunevizError(f"mask for layer {layer} has {index.numel()} entries, the weight has {info.numel}")
            return index.reshape(-1).nonzero().flatten()
        return torch.as_tensor(index, dtype=torch.long).reshape(-1)

    def rect_flat(self, layer: str, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        r_out, c_in = self.session.layer(layer).view_shape
        r0, r1 = max(0, min(rows)), min(r_out, max(rows))
        c0, c1 = max(0, min(cols)), min(c_in, max(cols))
        if r0 >= r1 or c0 >= c1:
            return torch.zeros(0, dtype=torch.long)
        r = torch.arange(r0, r1).view(-1, 1)
        c = torch.arange(c0, c1).view(1, -1)
        return (r * c_in + c).reshape(-1)

    def require_neurons(self, layer: str) -> None:
        s = self.session
        s.layer(layer)
        if s.coupling is None:
            raise PrunevizError(f"neuron pruning is not available for this model: {s.coupling_error}", hint=s.coupler.hint)
        refused = s.coupling[layer].refused
        if refused:
            raise PrunevizError(f"cannot neuron-prune {layer}: {refused}")

    def chan_flips(self, targets: dict[str, torch.Tensor], prune: bool) -> list[Flip]:
        """Flips that bring the listed neurons (and their coupled neurons) to pruned/kept."""
        s = self.session
        want: dict[str, set[int]] = {}
        for layer, idx in targets.items():
            self.require_neurons(layer)
            idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
            n = s.layer(layer).out_channels
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise PrunevizError(f"neuron index out of range for layer {layer} with {n} neurons")
            want.setdefault(layer, set()).update(idx.tolist())
            for other, (tidx, ridx) in s.coupling[layer].coupled.items():
                sel = torch.isin(ridx, idx)
                want.setdefault(other, set()).update(tidx[sel].tolist())
        flips = []
        for layer, idx in want.items():
            t = torch.tensor(sorted(idx), dtype=torch.long)
            kept = s.masks.chan[layer].cpu()[t] if t.numel() else torch.zeros(0, dtype=torch.bool)
            sel = t[kept] if prune else t[~kept]
            flips.append(Flip.make("chan", layer, sel, s.layer(layer).out_channels))
        return flips

    # ---------------------------------------------------------------- verbs
    def weights(self, layer: str, index, prune: bool, label: str | None) -> int:
        """Prune (or restore) weights ``index`` (a bool mask or flat indices) of ``layer``."""
        flip = self.elem_flips(layer, self.to_flat(layer, index), prune)
        return self.edit(label or f"{'prune' if prune else 'restore'} {flip.idx.numel()} weights of {layer}", [flip])

    def rect(self, layer: str, rows: tuple[int, int], cols: tuple[int, int], restore: bool) -> int:
        flip = self.elem_flips(layer, self.rect_flat(layer, rows, cols), not restore)
        verb = "restore" if restore else "prune"
        return self.edit(f"{verb} block [{rows[0]}:{rows[1]}, {cols[0]}:{cols[1]}] of {layer}", [flip])

    def neurons(self, layer: str, idx: Sequence[int], prune: bool, label: str | None) -> int:
        idx = list(idx) if not isinstance(idx, torch.Tensor) else idx
        verb = "prune" if prune else "restore"
        return self.edit(label or f"{verb} neuron{'s' if len(idx) != 1 else ''} {fmt(idx)} of {layer}", self.chan_flips({layer: idx}, prune))

    # -------------------------------------------------------------- history
    def replay(self, step: Step, kind: str) -> set[str]:
        s = self.session
        try:
            if step.weights is not None:  # fine-tuned / compensated values come back bit for bit
                from .deltas import replay

                touched = replay(s, step, kind)
            else:
                flips = step.flips if kind == "redo" else list(reversed(step.flips))
                touched = self.apply_flips(flips)
        except BaseException:  # the session was rolled back: put the history back in step with it
            s.history.index += 1 if kind == "undo" else -1
            raise
        return touched

    def move(self, kind: str) -> str | None:
        """Undo (``kind="undo"``) or redo the next step; returns its label (None: nothing to do)."""
        s = self.session
        with s.writing():  # refused while a job runs, before the history moves
            step = s.history.undo_step() if kind == "undo" else s.history.redo_step()
            if step is None:
                return None
            touched = self.replay(step, kind)
        s.changed.emit(Change(step.label, frozenset(touched), kind))
        return step.label

    def goto(self, index: int) -> None:
        s = self.session
        s.check_writable()
        index = max(0, min(index, len(s.history.steps)))
        while s.history.index > index:
            self.move("undo")
        while s.history.index < index:
            self.move("redo")


def fmt(idx) -> str:
    """The first indices of a list, for a label: ``1, 2, 3 … (+5)``."""
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:8])) + (f" … (+{len(idx) - 8})" if len(idx) > 8 else "")
