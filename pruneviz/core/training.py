"""Training a pruned model: fine-tuning, pruning schedules, regrowth, re-initialisation.

Everything here is a plain generator over shared parts (:class:`Run`): it yields a
:class:`TrainProgress` per optimizer step (and one with the held-out accuracy at each epoch
end), checks a cancel flag, and records **one** undo step when it ends, is closed or is
cancelled: the mask flips it made plus the XOR of the values it changed
(:mod:`pruneviz.core.deltas`). Pruned entries stay exactly 0 throughout: their gradients and
optimizer state are masked, and the parameters are re-masked after every step. A loss that
turns NaN or infinite, or a run that diverges (:mod:`pruneviz.core.divergence`: the running
loss above 10x its start, or the accuracy down to chance), stops the run and puts the model
back as it was. A run holds its session (:mod:`pruneviz.core.jobs`) from its first ``next()``
until it ends: the masks it re-applies every step cannot change under it.

The schedules (Zhu & Gupta's cubic gradual pruning, RigL's drop-and-grow, …) live in
:mod:`pruneviz.core.schedules`, a few lines each over :meth:`Run.epochs`, :meth:`Run.prune_to`
and :meth:`Run.regrow`.

Example::

    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.9)
    for p in s.finetune(epochs=3):
        print(p.step, p.loss, p.accuracy)
    s.undo()   # the fine-tuned weights go back, bit for bit
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn as nn

from . import deltas, losses
from . import ranking as rk
from .divergence import Watch, chance
from .data import EvalData, check_fits, open_data, same_source
from .errors import PrunevizError
from .history import Change, Flip, Step

#: name -> (optimizer class, default learning rate, extra options)
OPTIMIZERS: dict[str, tuple[type, float, dict]] = {
    "adam": (torch.optim.Adam, 1e-3, {}),
    "adamw": (torch.optim.AdamW, 1e-3, {"weight_decay": 1e-2}),
    "sgd": (torch.optim.SGD, 1e-2, {"momentum": 0.9}),
}
DEFAULT_BATCH = 32
#: the demo models' training data when none is given
DEMO_TRAIN = "demo:digits-train"


@dataclass(frozen=True)
class TrainProgress:
    """One optimizer step (``accuracy`` is set on the extra item at each epoch end)."""

    step: int
    epoch: int
    loss: float
    accuracy: float | None
    sparsity: float


@dataclass
class TrainResult:
    """What a run did: its per-epoch ``curve``, the undo step's ``label``, and its settings."""

    label: str
    curve: list[dict] = field(default_factory=list)
    steps: int = 0
    epochs: int = 0
    samples: int = 0
    lr: float = 0.0
    optimizer: str = "adam"
    batch_size: int = DEFAULT_BATCH
    data: str = ""
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "lr": self.lr, "optimizer": self.optimizer, "batch_size": self.batch_size, "samples": self.samples, "steps": self.steps, "data": self.data, "cancelled": self.cancelled, "curve": self.curve}


class NonFiniteLoss(PrunevizError):
    """The training loss became NaN or infinite; the model was put back as it was."""


def format_lr(lr: float) -> str:
    """``1e-3`` for 0.001, ``5e-4`` for 0.0005, else ``%g``."""
    mant, exp = f"{lr:.0e}".split("e")
    if float(f"{mant}e{exp}") == lr:
        return f"{mant}e{int(exp)}"
    return f"{lr:g}"


# ---------------------------------------------------------------------------------------------
# Checks


def default_lr(session, optimizer: str = "adam") -> float:
    """The optimizer's usual learning rate; for a demo model with Adam, its own training recipe's."""
    if optimizer == "adam" and session.spec.startswith("demo:"):
        from . import demo

        name = session.spec[len("demo:") :]
        if name in demo.NAMES:
            return float(demo.recipe(name)["lr"])
    return OPTIMIZERS[optimizer][1]


