"""Evaluation as a generator: yields progress per batch, then the result; closing it cancels.

``evaluate_iter`` walks the evaluation set in a fixed shuffled order, so the running accuracy
after any number of batches is an honest sample estimate; each :class:`Progress` carries it with
a 95% Wilson interval. The last item yielded is the :class:`EvalResult`.

For ``nn.Sequential`` models, an :class:`ActivationCache` keeps the inputs that enter the
children (within a byte budget). An edit to child *k* cannot change anything before *k*, so the
next evaluation starts from the last cached point at or before the earliest changed child; the
result is the same computation on the same tensors, so it is identical to a full pass. Other
models are traced once and cached at the cuts of their graph in the same way
(:mod:`pruneviz.core.incremental`); a model that cannot be traced is evaluated in full.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn

from .inplace import leaves_input_alone
from .errors import PrunevizError
from . import losses
from .outputs import logits


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    loss: float
    samples: int
    device: str
    per_class: list[float]
    correct: int
    #: where the evaluation started (0 = full pass; k = from the cached input of child k, or from
    #: the cached values at cut k of the model's graph)
    start: int = 0
    #: "fp32", or "amp-fp16" / "amp-bf16" when mixed precision was on (results may differ slightly)
    precision: str = "fp32"
    #: language-model data: the number of predicted tokens (accuracy and loss are per token), else 0
    tokens: int = 0

    @property
    def perplexity(self) -> float | None:
        """exp(mean next-token loss) for language-model data, else None."""
        return math.exp(min(self.loss, 700.0)) if self.tokens else None

    def to_json(self) -> dict:
        out = {"accuracy": self.accuracy, "loss": self.loss, "samples": self.samples, "device": self.device, "per_class": self.per_class}
        if self.tokens:
            out.update(tokens=self.tokens, perplexity=self.perplexity)
        return out


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    accuracy: float
    low: float
    high: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for ``correct`` successes out of ``n``."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a named device must exist here."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise PrunevizError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PrunevizError("no CUDA device here", hint="device")
    if dev.type == "mps" and not _mps():
        raise PrunevizError("no Apple MPS device here", hint="device")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise PrunevizError(f"unsupported device {device!r}: use auto, cpu, cuda or mps")
    return dev


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


@dataclass
class ActivationCache:
    """Inputs entering the children of a Sequential model, batch by batch.

    ``points[k]`` holds the list of per-batch inputs to child ``k`` once a full run has stored
    them. ``invalidate(k)`` drops every point after child ``k``. ``generation`` guards against a
    run that started before an invalidation committing stale tensors.
    """

    budget_bytes: int = 512 * 1024**2
    points: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    generation: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: batch bounds the stored points were made with (another batching cannot use them)
    bounds: list[tuple[int, int]] | None = None
    #: False: use the stored points but store no new ones (an edit that is undone right after
    #: its evaluation would only copy activations that the undo then drops)
    store: bool = True
    #: other models: their captured graph (keys of ``points`` are then cut positions), the reason
    #: it cannot be used (a str), or None before the first evaluation tried
    graph: object = None
    #: a one-line notice for the user (why evaluation is not incremental), said once
    note: str | None = None
    #: the earliest points the latest edits changed, most recent first (which cuts to keep)
    recent: list[int] = field(default_factory=list)
    #: where the last evaluation started, for people ("the input", "child 5", "after layer4.0 …")
    last_start: str = ""
    #: bytes of cuts that may be kept in host memory beyond ``budget_bytes`` (None: automatic, on
    #: a GPU only; 0: never; see :mod:`pruneviz.core.spill`)
    host_budget_bytes: int | None = None

    def position(self, model: nn.Module, modules) -> int | None:
        """The earliest point (Sequential child, or node of the captured graph) an edit of
        ``modules`` can change; None when it cannot be told (everything is then dropped)."""
        modules = list(modules)
        if cacheable(model):
            found = [child_index(model, m) for m in modules]
            return None if any(c is None for c in found) else min(found, default=None)
        from .incremental import position

        return position(self, model, modules)

    def invalidate_modules(self, model: nn.Module, modules) -> None:
        """Drop what an edit of ``modules`` can change: every point after the earliest one it
        reads (:meth:`position`); remembers that point, so the cut before it is kept next time."""
        modules = list(modules)
        if not modules:
            return
        first = self.position(model, modules)
        with self.lock:
            if first is not None:
                self.recent = [first, *[r for r in self.recent if r != first]][:4]
            self.invalidate(-1 if first is None else first)

    def invalidate(self, child: int) -> None:
        with self.lock:
            self.generation += 1
            for k in [k for k in self.points if k > child]:
                del self.points[k]
            if not self.points:
                self.bounds = None

    def clear(self) -> None:
        self.invalidate(-1)

    @property
    def nbytes(self) -> int:
        """Bytes held on the evaluation's device (cuts spilled to host memory not counted)."""
        from .spill import Spilled

        with self.lock:  # the worker thread may be adding points
            return sum(_nbytes(t) for ts in self.points.values() if not isinstance(ts, Spilled) for t in ts)


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return sum(_nbytes(v) for v in value) if isinstance(value, (tuple, list)) else 0


