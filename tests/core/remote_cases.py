"""What the remote-evaluation tests share: the figures compared, a random edit, and a replica
handle that loses an edit on the way (the fault the masks checksum must catch)."""

from __future__ import annotations

import math

from pruneviz.core import evaluate as ev
from pruneviz.core.remote_replica import decode, encode


def figures(r: ev.EvalResult):
    """Accuracy, loss, correct count, samples and per-class accuracy (NaN as None): compared exactly."""
    return (r.accuracy, r.loss, r.correct, r.samples, [None if math.isnan(v) else v for v in r.per_class])


def random_edit(s, rng) -> str:
    """One random step of a user: prune weights or a neuron, restore one, undo, redo or switch plan."""
    layers = [layer for layer in s.layers if not layer.is_output]
    op = rng.random()
    if op < 0.3:
        layer = rng.choice(layers)
        s.prune_weights(layer.name, rng.sample(range(layer.numel), rng.randint(1, 40)))
        return "weights"
    if op < 0.45:
        layer = rng.choice(layers)
        kept = s.neuron_mask(layer.name).nonzero().flatten().tolist()
        if len(kept) > 2:
            s.prune_neurons(layer.name, rng.sample(kept, 1))
        return "neuron"
    if op < 0.5:
        layer = rng.choice(layers)
        gone = (~s.neuron_mask(layer.name)).nonzero().flatten().tolist()
        if gone:
            s.restore_neurons(layer.name, gone[:1])
        return "restore"
    if op < 0.75:
        s.undo()
        return "undo"
    if op < 0.85:
        s.redo()
        return "redo"
    plans = [p["name"] for p in s.plans() if not p["current"]]
    if plans:
        s.switch_plan(rng.choice(plans))
    return "plan"


class LoseFirstFlip:
    """The replica's handle, except that the next request loses the flips of its first layer."""

    def __init__(self, actor, layers):
        self.actor, self.layers, self.lost = actor, layers, 0

    def __getattr__(self, name):
        return getattr(self.actor, name)

    @property
    def ask(self):
        outer = self

        class Ask:
            @staticmethod
            def remote(payload, *args):
                if not outer.lost:
                    seq, cs, flips = decode(payload, outer.layers)
                    payload = encode(seq, cs, flips[1:], {n: i for i, n in enumerate(outer.layers)})
                    outer.lost = len(flips) - 1
                return outer.actor.ask.remote(payload, *args)

        return Ask


def kill_mid_evaluation(s, kill) -> ev.EvalResult:
    """Start a long evaluation of ``s`` (batch size 1: 360 batches of demo:digits) on its replica,
    call ``kill`` once the replica streams progress, and return the result, finished here."""
    import threading

    s.batch_size = 1
    gen = s.evaluate_iter(cancel=threading.Event())
    first = next(gen)
    assert isinstance(first, ev.Progress) and first.done < first.total  # the replica is evaluating
    assert kill()
    result = list(gen)[-1]
    assert isinstance(result, ev.EvalResult) and "Ray replica" not in result.device
    return result


def for_seconds(seconds: float, step, interval: float = 1.0) -> int:
    """Call ``step(n)`` (n = 0, 1, …) until ``seconds`` have passed, at least once, ``interval``
    apart; returns how many calls were made (a process that must stay alive that long)."""
    import time

    until = time.monotonic() + seconds
    n = 0
    while True:
        step(n)
        n += 1
        if time.monotonic() >= until:
            return n
        time.sleep(interval)
