"""Masks kept outside the model; the model's parameters are always ``orig * mask``.

Two kinds of mask, so that structured and unstructured edits do not erase each other:

* ``elem[layer]``: one bool per weight (True = kept), changed by weight pruning;
* ``chan[layer]``: one bool per output neuron, changed by neuron pruning. Through the coupling
  from :mod:`pruneviz.core.groups` each pruned channel zeroes rows/columns of several parameters
  (its weight row, bias, BatchNorm scale and shift, the consumers' input columns). Those are kept
  as one bool vector per (parameter, dim), so the effective mask of a parameter is
  ``elem & keep[dim0] ⊗ keep[dim1] …`` and a neuron edit costs O(channels), not O(weights).

Every change is a *flip* of a set of indices (kept <-> pruned). Flips are their own inverse,
which is what makes undo cheap: the history stores only the flipped indices.
Edits write only the slices they touch into the live parameters.

Edits are atomic: :meth:`MaskStore.transaction` logs the old value of every slice a write is about
to change (O(edit), not O(model)) and, on any exception, writes them back in reverse order, so a
failed edit leaves masks, parameters, counts and the version exactly as they were.
"""

from __future__ import annotations

import os
from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.nn as nn

from .errors import PrunevizError
from .groups import Effect, LayerCoupling
from .inventory import LayerInfo


