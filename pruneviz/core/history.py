"""Undo/redo of mask edits, stored as diffs, kept as a tree of plans.

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


@dataclass(eq=False)
class Node:
    """A node of the history tree: the step that leads to it from its parent (None at the root).

    A leaf is the end of a *plan*; ``name`` is set on leaves only."""

    step: Step | None
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    name: str | None = None

    def path(self) -> list["Node"]:
        """Nodes from just below the root down to this one."""
        out, node = [], self
        while node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def leaves(self) -> list["Node"]:
        stack, out = [self], []
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(reversed(node.children))
            else:
                out.append(node)
        return out


class History:
    """Undo/redo as a tree of plans (CNNPruner's tree of plans).

    ``steps[:index]`` are applied and ``steps[index:]`` can be redone, as in a linear undo stack:
    ``steps`` is the *current path*, from the unpruned model to the end of the current plan.
    Editing after an undo does not drop the steps that could have been redone: they stay in the
    tree as another plan (a leaf, named ``plan N``) that :meth:`switch_path` returns to.
    """

    def __init__(self) -> None:
        self.root = Node(None, name="plan 1")
        self.steps: list[Step] = []
        self.index = 0
        self._path: list[Node] = []  # parallel to ``steps``
        self._names = 1

    @property
    def tip(self) -> Node:
        """The leaf that ends the current path (the current plan)."""
        return self._path[-1] if self._path else self.root

    @property
    def nodes(self) -> list[Node]:
        """The nodes of the current path, parallel to :attr:`steps`."""
        return list(self._path)

    @property
    def position(self) -> Node:
        """The node of the current state."""
        return self._path[self.index - 1] if self.index else self.root

    def push(self, step: Step) -> None:
        at = self.position
        node = Node(step, at)
        if self.index < len(self.steps):  # a new branch: the old continuation is kept as a plan
            self._names += 1
            node.name = self._fresh_name()
        else:  # the current plan grows: its name moves to its new end
            node.name, at.name = at.name, None
        at.children.append(node)
        del self._path[self.index :]
        del self.steps[self.index :]
        self._path.append(node)
        self.steps.append(step)
        self.index = len(self.steps)

    def _fresh_name(self) -> str:
        taken = {leaf.name for leaf in self.root.leaves()}
        n = self._names
        while f"plan {n}" in taken:
            n += 1
        self._names = n
        return f"plan {n}"

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

    def all_steps(self) -> list[Step]:
        """Every step in the tree (all plans), each once."""
        out, stack = [], list(self.root.children)
        while stack:
            node = stack.pop()
            out.append(node.step)
            stack.extend(node.children)
        return out

    def nbytes(self) -> int:
        """Memory of every step in the tree (all plans)."""
        return sum(step.nbytes for step in self.all_steps())

    # ------------------------------------------------------------------ plans
    def plans(self) -> list[Node]:
        """The leaves of the tree (one per plan), in the order they branched off."""
        return self.root.leaves()

    def plan(self, name: str) -> Node:
        for leaf in self.plans():
            if leaf.name == name:
                return leaf
        raise KeyError(name)

    @property
    def current_plan(self) -> str:
        return self.tip.name

    def shared(self, leaf: Node) -> int:
        """How many steps the current path and the path to ``leaf`` have in common."""
        n = 0
        for a, b in zip(self._path, leaf.path()):
            if a is not b:
                break
            n += 1
        return n

    def switch_path(self, leaf: Node) -> None:
        """Make the path to ``leaf`` the current one. The current state must lie on both paths
        (undo to :meth:`shared` steps first); it stays where it is."""
        if self.index > self.shared(leaf):
            raise ValueError("undo to the shared steps before switching plans")
        self._path = leaf.path()
        self.steps = [node.step for node in self._path]

    def rename(self, old: str, new: str) -> None:
        leaf = self.plan(old)
        new = new.strip()
        if not new:
            raise ValueError("a plan needs a name")
        if new != old and any(p.name == new for p in self.plans()):
            raise ValueError(f"a plan named {new!r} exists already")
        leaf.name = new


@dataclass(frozen=True)
class Change:
    """What an edit, undo or redo changed: the step's label and the layers it touched."""

    label: str
    layers: frozenset[str]
    kind: str = "edit"  # "edit" | "undo" | "redo" | "load"