def child_index(model: nn.Module, layer_name: str) -> int | None:
    """Index of the top-level Sequential child that contains ``layer_name``."""
    if not isinstance(model, nn.Sequential):
        return None
    head = layer_name.split(".", 1)[0]
    names = [n for n, _ in model.named_children()]
    return names.index(head) if head in names else None


def order(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def batches(n: int, batch_size: int, first: int | None = None) -> list[tuple[int, int]]:
    """Batch bounds: a small first batch (a quick first estimate), then ``batch_size`` each."""
    if batch_size < 1:
        raise PrunevizError(f"batch size must be at least 1, got {batch_size}")
    first = min(first or batch_size, batch_size)
    bounds = [(0, min(first, n))] if n else []
    i = bounds[0][1] if bounds else 0
    while i < n:
        bounds.append((i, min(i + batch_size, n)))
        i += batch_size
    return bounds


def cacheable(model: nn.Module) -> bool:
    """True when running the children one after another is exactly ``model(x)``: a plain
    ``nn.Sequential`` (no overridden ``forward``) whose children are all distinct modules."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return False
    children = list(model._modules.values())
    return len(children) == len({id(c) for c in children}) and all(c is not None for c in children)


def evaluate_iter(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 256,
    cache: ActivationCache | None = None,
    num_classes: int | None = None,
    cancel: threading.Event | None = None,
    first_batch: int | None = 32,
    amp: bool = False,
    extra: dict[str, torch.Tensor] | None = None,
) -> Iterator[Progress | EvalResult]:
    """Evaluate ``model`` on ``x``/``y`` (already on the model's device, already in evaluation order).

    Yields a :class:`Progress` after every batch and finally an :class:`EvalResult`. Stop early by
    closing the generator or setting ``cancel``. With a ``cache`` (Sequential models only) the run
    starts from the latest cached child input and stores later ones for next time: after the
    first batch it keeps the points nearest the output that fit in ``cache.budget_bytes``.
    ``extra``: per-sample keyword arrays in the same order as ``x`` (encoder–decoder data), cut
    with every batch and passed to the model (no cache then: children take one input).
    """
    device = x.device
    n = len(x)
    bounds = batches(n, batch_size, first_batch)
    children = list(model._modules.values()) if cache is not None and not extra and cacheable(model) else None
    graph = None
    if cache is not None and children is None and not extra and n and cache.budget_bytes > 0:
        from . import incremental

        graph = incremental.graph_for(model, cache, x[: min(n, 2)])
    start = 0
    if children is not None:
        with cache.lock:
            if cache.bounds != bounds:  # made with another batch size or data: useless now
                cache.invalidate(-1)
            start = max(cache.points, default=0)
            generation = cache.generation
            cached = cache.points.get(start)
        new_points: dict[int, list[torch.Tensor]] = {k: [] for k in range(start + 1, len(children))} if cache.store else {}
        keeps_input = start > 0 and leaves_input_alone(children[start])
        cache.last_start = f"child {start} ({type(children[start]).__name__})" if start else "the input"
    elif graph is not None:
        gpass = incremental.GraphPass(graph, model, cache, bounds)
        start, generation = gpass.start, gpass.generation
        cache.last_start = graph.describe(start)
    elif cache is not None:
        cache.last_start = "the input (full pass)"
    correct = 0
    tokens = 0
    loss_sum = 0.0
    classes = num_classes
    per_correct = per_total = None
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    precision = f"amp-{'fp16' if amp_dtype == torch.float16 else 'bf16'}" if amp else "fp32"
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for b, (i, j) in enumerate(bounds):
            if cancel is not None and cancel.is_set():
                return
            xb, yb = x[i:j], y[i:j]
            if graph is not None:
                try:
                    out = logits(gpass.forward(b, xb))
                except torch.OutOfMemoryError:
                    raise
                except Exception as exc:  # e.g. an exported graph's shape guard: the model itself from here on
                    incremental.give_up(cache, exc)
                    graph = None
                    out = logits(losses.forward(model, xb))
                else:
                    if b == 0:
                        gpass.fit_budget(j - i, n)
            elif children is None:
                out = logits(losses.forward(model, xb, losses.take(extra, slice(i, j))))
            else:
                # copies in and out of the cache: a child may write its input in place (one
                # known to leave it alone reads the cached tensor as it is)
                h = (cached[b] if keeps_input else cached[b].clone()) if start > 0 else xb
                for k in range(start, len(children)):
                    if k in new_points:
                        new_points[k].append(h.clone())
                    h = children[k](h)
                out = h
                if b == 0 and new_points:
                    new_points = _fit_budget(new_points, cache, (j - i), n)
            if yb.dim() == 2:  # language model: every token is a prediction (padding, -100, is not)
                out, yb = losses.flat(out, yb)
                keep = yb != losses.IGNORE_INDEX
                if not bool(keep.all()):
                    out, yb = out[keep], yb[keep]
                tokens += len(yb)
            if classes is None:
                classes = out.shape[1]
            if per_correct is None:
                per_correct = torch.zeros(classes, dtype=torch.long, device=device)
                per_total = torch.zeros(classes, dtype=torch.long, device=device)
            loss_sum += float(losses.task_loss(out, yb, reduction="sum"))
            hit = out.argmax(1) == yb
            correct += int(hit.sum())
            if not tokens:  # per-class accuracy over a vocabulary would be noise
                per_total += torch.bincount(yb, minlength=classes)[:classes]
                per_correct += torch.bincount(yb[hit], minlength=classes)[:classes]
            seen = tokens or j
            lo, hi = wilson(correct, seen)
            yield Progress(j, n, correct / seen, lo, hi)
    if graph is not None:
        new_points = gpass.new_points
    if children is not None or graph is not None:
        with cache.lock:
            if cache.generation == generation:
                for k, ts in new_points.items():
                    if len(ts) == len(bounds) and k not in cache.points:
                        cache.points[k] = ts
                cache.bounds = bounds
    pt = per_total.cpu().tolist() if per_total is not None and not tokens else []
    pc = per_correct.cpu().tolist() if per_correct is not None and not tokens else []
    count = tokens or n
    yield EvalResult(
        accuracy=correct / count if count else 0.0,
        loss=loss_sum / count if count else 0.0,
        samples=n,
        device=device_name(device),
        per_class=[c / t if t else float("nan") for c, t in zip(pc, pt)],
        correct=correct,
        start=start,
        precision=precision,
        tokens=tokens,
    )


def _fit_budget(points: dict[int, list[torch.Tensor]], cache: ActivationCache, first: int, n: int) -> dict[int, list[torch.Tensor]]:
    """Keep the points nearest the output whose full size (estimated from the first batch) fits."""
    left = cache.budget_bytes - cache.nbytes
    kept = {}
    for k in sorted(points, reverse=True):
        t = points[k][0]
        size = t.numel() * t.element_size() * n // max(first, 1)
        if size <= left:
            kept[k] = points[k]
            left -= size
    return kept


def run(gen: Iterator[Progress | EvalResult]) -> EvalResult:
    """Drain an evaluation generator and return its result."""
    result = None
    for item in gen:
        result = item
    assert isinstance(result, EvalResult)
    return result