class MaskStore:
    """Owns the original values, the masks, and the live (effective) parameters of one model."""

    def __init__(self, model: nn.Module, layers: list[LayerInfo], coupling: dict[str, LayerCoupling] | None):
        self.layers = {layer.name: layer for layer in layers}
        self.params: dict[str, torch.Tensor] = dict(model.named_parameters())
        self.device = next(iter(self.params.values())).device if self.params else torch.device("cpu")
        device = self.device
        self.elem = {n: torch.ones(layer.shape, dtype=torch.bool, device=device) for n, layer in self.layers.items()}
        self.chan = {n: torch.ones(layer.out_channels, dtype=torch.bool, device=device) for n, layer in self.layers.items()}
        self.orig = {layer.weight: self.params[layer.weight].detach().clone() for layer in layers if layer.weight in self.params}
        self.coupling: dict[str, LayerCoupling] = {}
        # (param, dim) -> list of (root layer, effect)
        self.touching: dict[tuple[str, int], list[tuple[str, Effect]]] = defaultdict(list)
        self.keep: dict[tuple[str, int], torch.Tensor] = {}
        self.weight_layer = {layer.weight: n for n, layer in self.layers.items()}
        self.kept = {n: layer.numel for n, layer in self.layers.items()}
        self.version = 0
        self._identity_cache: dict[int, bool] = {}
        self._log: list | None = None
        if coupling:
            self.set_coupling(coupling, layers)

    def set_coupling(self, coupling: dict[str, LayerCoupling], layers: list[LayerInfo]) -> None:
        """Install the coupling graph (built lazily by the session, before any neuron edit): the
        index maps, the originals of every parameter a neuron reaches, and their keep masks."""
        device = self.device
        self.layers = {layer.name: layer for layer in layers}
        self.coupling = coupling
        self.touching = defaultdict(list)
        for root, lc in self.coupling.items():
            bad = _bad_effect(self.params, lc.effects)
            if bad:  # an index map that does not fit its parameter: refuse the layer, never crash an edit
                if lc.no_shrink:  # e.g. a fused qkv: Torch-Pruning's index map through the head reshape
                    bad = "its outputs are split into attention heads through a reshape whose channel map cannot be followed; prune its weights instead"
                lc.refused, lc.effects, lc.coupled = bad, [], {}
            moved = []
            for e in lc.effects:
                e = Effect(e.param, e.dim, e.target_idx.to(device), e.root_idx.to(device))
                self.touching[(e.param, e.dim)].append((root, e))
                moved.append(e)
            lc.effects = moved
        for p, _ in self.touching:
            if p in self.params and p not in self.orig:
                self.orig[p] = self.params[p].detach().clone()
        self.keep = {(p, d): torch.ones(self.params[p].shape[d], dtype=torch.bool, device=device) for (p, d) in self.touching}
        self._identity_cache.clear()

    # ----------------------------------------------------------- atomicity
    @contextmanager
    def transaction(self):
        """Run a block of writes all-or-nothing: on an exception every logged write is undone."""
        if self._log is not None:  # nested: the outer transaction owns the log
            yield
            return
        self._log = []
        try:
            yield
        except BaseException:
            log = self._log
            self._log = None
            with torch.no_grad():
                for undo in reversed(log):
                    undo()
            raise
        finally:
            self._log = None

    def _remember(self, tensor: torch.Tensor, idx: torch.Tensor | None = None, dim: int = 0) -> None:
        """Log ``tensor``'s values (all, or ``idx`` along ``dim``) before a write changes them."""
        if self._log is None:
            return
        if idx is None:
            old = tensor.detach().clone()
            self._log.append(lambda: tensor.detach().copy_(old))
        else:
            old = tensor.detach().index_select(dim, idx)
            self._log.append(lambda: _INDEX_COPY(tensor.detach(), dim, idx, old))

    def _remember_counts(self) -> None:
        if self._log is None:
            return
        kept, version = dict(self.kept), self.version

        def restore() -> None:
            self.kept.clear()
            self.kept.update(kept)
            self.version = version

        self._log.append(restore)

    # ----------------------------------------------------------------- reads
    def params_remaining(self) -> int:
        """Parameters that are not pruned: kept weights of the layers, and of every other parameter
        the entries no neuron pruning zeroes (biases, norms); untouched parameters count whole."""
        total = 0
        for p, t in self.params.items():
            lname = self.weight_layer.get(p)
            if lname is not None:
                total += self.kept[lname]
            elif any((p, d) in self.keep for d in range(t.dim())):
                total += int(torch.count_nonzero(self.param_mask(p, None)))
            else:
                total += t.numel()
        return total

    def mask(self, layer: str) -> torch.Tensor:
        """Effective bool mask of ``layer``'s weight (True = kept)."""
        info = self.layers[layer]
        return self.param_mask(info.weight, self.elem[layer])

    def _dims_of(self, param: str) -> list[int]:
        return [d for d in range(self.params[param].dim()) if (param, d) in self.keep]

    def param_mask(self, param: str, base: torch.Tensor | None, dim: int | None = None, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Mask of ``param`` (or of its slices ``idx`` along ``dim``), from the elem mask and keep vectors."""
        shape = list(self.params[param].shape)
        if idx is not None:
            shape[dim] = idx.numel()
        m = base.clone() if base is not None else torch.ones(shape, dtype=torch.bool, device=self.params[param].device)
        for d in self._dims_of(param):
            vec = self.keep[(param, d)]
            if idx is not None and d == dim:
                vec = vec[idx]
            view = [1] * len(shape)
            view[d] = vec.numel()
            m &= vec.view(view)
        return m

    def sparsity(self, layer: str) -> float:
        info = self.layers[layer]
        return 1.0 - self.kept[layer] / info.numel if info.numel else 0.0

    def pruned_count(self, layer: str) -> int:
        return self.layers[layer].numel - self.kept[layer]

    def nbytes(self) -> int:
        """Memory the masks and original values take."""
        tensors = [*self.elem.values(), *self.chan.values(), *self.keep.values(), *self.orig.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    # ---------------------------------------------------------------- writes
    def flip_elem(self, layer: str, flat_idx: torch.Tensor) -> None:
        """Flip the weight mask of ``layer`` at flat indices ``flat_idx`` and refresh those weights."""
        if flat_idx.numel() == 0:
            return
        info = self.layers[layer]
        idx = flat_idx.to(self.elem[layer].device, torch.long)
        flat = self.elem[layer].view(-1)
        if int(idx.min()) < 0 or int(idx.max()) >= flat.numel():
            raise PrunevizError(f"weight index out of range for layer {layer} with {flat.numel()} weights")
        # the neuron-derived mask matters only where some neuron is pruned (small vectors to check)
        dims = [d for d in self._dims_of(info.weight) if not bool(self.keep[(info.weight, d)].all())]
        derived = self.param_mask(info.weight, None).view(-1)[idx] if dims else None
        w = self.params[info.weight]
        if derived is None and idx.numel() * 8 > flat.numel() and w.is_contiguous():
            # a bulk flip (a global prune): one scatter into a dense flip mask, then whole-layer
            # ops, instead of gathering and scattering millions of indices three times
            fm = torch.zeros_like(flat)
            fm[idx] = True
            self._remember_counts()
            self._remember(flat)  # whole-layer copies: cheaper than gathers at this share
            self._remember(w)
            flat ^= fm
            restored = int(torch.count_nonzero(flat & fm))
            self.kept[layer] += restored - (idx.numel() - restored)
            with torch.no_grad():
                torch.mul(self.orig[info.weight].view(-1), flat.to(w.dtype), out=w.view(-1))
            self.version += 1
            return
        new = ~flat[idx]
        self._remember_counts()
        self._remember(flat, idx)
        self._remember(w.view(-1), idx)
        flat[idx] = new
        eff_new = new & derived if derived is not None else new
        # a flip changes kept status only where the derived mask keeps the weight
        restored = int(torch.count_nonzero(eff_new))
        live = idx.numel() if derived is None else int(torch.count_nonzero(derived))
        delta = restored - (live - restored)
        self.kept[layer] += delta
        with torch.no_grad():
            w.view(-1)[idx] = self.orig[info.weight].view(-1)[idx] * eff_new.to(w.dtype)
        self.version += 1

    def flip_chan(self, layer: str, idx: torch.Tensor) -> None:
        """Flip the neuron mask of ``layer`` at ``idx`` and refresh every coupled slice."""
        if idx.numel() == 0:
            return
        idx = idx.to(self.chan[layer].device, torch.long)
        n = self.chan[layer].numel()
        if int(idx.min()) < 0 or int(idx.max()) >= n:
            raise PrunevizError(f"neuron index out of range for layer {layer} with {n} neurons")
        # compute and validate every slice first; write only then
        changed = torch.zeros_like(self.chan[layer])
        changed[idx] = True
        touched: dict[tuple[str, int], torch.Tensor] = {}
        for e in self.coupling[layer].effects:
            t = e.target_idx[changed[e.root_idx]]
            if t.numel():
                key = (e.param, e.dim)
                touched[key] = torch.cat([touched[key], t]) if key in touched else t
        per_param: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
        for (p, d), t in touched.items():
            per_param[p].append((d, torch.unique(t)))
        self._remember_counts()
        self._remember(self.chan[layer], idx)
        self.chan[layer][idx] = ~self.chan[layer][idx]
        for p, slices in per_param.items():
            lname = self.weight_layer.get(p)
            full_recount = lname is not None and len(slices) > 1
            for d, t in slices:
                before = self._slice_count(p, lname, d, t) if lname is not None and not full_recount else 0
                self._remember(self.keep[(p, d)])
                self._remember(self.params[p], t, d)
                self._recompute_keep(p, d)
                m = self.param_mask(p, self.elem[lname].index_select(d, t) if lname else None, d, t)
                with torch.no_grad():
                    self.params[p].index_copy_(d, t, self.orig[p].index_select(d, t) * m.to(self.params[p].dtype))
                if lname is not None and not full_recount:
                    self.kept[lname] += int(torch.count_nonzero(m)) - before
            if full_recount:
                self.kept[lname] = int(torch.count_nonzero(self.mask(lname)))
        self.version += 1

    def _slice_count(self, p: str, lname: str, d: int, t: torch.Tensor) -> int:
        return int(torch.count_nonzero(self.param_mask(p, self.elem[lname].index_select(d, t), d, t)))

    def _recompute_keep(self, p: str, d: int) -> None:
        vec = self.keep[(p, d)]
        vec.fill_(True)
        for root, e in self.touching[(p, d)]:
            chan = self.chan[root]
            if e.target_idx.numel() == vec.numel() == chan.numel() and self._identity(e):
                vec &= chan  # the common case: channel i -> slice i
            else:
                # many root channels may map to one target (flatten): the target stays only if all do
                src = chan[e.root_idx].to(torch.uint8)
                kept = torch.ones(vec.numel(), dtype=torch.uint8, device=vec.device).scatter_reduce_(0, e.target_idx, src, "amin")
                vec &= kept.bool()

    def _identity(self, e: Effect) -> bool:
        key = id(e)
        hit = self._identity_cache.get(key)
        if hit is None:
            n = e.target_idx.numel()
            ar = torch.arange(n, device=e.target_idx.device)
            hit = bool(torch.equal(e.target_idx, ar) and torch.equal(e.root_idx, ar))
            self._identity_cache[key] = hit
        return hit

    def to(self, device: torch.device) -> None:
        """Move masks, original values and index maps to ``device`` (the model moves separately)."""
        self.device = torch.device(device)
        for store in (self.elem, self.chan, self.orig, self.keep):
            for k in store:
                store[k] = store[k].to(device)
        for lc in self.coupling.values():
            lc.effects = [Effect(e.param, e.dim, e.target_idx.to(device), e.root_idx.to(device)) for e in lc.effects]
        self.touching = defaultdict(list)
        for root, lc in self.coupling.items():
            for e in lc.effects:
                self.touching[(e.param, e.dim)].append((root, e))
        self._identity_cache.clear()



_INDEX_COPY = torch.Tensor.index_copy_  # bound once: the rollback must not depend on later patches


def _bad_effect(params: dict[str, torch.Tensor], effects: list[Effect]) -> str | None:
    """Why an effect's index map does not fit its parameter, or None when all fit."""
    for e in effects:
        p = params.get(e.param)
        if p is None:
            return f"its channels reach {e.param}, which is not a parameter of the model"
        if not 0 <= e.dim < p.dim() or (e.target_idx.numel() and (int(e.target_idx.min()) < 0 or int(e.target_idx.max()) >= p.shape[e.dim])):
            return f"its channels map to {e.param} along a dimension that does not fit the traced coupling"
    return None


def available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None  # not knowable here (macOS, Windows): go ahead


def check_memory(layers: list[LayerInfo], model: torch.nn.Module, device: torch.device) -> None:
    """Refuse before allocating when masks + original copies would not fit in free memory."""
    weights = {layer.weight for layer in layers}
    need = 0
    for name, p in model.named_parameters():
        if name in weights:
            need += p.numel() * (p.element_size() + 1)  # original copy + bool mask
    free = available_bytes(device)
    if free is not None and need > free:
        raise PrunevizError(f"pruneviz needs {need / 2**30:.1f} GiB for masks and original weights but only {free / 2**30:.1f} GiB is free on {device.type}")
