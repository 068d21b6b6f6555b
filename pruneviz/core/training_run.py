"""One training run over a session (:class:`Run`): optimizer, data order, masks, the held-out
curve and the undo step, shared by fine-tuning and every pruning schedule
(:mod:`pruneviz.core.training`, :mod:`pruneviz.core.schedules`).

A run changes values through one :class:`~pruneviz.core.weight_edit.WeightEdit` (made by
:meth:`Session.edit_weights` when the run begins): the optimizer trains the live parameters, and
the trained values of kept entries are written back through the edit (:meth:`Run.sync_orig`)
before every mask flip and at the end; :meth:`Run.commit` records the edit as one undo step,
:meth:`Run.abort` puts everything back. Pruned entries stay exactly 0 throughout: their gradients
and optimizer state are masked, and the parameters are re-masked after every step.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn as nn

from . import losses
from . import ranking as rk
from .data import EvalData
from .divergence import Watch, chance
from .errors import PrunevizError
from .history import Flip

#: name -> (optimizer class, default learning rate, extra options)
OPTIMIZERS: dict[str, tuple[type, float, dict]] = {
    "adam": (torch.optim.Adam, 1e-3, {}),
    "adamw": (torch.optim.AdamW, 1e-3, {"weight_decay": 1e-2}),
    "sgd": (torch.optim.SGD, 1e-2, {"momentum": 0.9}),
}
DEFAULT_BATCH = 32


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
        #: the run's one change of values and masks: committed or aborted when the run ends
        self.edit = session.edit_weights()
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

    @property
    def flips(self) -> list[Flip]:
        """The mask flips the run made so far."""
        return self.edit.flips

    def sync_orig(self) -> None:
        """Write the trained values of kept entries back as the values masks keep (through the
        run's edit; the live parameters already hold them, so the model stays orig * mask)."""
        masks = self.s.masks
        for n, p in self.named:
            if n in masks.orig:
                self.edit.write(n, p, where=self.s.editable.kept_mask(n), refresh=False)

    def flip(self, flips: list[Flip], grown: dict[str, torch.Tensor] | None = None) -> None:
        """Apply mask flips mid-run: originals synced first; ``grown`` entries (layer -> flat idx)
        start at zero; optimizer state of every now-pruned entry is cleared."""
        flips = [f for f in flips if f.idx.numel()]
        if not flips:
            return
        with self.s.lock:
            self.sync_orig()
            for layer, idx in (grown or {}).items():  # regrown entries start at 0
                info = self.s.layer(layer)
                where = torch.zeros(info.numel, dtype=torch.bool)
                where[idx.cpu()] = True
                self.edit.write(info.weight, torch.zeros(info.shape), where=where.view(info.shape), refresh=False)
            self.edit.flip(flips)
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
        self.edit.changed()
        return self.s.evaluate(incremental=False).accuracy

    # -------------------------------------------------------------- ending
    def commit(self, label: str) -> None:
        """Record the run as one undo step (nothing when nothing changed) and announce it."""
        with self.s.lock:
            self.sync_orig()
            change = self.edit.commit(label, emit=False)
        if change is not None:
            self.s.changed.emit(change)

    def abort(self) -> None:
        """Put masks and values back as they were before the run; nothing is recorded."""
        self.edit.abort()
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