def check_settings(epochs, lr, optimizer: str, batch_size, session=None) -> tuple[int, float, int]:
    """Validate the common settings; returns (epochs, lr, batch size) with defaults filled in."""
    if optimizer not in OPTIMIZERS:
        raise PrunevizError(f"unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise PrunevizError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    if lr is None:
        lr = default_lr(session, optimizer) if session is not None else OPTIMIZERS[optimizer][1]
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise PrunevizError(f"the learning rate must be a number, got {lr!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise PrunevizError(f"the learning rate must be a finite number above 0, got {lr!r}")
    if batch_size is None:
        batch_size = DEFAULT_BATCH
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PrunevizError(f"the batch size must be a whole number of at least 1, got {batch_size!r}")
    return epochs, lr, batch_size


def training_data(session, data) -> tuple[EvalData, list[str]]:
    """Open the training data (a spec or EvalData; demo models default to ``demo:digits-train``),
    check it fits the model; returns it with any warnings (same data as the evaluation data)."""
    if data is None:
        if not session.spec.startswith("demo:"):
            raise PrunevizError("training needs data", hint="train_data")
        data = DEMO_TRAIN
    if isinstance(data, str):
        data = open_data(data)
    with session.lock:
        check_fits(session.model, data)
    warnings = []
    if session.data is not None and same_source(session.data.spec, data.spec):
        warnings.append(f"the training data {data.spec} is also the evaluation data: the held-out accuracy will be a training accuracy")
        session.notices.append(warnings[-1])
    return data, warnings


# ---------------------------------------------------------------------------------------------
# Shared parts


def check_trainable(session) -> list:
    """The model's trainable floating-point parameters ``[(name, parameter)]``; none is an error."""
    named = [(n, p) for n, p in session.model.named_parameters() if p.requires_grad and p.is_floating_point()]
    if not named:
        raise PrunevizError(f"{session.spec} has no trainable parameters (an exported program's weights are constants)")
    return named


class Run:
    """One training run over a session: optimizer, data order, masks, and the undo snapshot.

    Build it once the run holds the session (inside the generator): it snapshots the values and
    reads the masks. ``allow_divergence=False`` watches the run (:class:`~pruneviz.core.divergence.Watch`)."""

    def __init__(self, session, data: EvalData, lr: float, optimizer: str, batch_size: int, cancel: threading.Event | None, allow_divergence: bool = False):
        self.s = session
        self.model: nn.Module = session.model
        self.cancel = cancel
        self.lr, self.optimizer_name, self.batch_size = lr, optimizer, batch_size
        self.data = data
        self.x, self.y = data.x.to(session.device), data.y.to(session.device)
        self.extra = {k: v.to(session.device) for k, v in data.extra.items()}  #: decoder inputs, per sample
        self.n = len(data)
        self.steps_per_epoch = math.ceil(self.n / batch_size)
        self.named = check_trainable(session)
        cls, _, opts = OPTIMIZERS[optimizer]
        self.opt = cls([p for _, p in self.named], lr=lr, **opts)
        self.gen = torch.Generator().manual_seed(session.seed)
        self.rng = torch.Generator().manual_seed(session.seed)  # dropout and other model randomness
        self.random = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in self.model.modules())
        self.snapshot = deltas.Snapshot(session)
        self.flips: list[Flip] = []
        self.step = 0
        self.samples = 0
        self.curve: list[dict] = []
        self.epoch = 0
        self.after_backward: Callable[["Run"], None] | None = None
        held_out = session.data.y if session.data is not None else None
        self.watch = None if allow_divergence else Watch(data.num_classes, chance(held_out) if held_out is not None else None)
        self.refresh_masks()

    # ------------------------------------------------------------- masks
    def refresh_masks(self) -> None:
        """The 0/1 masks of every parameter with pruned entries (re-read after a flip)."""
        masks = self.s.masks
        self.masked, self.fmasks = [], []
        for n, p in self.named:
            if n in masks.orig:
                layer = masks.weight_layer.get(n)
                m = masks.param_mask(n, masks.elem[layer] if layer is not None else None)
                if not bool(m.all()):
                    self.masked.append(p)
                    self.fmasks.append(m.to(p.dtype))

    def sync_orig(self) -> None:
        """Copy trained values of kept entries into the masks' originals (the model stays orig * mask)."""
        masks = self.s.masks
        with torch.no_grad():
            for n, p in self.named:
                if n in masks.orig:
                    layer = masks.weight_layer.get(n)
                    m = masks.param_mask(n, masks.elem[layer] if layer is not None else None)
                    masks.orig[n].copy_(torch.where(m, p.detach(), masks.orig[n]))

    def flip(self, flips: list[Flip], grown: dict[str, torch.Tensor] | None = None) -> None:
        """Apply mask flips mid-run: originals synced first; ``grown`` entries (layer -> flat idx)
        start at zero; optimizer state of every now-pruned entry is cleared."""
        flips = [f for f in flips if f.idx.numel()]
        if not flips:
            return
        with self.s.lock:
            self.sync_orig()
            if grown:
                for layer, idx in grown.items():
                    w = self.s.layer(layer).weight
                    self.s.masks.orig[w].view(-1)[idx.to(self.s.masks.orig[w].device)] = 0
            self.s.apply_flips(flips)
            self.flips.extend(flips)
            self.refresh_masks()
            if self.watch is not None:
                self.watch.masks_changed()
            for p, m in zip(self.masked, self.fmasks):
                for v in self.opt.state.get(p, {}).values():
                    if isinstance(v, torch.Tensor) and v.shape == p.shape:
                        v.mul_(m)

    def layers(self) -> list[str]:
        return [layer.name for layer in self.s.layers]

    def kept(self, layer: str) -> torch.Tensor:
        return self.s.masks.mask(layer)

    def scores(self, method: str) -> dict[str, torch.Tensor]:
        """|w| (magnitude) or |w·∂L/∂w| over a few training batches (SNIP), per layer."""
        weights = {n: self.s.masks.params[self.s.layer(n).weight] for n in self.layers()}
        if method == "magnitude":
            return {n: w.detach().abs() for n, w in weights.items()}
        grads = {n: torch.zeros_like(w) for n, w in weights.items()}
        was = self.model.training
        self.model.eval()  # scores of the network as it is, BatchNorm statistics untouched
        for start in range(0, min(self.n, 4 * self.batch_size), self.batch_size):
            self.model.zero_grad(set_to_none=True)
            rows = slice(start, start + self.batch_size)
            losses.batch_loss(self.model, self.x[rows], self.y[rows], losses.take(self.extra, rows)).backward()
            for n, w in weights.items():
                if w.grad is not None:
                    grads[n] += w.grad
        self.model.zero_grad(set_to_none=True)
        self.model.train(was)
        return {n: (w.detach() * grads[n]).abs() for n, w in weights.items()}

    def prune_to(self, sparsity: float, method: str = "magnitude") -> None:
        """Prune each layer's lowest-scoring kept weights until it reaches ``sparsity`` (never restores)."""
        scores = self.scores(method)
        flips = []
        for n in self.layers():
            info = self.s.layer(n)
            k = round(sparsity * info.numel) - self.s.masks.pruned_count(n)
            if k > 0:
                sel = rk.lowest(scores[n].cpu(), self.kept(n).cpu(), k)
                flips.append(Flip.make("elem", n, sel.reshape(-1).nonzero().flatten(), info.numel))
        self.flip(flips)

    def regrow(self, fraction: float) -> None:
        """RigL's update, per layer: drop the ``fraction`` of kept weights with the smallest
        magnitude, grow as many pruned ones where the dense gradient is largest (they start at 0)."""
        flips, grown = [], {}
        for n in self.layers():
            info = self.s.layer(n)
            w = self.s.masks.params[info.weight]
            if w.grad is None:
                continue
            kept = self.kept(n).reshape(-1)
            k = min(int(fraction * rk.count(kept)), int((~kept).sum()))
            if k <= 0:
                continue
            drop = rk.lowest(w.detach().abs().reshape(-1), kept, k)
            grow = rk.lowest(-w.grad.detach().abs().reshape(-1), ~kept, k)  # not just-dropped: they were kept
            idx = (drop | grow).nonzero().flatten()
            flips.append(Flip.make("elem", n, idx, info.numel))
            grown[n] = grow.nonzero().flatten()
        self.flip(flips, grown)

    # ------------------------------------------------------------ training
    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _batch(self, idx: torch.Tensor) -> float:
        xb, yb, eb = self.x[idx], self.y[idx], losses.take(self.extra, idx)
        with self.s.lock:
            self.model.train()  # BatchNorm learns its statistics; back to eval before anyone else looks
            try:
                return self._train_step(xb, yb, eb)
            finally:
                self.model.eval()

    def _train_step(self, xb, yb, eb=None) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = losses.batch_loss(self.model, xb, yb, eb)
        loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"the training loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}): stopped, and the model is back as it was before training; try a lower learning rate")
        if self.after_backward is not None:
            self.after_backward(self)
        if self.masked:
            torch._foreach_mul_([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.masked], self.fmasks)
        self.opt.step()
        if self.masked:
            with torch.no_grad():
                torch._foreach_mul_(self.masked, self.fmasks)
        return value

    def epochs(self, count: int, on_step: Callable[["Run"], None] | None = None) -> Iterator[TrainProgress]:
        """Train ``count`` epochs; ``on_step(run)`` runs before each step (schedules prune there)."""
        for _ in range(count):
            perm = torch.randperm(self.n, generator=self.gen).to(self.x.device)
            total, seen = 0.0, 0
            for start in range(0, self.n, self.batch_size):
                if self.cancel is not None and self.cancel.is_set():
                    return
                idx = perm[start : start + self.batch_size]
                if len(idx) < 2 and self.n > 1:
                    continue  # BatchNorm cannot train on one sample
                if on_step is not None:
                    on_step(self)
                loss = self._step_seeded(idx)
                self.step += 1
                self.samples += len(idx)
                if self.watch is not None:
                    self.watch.loss(loss, self.step, self.epoch + 1)
                total, seen = total + loss * len(idx), seen + len(idx)
                yield TrainProgress(self.step, self.epoch + 1, loss, None, self.s.sparsity())
            self.epoch += 1
            acc = self.accuracy()
            if self.watch is not None:
                self.watch.epoch_end(self.step, self.epoch, acc)
            point = {"epoch": self.epoch, "sparsity": self.s.sparsity(), "loss": total / max(seen, 1), "accuracy": acc}
            self.curve.append(point)
            yield TrainProgress(self.step, self.epoch, point["loss"], acc, point["sparsity"])

    def _step_seeded(self, idx) -> float:
        if not self.random:
            return self._batch(idx)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng.get_state())
            loss = self._batch(idx)
            self.rng.set_state(torch.get_rng_state())
        return loss

    def accuracy(self) -> float | None:
        """Held-out accuracy on the session's evaluation data (None without data)."""
        if self.s.data is None:
            return None
        deltas.invalidate(self.s)
        return self.s.evaluate(incremental=False).accuracy

    # -------------------------------------------------------------- ending
    def commit(self, label: str) -> None:
        """Record the run as one undo step (nothing when nothing changed) and announce it."""
        with self.s.lock:
            self.sync_orig()
            delta = self.snapshot.delta(self.s)
            deltas.invalidate(self.s)
        if delta is None and not self.flips:
            return
        deltas.record(self.s, Step(label, list(self.flips), weights=delta))
        self.s.changed.emit(Change(label, frozenset(self.layers())))

    def abort(self) -> None:
        """Put masks and values back as they were before the run; nothing is recorded."""
        with self.s.lock:
            self.s.apply_flips(list(reversed(self.flips)))
            self.flips = []
            self.snapshot.restore(self.s)
        self.model.eval()


