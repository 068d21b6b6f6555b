"""The editable model: one model with its masks, its activation cache, and the rules an edit follows.

An :class:`EditableModel` is what a mask edit or a weight write acts on. A
:class:`~pruneviz.core.session.Session` owns one (``session.editable``) and every analysis worker
owns a copy (:class:`pruneviz.core.workers.Probe`), so the two apply flips the same way:

* :meth:`apply_flips` flips masks (all or nothing when ``atomic``), says which layers' effective
  weights changed (a neuron flip reaches the channels coupled to it), and drops the cached
  activations after the **earliest changed child**: the first Sequential child, or node of the
  traced graph, whose parameters a flip of ``(store, layer)`` can change
  (:attr:`modules_of`, :meth:`earliest`);
* :meth:`write` sets the values masks keep (``orig``) of one parameter and rebuilds the live
  parameter as ``orig * mask``: the one place values are written (fine-tuning, compensation,
  re-initialisation all go through :class:`~pruneviz.core.weight_edit.WeightEdit`, which records
  the undo delta).

It holds no history, no lock and no data: those are the session's (or the probe's).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch

from . import evaluate as ev
from . import ranking as rk
from .history import Flip
from .incremental import modules_touched
from .inventory import LayerInfo
from .masks import MaskStore


class EditableModel:
    """A model, its :class:`~pruneviz.core.masks.MaskStore` and its activation cache."""

    def __init__(self, model: torch.nn.Module, layers: list[LayerInfo], cache: ev.ActivationCache | None = None, masks: MaskStore | None = None, coupling: dict | None = None):
        self.model = model
        self.masks = masks if masks is not None else MaskStore(model, layers, coupling)
        self.cache = cache if cache is not None else ev.ActivationCache()
        self.set_layers(layers, coupling)

    def set_layers(self, layers: list[LayerInfo], coupling: dict | None) -> None:
        """The layers (after the coupling said which are outputs) and the coupling, if built."""
        self.layers = list(layers)
        self.by_name = {layer.name: layer for layer in self.layers}
        self.coupling = coupling
        #: (store, layer) -> the modules a flip of it can change
        self.modules_of = modules_touched(self.layers, coupling)
        self._earliest: tuple | None = None
        self._groups: tuple | None = None

    @property
    def groups(self) -> tuple[dict[str, torch.Tensor], int]:
        """Coupled output channels numbered as units: ``({layer: unit id per channel}, units)``
        (:func:`pruneviz.core.ranking.channel_groups`), computed when first asked."""
        if self._groups is None:
            self._groups = rk.channel_groups({n: layer.out_channels for n, layer in self.by_name.items()}, self.coupling)
        return self._groups

    def install_coupling(self, coupling: dict, layers: list[LayerInfo]) -> None:
        """Install a freshly built coupling: the masks learn what a neuron reaches."""
        self.masks.set_coupling(coupling, layers)
        self.set_layers(layers, coupling)

    # ---------------------------------------------------------------- flips
    def touched_by(self, f: Flip) -> set[str]:
        """The layers whose effective weights flip ``f`` changes (a neuron's coupled channels too)."""
        out = {f.layer}
        if f.store == "chan" and self.coupling:
            c = self.coupling[f.layer]
            out |= set(c.coupled)
            out |= {self.masks.weight_layer[e.param] for e in c.effects if e.param in self.masks.weight_layer}
        return out

    def apply_flips(self, flips, atomic: bool = True, touched: bool = True) -> set[str]:
        """Flip masks; drop the cached activations after the earliest child the flips change.
        Returns the touched layers (empty with ``touched=False``: a probe does not ask).
        ``atomic``: on an exception every flip already applied is rolled back."""
        out: set[str] = set()
        changed: set[str] = set()
        with self.masks.transaction() if atomic else nullcontext():
            for f in flips:
                if f.store == "elem":
                    self.masks.flip_elem(f.layer, f.idx)
                else:
                    self.masks.flip_chan(f.layer, f.idx)
                if touched:
                    out |= self.touched_by(f)
                changed |= self.modules_of.get((f.store, f.layer), {""})
            self.cache.invalidate_modules(self.model, changed)
        return out

    @property
    def earliest(self) -> dict[tuple[str, str], int | None]:
        """(store, layer) -> the earliest point (Sequential child or graph node) a flip of it can
        change, once known (None: not known, e.g. before the graph is captured)."""
        c = self.cache
        key = (id(c), c.graph if isinstance(c.graph, str) else id(c.graph))
        if self._earliest is None or self._earliest[0] != key:
            self._earliest = (key, {k: c.position(self.model, mods) for k, mods in self.modules_of.items()})
        return self._earliest[1]

    # ---------------------------------------------------------------- reads
    def sparsity(self, layer: str | None = None) -> float:
        """Fraction of pruned weights in ``layer``, or over all prunable weights."""
        if layer is not None:
            return self.masks.sparsity(layer)
        return sum(self.masks.pruned_count(n) for n in self.by_name) / sum(info.numel for info in self.layers)

    def view_rows(self, info: LayerInfo, start: int, stop: int):
        """Rows ``start:stop`` of a layer's 2-D view as numpy: (effective weights, pruned mask)."""
        m = self.masks
        w = m.params[info.weight].detach()[start:stop]
        keep = m.param_mask(info.weight, m.elem[info.name][start:stop], 0, torch.arange(start, stop, device=w.device))
        cols = info.view_shape[1]
        return w.reshape(-1, cols).cpu().numpy().astype("float32", copy=False), (~keep).reshape(-1, cols).cpu().numpy()

    # --------------------------------------------------------------- values
    def write(self, param: str, values: torch.Tensor, where: torch.Tensor | None = None, refresh: bool = True) -> None:
        """Set the kept values of parameter ``param`` (``where``: only those entries) and rebuild
        the live parameter as ``orig * mask`` (``refresh=False``: it already holds them).
        Unmasked parameters are written as they are. Records nothing: undo is
        :class:`~pruneviz.core.weight_edit.WeightEdit`'s."""
        m = self.masks
        with torch.no_grad():
            target = m.orig[param] if param in m.orig else m.params[param].data
            values = values.detach().to(target.device, target.dtype)
            target.copy_(values if where is None else torch.where(where.to(target.device), values, target))
            if refresh and param in m.orig:
                self.refresh([param])

    def refresh(self, params) -> None:
        """Rebuild the live parameters ``params`` as ``orig * mask`` (the way a mask flip writes them)."""
        m = self.masks
        with torch.no_grad():
            for p in params:
                layer = m.weight_layer.get(p)
                keep = m.param_mask(p, m.elem[layer] if layer is not None else None)
                m.params[p].data.copy_(m.orig[p] * keep.to(m.orig[p].dtype))

    def values_changed(self) -> None:
        """Values changed: cached activations are stale, and so is every score (the change token moves)."""
        self.cache.clear()
        self.masks.version += 1

    def kept_mask(self, param: str) -> torch.Tensor:
        """Bool mask of ``param``'s kept entries (all True for a parameter no mask reaches)."""
        m = self.masks
        layer = m.weight_layer.get(param)
        return m.param_mask(param, m.elem[layer] if layer is not None else None)

    # ---------------------------------------------------------------- copies
    def copy(self, activations: bool = True) -> "EditableModel":
        """An independent copy (model, masks, coupling); its cache starts with this one's
        activations (shared tensors, never written) when ``activations``, else empty."""
        model, masks, coupling = copy.deepcopy((self.model, self.masks, self.coupling))
        c = self.cache
        with c.lock:
            points, bounds = (dict(c.points), c.bounds) if activations else ({}, None)
            cache = ev.ActivationCache(budget_bytes=c.budget_bytes, points=points, bounds=bounds, graph=c.graph)
        return EditableModel(model, self.layers, cache, masks, coupling)

    def __getstate__(self):  # the cache holds a lock: send its tensors, rebuild it on arrival
        state = {k: v for k, v in self.__dict__.items() if k not in ("cache", "_earliest", "_groups")}
        c = self.cache
        # a graph's nodes hold functions that need not pickle: the copy traces its model again
        # (a reason it cannot is a str and travels); cut positions are the same either way
        state["_cache"] = (dict(c.points), c.bounds, c.budget_bytes, c.store, c.graph if isinstance(c.graph, str) else None)
        return state

    def __setstate__(self, state):
        points, bounds, budget, store, graph = state.pop("_cache")
        self.__dict__.update(state)
        self.cache = ev.ActivationCache(budget_bytes=budget, points=points, bounds=bounds, store=store, graph=graph)
        self._earliest = self._groups = None

