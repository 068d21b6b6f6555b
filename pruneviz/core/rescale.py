"""Rescale layers without changing what the network computes, as one undoable weight edit.

Between two layers joined by ReLU (positively homogeneous: relu(c*h) = c*relu(h) for c > 0),
multiplying the first layer's weight and bias by ``c`` and the next layer's weight by ``1/c``
leaves every output as it was (up to float rounding), yet changes every |w| a global magnitude
ranking compares across layers. The lesson ``global-vs-layer`` uses it to show layer collapse:
the same function, pruned globally, loses a whole layer.
"""

from __future__ import annotations

import math

from .errors import PrunevizError
from .history import Change


def scale_layers(session, factors: dict[str, tuple[float, float]], label: str | None = None) -> None:
    """Multiply each layer's weight by ``factors[layer][0]`` and its bias by ``factors[layer][1]``:
    one undo step (a weight delta), masks unchanged. Whether the function is preserved is the
    caller's claim to check (:func:`preserving_factors` gives factors that preserve it across a
    ReLU); this verb only writes the values. Atomic: on any error nothing changes."""
    infos = {}
    for name, (fw, fb) in factors.items():
        info = session.layer(name)  # an unknown layer: its error, nothing written
        if not (math.isfinite(fw) and math.isfinite(fb)) or fw <= 0 or fb <= 0:
            raise PrunevizError(f"rescale factors of layer {name} must be finite and above 0, got {fw!r}, {fb!r}")
        infos[name] = info
    label = label or "rescale " + ", ".join(f"layer {n} x{f[0]:g}" for n, f in factors.items())
    masks = session.masks
    with session.lock:
        edit = session.edit_weights(label)  # the one verb that writes values and records the delta
        try:
            for name, (fw, fb) in factors.items():
                info = infos[name]
                for param, f in ((info.weight, fw), (info.bias, fb)):
                    if param is not None and f != 1.0:
                        edit.write(param, (masks.orig[param] if param in masks.orig else masks.params[param].detach()) * f)
            edit.changed()
        except BaseException:
            edit.abort()
            raise
        change = edit.commit(emit=False)
    if change is not None:
        session.changed.emit(Change(label, frozenset(factors)))


def preserving_factors(first: str, second: str, c: float) -> dict[str, tuple[float, float]]:
    """Factors that keep the function when ``first`` feeds ``second`` through a ReLU: ``first``'s
    weight and bias times ``c``, ``second``'s weight times ``1/c``."""
    return {first: (c, c), second: (1.0 / c, 1.0)}