def drive(run: Run, body: Iterator[TrainProgress], label: Callable[[Run], str], result: TrainResult) -> Iterator[TrainProgress]:
    """Run ``body``; record one undo step however it ends (an error restores everything instead)."""
    ok = False
    try:
        yield from body
        ok = True
    except GeneratorExit:
        ok = True  # closed by the caller: keep what the completed steps did
        raise
    except BaseException:
        run.abort()
        raise
    finally:
        if ok:
            result.cancelled = run.cancelled
            result.curve, result.steps, result.samples = run.curve, run.step, run.samples
            result.epochs = run.epoch
            result.label = label(run)
            run.commit(result.label)
    return result


# ---------------------------------------------------------------------------------------------
# Verbs


def finetune(session, epochs: int = 1, lr: float | None = None, data=None, optimizer: str = "adam", batch_size: int | None = None, cancel: threading.Event | None = None, allow_divergence: bool = False):
    """Generator: train the kept weights ``epochs`` epochs; see :meth:`Session.finetune`."""
    session.check_writable()  # another job holds the session: refused at the call
    epochs, lr, batch_size = check_settings(epochs, lr, optimizer, batch_size, session)
    data, warnings = training_data(session, data)
    check_trainable(session)
    result = TrainResult("", lr=lr, optimizer=optimizer, batch_size=batch_size, data=data.spec, warnings=warnings)

    def label(r: Run) -> str:
        done = "" if r.epoch == epochs else f", stopped after {r.step} steps"
        return f"fine-tune {epochs} epoch{'s' if epochs != 1 else ''} (lr {format_lr(lr)}){done}"

    def body():
        run = Run(session, data, lr, optimizer, batch_size, cancel, allow_divergence)
        if run.watch is not None and run.watch.chance is not None:
            run.watch.start_accuracy = session.evaluate().accuracy  # what "fell to chance" is measured from
        return (yield from drive(run, run.epochs(epochs), label, result))

    return session.hold("fine-tune", body(), "Fine-tuning")


