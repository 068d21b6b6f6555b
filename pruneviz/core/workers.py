"""Workers that evaluate lists of mask edits for the analyses, on this machine or on Ray.

A :class:`Probe` owns a copy of a session's :class:`~pruneviz.core.editable.EditableModel` (model,
masks, activation cache, and the session's own rule for applying flips and dropping the cached
activations after the earliest changed child) and of its evaluation tensors. It evaluates *edits*: each edit is a list of mask flips that is applied, evaluated and
flipped back, so the probe ends every edit in the state it started from and the session it was
copied from is never touched (an analysis cannot leave it half-edited, even when it is
cancelled or fails, and the app's views never see a temporary state).

Evaluation is the session's own (:func:`pruneviz.core.evaluate.evaluate_iter` with an
:class:`~pruneviz.core.evaluate.ActivationCache`): the probe starts with the session's cached
activations and an edit re-evaluates from the cached input of the earliest Sequential child it
changes, or, for other models, from the latest cached cut of the graph before it.

:func:`run_edits` sends edits to a worker and streams back one figures dict per edit: with
``ray=None`` the edits run here, one after another, on one probe; with Ray the probe goes to the
object store once, each Ray task evaluates a contiguous run of edits on its own copy, and the
figures come back as tasks finish. The figures are the same either way (same tensors, same
batches; incremental evaluation is exactly a full pass).
"""

from __future__ import annotations

import threading
from typing import Hashable, Iterable, Iterator, Sequence

from . import evaluate as ev
from .errors import PrunevizError
from .history import Flip

Edit = tuple[Hashable, list[Flip]]  # (key the caller uses to file the result, flips)


class Probe:
    """A copy of a session that evaluates mask edits (see the module docstring)."""

    def __init__(self, session, need_data: bool = True, calibration: bool = False):
        """``calibration``: evaluate on the session's calibration split
        (:meth:`pruneviz.core.calibration.Calibration.tensors`) instead of its evaluation data;
        the session's cached activations (of the evaluation data) are then not used."""
        with session.lock:
            # the session's cached activations are valid for its current masks; reading them is
            # safe: evaluation clones a cached tensor before it runs a child on it
            #: the probe's own editable model (:class:`~pruneviz.core.editable.EditableModel`)
            self.editable = session.editable.copy(activations=not calibration)
            if calibration:
                x, y = session.calib.tensors()
                extra = session.calib.extra()
                self.num_classes = session.calibration.num_classes
            else:
                x, y = session.eval_tensors() if need_data or session.data is not None else (None, None)
                extra = session.eval_extra() if x is not None else {}
                self.num_classes = session.data.num_classes if session.data is not None else None
            self.x, self.y, self.extra = x, y, extra
            self.batch_size = session.batch_size
            self.amp = session.amp
            self.layer_names = [layer.name for layer in session.layers]
            self.total = sum(layer.numel for layer in session.layers)
            # where the copy came from: priming can hand its activations back (see prime); not
            # for calibration, whose activations are of other data
            cache = session.editable.cache
            self._origin = None if calibration else (cache, cache.generation)

    def __getstate__(self):  # the origin's cache holds a lock and stays here
        return {k: v for k, v in self.__dict__.items() if k != "_origin"}

    @property
    def model(self):
        return self.editable.model

    @property
    def masks(self):
        return self.editable.masks

    @property
    def cache(self):
        return self.editable.cache

    @property
    def modules_of(self) -> dict[tuple[str, str], frozenset[str]]:
        """(store, layer) -> the modules a flip of it can change."""
        return self.editable.modules_of

    # ---------------------------------------------------------------- edits
    def apply(self, flips: Sequence[Flip]) -> None:
        """Flip masks (the session's own rule: :meth:`EditableModel.apply_flips`) and drop the
        cached activations after the earliest child the flips can change."""
        self.editable.apply_flips(flips, atomic=False, touched=False)

    @property
    def child_of(self) -> dict[tuple[str, str], int | None]:
        """(store, layer) -> the earliest point a flip of it can change (:attr:`EditableModel.earliest`)."""
        return self.editable.earliest

    def prime(self) -> ev.EvalResult:
        """Evaluate the unedited state, caching the input of every child (within the budget), then
        store no more: an edit is flipped back right after its evaluation, so the activations
        after the edited child would be dropped at once; not copying them saves that memory
        traffic, and the inputs before every edited child stay cached for the next edit."""
        result = self.evaluate()
        self.cache.store = False
        self._hand_back()
        return result

    def _hand_back(self) -> None:
        """Give the session the activations priming computed that it lacks, if its cache has not
        changed since the copy was made: they are exactly what its own evaluation would store
        (same weights, data, batches), so the next analysis or evaluation starts from them
        instead of from the input. Tensors are shared, never written: evaluation reads a cached
        activation and drops whole entries on invalidation."""
        origin = getattr(self, "_origin", None)
        if origin is None:
            return
        cache, generation = origin
        self._origin = None
        with cache.lock, self.cache.lock:
            if cache.generation != generation or cache.bounds not in (None, self.cache.bounds) or not self.cache.points:
                return
            for k, tensors in self.cache.points.items():
                cache.points.setdefault(k, tensors)
            cache.bounds = self.cache.bounds

    def evaluate(self) -> ev.EvalResult:
        return ev.run(ev.evaluate_iter(self.model, self.x, self.y, self.batch_size, self.cache, self.num_classes, amp=self.amp, extra=self.extra))

    def sparsity(self) -> float:
        return sum(self.masks.pruned_count(n) for n in self.layer_names) / self.total

    def params_remaining(self) -> int:
        """Parameters not pruned, counted as :meth:`Session.params_remaining` does."""
        return self.masks.params_remaining()

    def figures(self, result: ev.EvalResult, layers: Iterable[str]) -> dict:
        return {
            "accuracy": result.accuracy,
            "loss": result.loss,
            "correct": result.correct,
            "per_class": result.per_class,
            "start": result.start,
            "sparsity": self.sparsity(),
            "layer_sparsity": {n: self.masks.sparsity(n) for n in layers},
        }

    def run(self, edits: Sequence[Edit], cancel: threading.Event | None = None) -> Iterator[dict]:
        """For each edit: apply its flips, evaluate, flip back; yield ``{"key", figures…}``."""
        for key, flips in edits:
            if cancel is not None and cancel.is_set():
                return
            self.apply(flips)
            try:
                result = self.evaluate()
                out = {"key": key, **self.figures(result, {f.layer for f in flips})}
            finally:
                self.apply(list(reversed(flips)))
            yield out


