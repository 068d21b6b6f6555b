"""What compensation sees of a layer: its weight as groups of least-squares rows, and ``H = X Xᵀ``
of its inputs gathered over calibration batches with bounded memory.

A layer is ``G`` independent problems (``G`` = the convolution's ``groups``; 1 for Linear, Conv1d,
Conv2d and Hugging Face's Conv1D): group ``g`` has ``rows`` output channels and ``cols`` inputs
(in_channels/groups × kernel positions). :class:`LayerView` reshapes the weight and its mask to
``[G, rows, cols]`` and back, and turns an input batch into ``[G, cols, positions]``. H is summed
over batches (and over chunks of a batch, so an unfolded convolution input never exceeds
:data:`CHUNK_BYTES`); the whole activation matrix is never held.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import PrunevizError
from .inventory import is_conv1d

#: bytes one unfolded chunk of a layer's input may take (float32) while H is accumulated
CHUNK_BYTES = 64 * 2**20
#: bytes the cached inputs of one nn.Sequential child (all calibration samples) may take
CACHE_BYTES = 1 * 2**30


class _Stop(Exception):
    """Raised by the calibration hook once the layer's input is taken: the rest of the model is not run."""


@dataclass(frozen=True)
class LayerView:
    """A layer as ``groups`` least-squares problems of ``rows`` outputs over ``cols`` inputs."""

    module: nn.Module
    groups: int
    rows: int
    cols: int
    transposed: bool = False  # Hugging Face Conv1D: weight stored [in, out]

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """A weight-shaped tensor (weight or mask) as ``[groups, rows, cols]``."""
        if self.transposed:
            t = t.t()
        return t.reshape(self.groups, self.rows, self.cols)

    def join(self, t: torch.Tensor, shape) -> torch.Tensor:
        """Inverse of :meth:`split`."""
        if self.transposed:
            return t.reshape(shape[1], shape[0]).t()
        return t.reshape(shape)

    def columns(self, inp: torch.Tensor, chunk_bytes: int = CHUNK_BYTES):
        """Yield the input batch ``inp`` as ``[groups, cols, positions]`` float32 chunks."""
        m = self.module
        if isinstance(m, nn.Linear) or self.transposed:
            x = inp.reshape(-1, inp.shape[-1])
            step = max(1, chunk_bytes // (4 * self.cols))
            for s in range(0, len(x), step):
                yield x[s : s + step].to(torch.float32).t().unsqueeze(0)
            return
        x = inp if isinstance(m, nn.Conv2d) else inp.unsqueeze(-2)  # Conv1d as a 1-row Conv2d
        x, pad = _padded(m, x)
        kernel, dilation, stride = (_pair2(m, a) for a in ("kernel_size", "dilation", "stride"))
        per_sample = self.groups * self.cols * _positions(x.shape[-2:], kernel, dilation, pad, stride) * 4
        step = max(1, chunk_bytes // max(per_sample, 1))
        for s in range(0, len(x), step):
            u = F.unfold(x[s : s + step].to(torch.float32), kernel, dilation=dilation, padding=pad, stride=stride)
            # [n, G·cols, L] -> [G, cols, n·L]
            yield u.reshape(u.shape[0], self.groups, self.cols, u.shape[-1]).permute(1, 2, 0, 3).reshape(self.groups, self.cols, -1)


def _pair2(m: nn.Module, attr: str) -> tuple[int, int]:
    v = getattr(m, attr)
    if isinstance(m, nn.Conv1d):
        return (1, v[0])
    return tuple(v)


def _positions(hw, kernel, dilation, pad, stride) -> int:
    n = 1
    for size, k, d, p, s in zip(hw, kernel, dilation, pad, stride):
        n *= max(0, (size + 2 * p - d * (k - 1) - 1) // s + 1)
    return n


def _padded(m: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Apply the convolution's padding the way it does; returns the input and the symmetric
    zero padding left for ``unfold``."""
    kernel, dilation = _pair2(m, "kernel_size"), _pair2(m, "dilation")
    if isinstance(m.padding, str):  # "valid" / "same" (stride 1): torch pads the right side more
        if m.padding == "valid":
            amounts = [(0, 0), (0, 0)]
        else:
            amounts = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                amounts.append((total // 2, total - total // 2))
    else:
        p = _pair2(m, "padding")
        amounts = [(p[0], p[0]), (p[1], p[1])]
    if m.padding_mode == "zeros" and all(a == b for a, b in amounts):
        return x, (amounts[0][0], amounts[1][0])
    flat = (amounts[1][0], amounts[1][1], amounts[0][0], amounts[0][1])  # F.pad: last dim first
    mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
    if mode != "constant" and isinstance(m, nn.Conv1d):  # reflect/replicate/circular of a 1-D input
        return F.pad(x.squeeze(-2), flat[:2], mode=mode).unsqueeze(-2), (0, 0)
    return F.pad(x, flat, mode=mode), (0, 0)


def view_of(name: str, module: nn.Module) -> LayerView:
    """The :class:`LayerView` of a layer compensation can handle; refuses any other with the reason."""
    w = getattr(module, "weight", None)
    if is_conv1d(module):
        return LayerView(module, 1, w.shape[1], w.shape[0], transposed=True)
    if isinstance(module, nn.Linear):
        return LayerView(module, 1, w.shape[0], w.shape[1])
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and not isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        g = module.groups
        return LayerView(module, g, w.shape[0] // g, w[0].numel())
    raise PrunevizError(f"cannot compensate {name}: supported are Linear, Conv1d, Conv2d (any groups, depthwise included) and Hugging Face's Conv1D, not {type(module).__name__}; prune it without compensation")


def hessian_bytes(view: LayerView) -> int:
    """Float64 bytes of the layer's H (all groups)."""
    return view.groups * view.cols * view.cols * 8


def call_counts(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor) -> tuple[list[str], dict[str, int]]:
    """The names of ``modules`` in the order ``model`` first calls them on ``x``, and how often each is called."""
    seen: list[str] = []
    count: dict[str, int] = {}

    def hook(m, i, o, n):
        count[n] = count.get(n, 0) + 1
        if n not in seen:
            seen.append(n)

    hooks = [m.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen + [n for n in modules if n not in seen], count


def _sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


class Feeder:
    """Runs the calibration batches up to a layer, through the model as it is now.

    Without help that is the model's own forward from its input, stopped at the layer. Where the
    layer sits in a plain ``nn.Sequential`` (called once a forward), the inputs of the Sequential's
    child holding it are cached (all samples, at most :data:`CACHE_BYTES`): the next layers of the
    same child start from that cache, and a later child's inputs come from running the children in
    between on it, so a deep chain (ResNet's stages, demo:mlp) is not re-run from the model's
    input for every layer. Where the next Sequential's input is the previous one's output, passed
    on unchanged (seen once in a traced forward: the same tensor object at the same version, as
    ResNet's ``layer2(layer1(x))``), its cache is the previous cache run through the previous
    Sequential's remaining children, not a new run from the model's input. Call :meth:`feed` in
    forward order."""

    def __init__(self, model: nn.Module, x: torch.Tensor, batch: int, calls: dict[str, int], cache_bytes: int | None = None):
        self.model, self.x, self.batch, self.calls = model, x, batch, calls
        self.cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
        self.modules = dict(model.named_modules())
        self.at: tuple[str, int] | None = None  # (Sequential, child index) the cache holds inputs of
        self.cache: list[torch.Tensor] = []
        self.fed_by = self._links()  # before any calibration hook is on the model
        self.refused: set[str] = set()  # Sequentials whose inputs could not be cached: not tried again

    def _place(self, name: str) -> tuple[str, int] | None:
        """(outermost plain Sequential holding ``name``, index of its child on the way), if any."""
        parts = name.split(".")
        for depth in range(len(parts)):
            seq = ".".join(parts[:depth])
            m = self.modules.get(seq)
            if m is not None and _sequential(m) and self.calls.get(seq, 0) == 1 and self.calls.get(name, 0) == 1:
                child = parts[depth]
                keys = list(m._modules)
                return seq, keys.index(child)
        return None

    def _model_batches(self):
        return [self.x[s : s + self.batch] for s in range(0, len(self.x), self.batch)]

    def _capture(self, seq: str) -> bool:
        """Cache the inputs of ``seq`` from the model's input; False when they would not fit."""
        got: list[torch.Tensor] = []

        def hook(m, inputs):
            got.append(inputs[0].detach())
            raise _Stop

        handle = self.modules[seq].register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                for k, xb in enumerate(self._model_batches()):
                    try:
                        self.model(xb)
                    except _Stop:
                        pass
                    if len(got) != k + 1:
                        return False  # not reached once per batch: no cache
                    if got[0].numel() * got[0].element_size() * len(self.x) / max(1, len(got[0])) > self.cache_bytes:
                        return False  # the cache would not fit: run from the model's input instead
        finally:
            handle.remove()
        self.cache = got
        return len(got) > 0

    def _advance(self, children: list[nn.Module], start: int, end: int) -> bool:
        """Run the cache through ``children[start:end]`` in place (one cache and one batch at a
        time); False (and no cache) when it would outgrow :attr:`cache_bytes`."""
        with torch.no_grad():
            for j in range(start, end):
                for k, c in enumerate(self.cache):
                    self.cache[k] = children[j](c)
                    if k == 0 and self.cache[0].numel() * self.cache[0].element_size() * len(self.x) / max(1, len(self.cache[0])) > self.cache_bytes:
                        self.cache = []
                        return False
        return True

    def _links(self) -> dict[str, str]:
        """``{S: P}`` for plain Sequentials called once where S's input is P's output, the same
        tensor not changed in between, in one traced forward over two calibration samples."""
        seqs = {n: m for n, m in self.modules.items() if _sequential(m) and self.calls.get(n, 0) == 1}
        if len(seqs) < 2:
            return {}
        outs: dict[str, tuple[torch.Tensor, int]] = {}
        links: dict[str, str] = {}

        def post(m, i, o, n):
            if isinstance(o, torch.Tensor):
                outs[n] = (o, o._version)

        def pre(m, i, n):
            for p, (t, v) in outs.items():
                if i and i[0] is t and t._version == v:
                    links[n] = p

        hooks = [m.register_forward_hook(lambda m, i, o, n=n: post(m, i, o, n)) for n, m in seqs.items()]
        hooks += [m.register_forward_pre_hook(lambda m, i, n=n: pre(m, i, n)) for n, m in seqs.items()]
        try:
            with torch.no_grad():
                self.model(self.x[:2])
        finally:
            for h in hooks:
                h.remove()
        return links

    def feed(self, name: str, cancel=None):
        """Yield once per calibration batch after running it up to ``name``; the caller's hook on
        the layer gathers its inputs (and may raise the private stop signal)."""
        place = self._place(name)
        if place is not None:
            seq, idx = place
            if self.at is not None and self.at[0] != seq and self.fed_by.get(seq) == self.at[0]:
                prev = list(self.modules[self.at[0]]._modules.values())
                self.at = (seq, 0) if self._advance(prev, self.at[1], len(prev)) else None
            if (self.at is None or self.at[0] != seq or self.at[1] > idx) and seq not in self.refused:
                if self._capture(seq):
                    self.at = (seq, 0)
                else:
                    self.at, self.cache = None, []
                    self.refused.add(seq)
            if self.at is not None and self.at[0] == seq:
                children = list(self.modules[seq]._modules.values())
                if self._advance(children, self.at[1], idx):
                    self.at = (seq, idx)
                else:
                    self.at = None
                    self.refused.add(seq)
            if self.at is not None and self.at[0] == seq:
                runs = [(children[idx], c) for c in self.cache]
            else:
                runs = [(self.model, xb) for xb in self._model_batches()]
        else:
            self.at, self.cache = None, []
            runs = [(self.model, xb) for xb in self._model_batches()]
        with torch.no_grad():
            for module, xb in runs:
                if cancel is not None and cancel.is_set():
                    return
                try:
                    module(xb)
                except _Stop:
                    pass
                yield


def accumulate(feeder: Feeder, view: LayerView, name: str, h: torch.Tensor, stop_early: bool = True, cancel=None, chunk_bytes: int | None = None) -> int:
    """Add ``X Xᵀ`` of the inputs reaching layer ``name`` to ``h`` ([G, cols, cols] float64), one
    calibration batch at a time; with ``stop_early`` the run stops at the layer. Returns the
    number of input positions (rows of X) seen."""
    seen = 0
    chunk = CHUNK_BYTES if chunk_bytes is None else chunk_bytes

    def hook(m, inputs):
        nonlocal seen
        for cols in view.columns(inputs[0].detach(), chunk):
            h.add_(torch.bmm(cols, cols.transpose(1, 2)).to(torch.float64))  # float32 per chunk, float64 sum
            seen += cols.shape[-1]
        if stop_early:
            raise _Stop

    handle = view.module.register_forward_pre_hook(hook)
    try:
        for _ in feeder.feed(name, cancel):
            pass
    finally:
        handle.remove()
    return seen


def describe_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