# ---------------------------------------------------------------------------------------------
# Re-initialisation


def check_reinitializable(session) -> None:
    if not any(callable(getattr(m, "reset_parameters", None)) for m in session.model.modules()):
        raise PrunevizError(f"cannot re-initialise {session.spec}: it holds no layer definitions to reset (open a state_dict)", hint="arch")


def reset(session, seed: int) -> None:
    """Fresh values from each layer's own initialiser, seeded; masks kept (pruned stay 0)."""
    masks = session.masks
    with session.lock, torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in session.model.modules():
            fn = getattr(m, "reset_parameters", None)
            if callable(fn):
                fn()
        for n, t in masks.orig.items():
            t.copy_(masks.params[n].detach())
        deltas.refresh(session, list(masks.orig))
        deltas.invalidate(session)


def reinitialize(session, seed: int) -> str:
    """See :meth:`Session.reinitialize`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise PrunevizError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    check_reinitializable(session)
    label = f"re-initialise (seed {seed})"
    with session.writing():  # refused while a job runs; no job begins until it is recorded
        snap = deltas.Snapshot(session)
        try:
            reset(session, seed)
        except BaseException:
            snap.restore(session)
            raise
        delta = snap.delta(session)
        if delta is not None:
            deltas.record(session, Step(label, [], weights=delta))
    if delta is not None:
        session.changed.emit(Change(label, frozenset(layer.name for layer in session.layers)))
    return label


def complete(gen) -> TrainResult:
    """Drive a training generator to its end; returns its :class:`TrainResult`."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