# ------------------------------------------------------------------- Ray
def ray_module():
    """The ``ray`` package, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PrunevizError("Ray is not installed here: pip install 'pruneviz[ray]' (or run the analysis on this machine)") from None
    return ray


def connect_ray(address: str | None) -> None:
    """Start (``"local"``) or join (``"HOST:PORT"``, ``"auto"``) a Ray cluster unless one is running."""
    ray = ray_module()
    if ray.is_initialized():
        return
    if not isinstance(address, str) or not address.strip():
        raise PrunevizError("running on Ray needs local or the address of a Ray cluster (HOST:PORT)")
    if address not in ("local", "auto"):
        _reachable(address)  # Ray itself retries an unreachable address for minutes
    try:
        if address == "local":
            # a cluster of our own (never one another program started), torn down with our
            # process even when it is killed: the watchdog starts first, so processes that Ray
            # starts before a kill in the middle of ray.init are ended too
            from pruneviz.core import ray_watchdog

            dog = ray_watchdog.start()
            ctx = ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
            session = (getattr(ctx, "address_info", None) or {}).get("session_dir")
            if dog is not None and session:
                dog.session(session)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PrunevizError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _reachable(address: str, timeout: float = 5.0) -> None:
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PrunevizError(f"the Ray address {address}: give local or a cluster address HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise PrunevizError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}; start one with 'ray start --head' or use local") from None


def _run_remote(probe: Probe, edits: list[Edit]) -> list[dict]:
    return list(probe.run(edits))


_REMOTE = None


def _chunks(edits: list[Edit], n: int) -> list[list[Edit]]:
    """``n`` contiguous runs of about equal size (contiguous: neighbours share cached activations)."""
    n = max(1, min(n, len(edits)))
    size, extra = divmod(len(edits), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(edits[i:j])
        i = j
    return [c for c in out if c]


def _run_ray(probe: Probe, edits: list[Edit], address, cancel) -> Iterator[dict]:
    global _REMOTE
    ray = ray_module()
    connect_ray(address if isinstance(address, str) else "local")
    if _REMOTE is None:
        _REMOTE = ray.remote(num_cpus=1)(_run_remote)
    cpus = max(1, int(ray.available_resources().get("CPU", 1) or ray.cluster_resources().get("CPU", 1)))
    ref = ray.put(probe)  # the model, masks, data and cache go to the object store once
    pending = [_REMOTE.remote(ref, chunk) for chunk in _chunks(edits, 4 * cpus)]
    try:
        while pending:
            if cancel is not None and cancel.is_set():
                return
            done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
            for d in done:
                yield from ray.get(d)
    finally:
        for p in pending:
            ray.cancel(p, force=False)


def run_edits(probe: Probe, edits: Sequence[Edit], ray=None, cancel: threading.Event | None = None) -> Iterator[dict]:
    """Evaluate ``edits`` and yield one figures dict (with its ``"key"``) per edit as it arrives.

    ``ray=None``: here, in order, on ``probe``. ``ray="local"`` / ``"HOST:PORT"`` / ``True``: on
    Ray (joining a running cluster if ``ray.init`` was already called), in any order."""
    edits = list(edits)
    if ray is None or ray is False:
        return probe.run(edits, cancel)
    return _run_ray(probe, edits, ray, cancel)

