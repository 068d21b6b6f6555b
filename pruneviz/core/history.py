"""Undo/redo of mask edits, stored as diffs.

An edit is a list of *flips*: (store, layer, indices). A flip is its own inverse, so undo and
redo replay the same indices and nothing else is kept: 4 bytes per changed weight (int32
indices; int64 only for tensors past 2**31 elements). Steps group many flips under one label
(one bulk prune = one step), as glue's CommandStack and napari's Labels history do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Flip:
    store: str  # "elem" (weights) or "chan" (neurons)
    layer: str
    idx: torch.Tensor  # 1-D int32/int64 on CPU, unique

    @staticmethod
    def make(store: str, layer: str, idx: torch.Tensor, numel: int) -> "Flip":
        dtype = torch.int32 if numel < 2**31 else torch.int64
        return Flip(store, layer, idx.detach().to("cpu", dtype).contiguous())

    @property
    def nbytes(self) -> int:
        return self.idx.numel() * self.idx.element_size()


@dataclass
class Step:
    """One undoable step: what the user did (``label``) and the flips that did it."""

    label: str
    flips: list[Flip] = field(default_factory=list)
    #: weight changes (fine-tuning, compensation, re-initialisation): a
    #: :class:`~pruneviz.core.deltas.WeightDelta`, the XOR of the values' bit patterns, or None
    weights: object | None = None

    @property
    def nbytes(self) -> int:
        """Memory held: flipped indices plus the weight delta kept in memory (not what is on disk)."""
        return sum(f.nbytes for f in self.flips) + (self.weights.nbytes if self.weights is not None else 0)

    @property
    def changed(self) -> int:
        return sum(f.idx.numel() for f in self.flips)

    def layers(self) -> set[str]:
        return {f.layer for f in self.flips}


class History:
    """A linear undo stack: ``steps[:index]`` are applied, ``steps[index:]`` can be redone."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.index = 0

    def push(self, step: Step) -> None:
        del self.steps[self.index :]
        self.steps.append(step)
        self.index = len(self.steps)

    @property
    def can_undo(self) -> bool:
        return self.index > 0

    @property
    def can_redo(self) -> bool:
        return self.index < len(self.steps)

    def undo_step(self) -> Step | None:
        if not self.can_undo:
            return None
        self.index -= 1
        return self.steps[self.index]

    def redo_step(self) -> Step | None:
        if not self.can_redo:
            return None
        self.index += 1
        return self.steps[self.index - 1]

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.steps]

    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.steps)


@dataclass(frozen=True)
class Change:
    """What an edit, undo or redo changed: the step's label and the layers it touched."""

    label: str
    layers: frozenset[str]
    kind: str = "edit"  # "edit" | "undo" | "redo" | "load"
