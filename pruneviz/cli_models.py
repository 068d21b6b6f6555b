"""Command-line options and output for models users bring: example inputs and notices.

``--input-shape 3,224,224`` / ``--input-dtype long`` give the example input that neuron pruning
traces with, when neither ``--data`` nor the model file provides one. Notices (an inferred
input, an output object read by ``.logits``, a layer skipped and why) are printed once each, to
stderr as ``pruneviz: note: …``, after the command's own output.
"""

from __future__ import annotations

import sys

from pruneviz.core.errors import Notice
from pruneviz.core.text import printable

_OPEN: list = []  # sessions opened by this command, whose notices are printed at its end


def add_input_args(p) -> None:
    p.add_argument("--input-shape", metavar="C,H,W", help="one sample's input shape when neither --data nor the model gives one, e.g. 3,224,224 (tokens: 128)")
    p.add_argument("--input-dtype", metavar="T", help="the example input's type: float (default) or long (token ids)")


def session_kwargs(args) -> dict:
    return {"input_shape": getattr(args, "input_shape", None), "input_dtype": getattr(args, "input_dtype", None)}


def opened(session):
    _OPEN.append(session)
    return session


def forget_opened() -> None:
    """Drop the sessions of the command that just ended, printed or not: a failed command's notices
    must not be printed by the next command run in the same process (tests, notebooks)."""
    _OPEN.clear()


def print_notices(stream=None, hints: dict[str, str] | None = None) -> None:
    """Print the opened sessions' notices once each, their hints in ``hints``' words."""
    stream = stream or sys.stderr
    seen: set[str] = set()
    while _OPEN:
        for note in _OPEN.pop(0).notices:
            if note not in seen:
                seen.add(note)
                print(f"pruneviz: note: {printable(note.worded(hints) if isinstance(note, Notice) else note)}", file=stream)


def file_sparsity(session) -> dict:
    """Fraction of zero weights per layer (and overall, key None) in the model as opened."""
    from pruneviz.core.inventory import zero_fraction

    out, zeros, total = {}, 0, 0
    for layer in session.layers:
        w = session.weight(layer.name)
        out[layer.name] = zero_fraction(w)
        zeros += int((w == 0).sum())
        total += w.numel()
    out[None] = zeros / total if total else 0.0
    return out


def shrinkable_layers(session, patterns):
    """For ``prune --granularity neuron --shrink``: the selected layers minus those whose neurons
    can be masked but not removed (attention projections), each skipped with a notice. Returns
    ``patterns`` unchanged when nothing is skipped."""
    if session.coupling is None:
        return patterns
    chosen = session.select_layers(patterns, "neuron")
    keep = []
    for name in chosen:
        reason = session.coupling[name].no_shrink
        if reason:
            note = f"skipped {name} (--shrink): {reason}"
            if note not in session.notices:
                session.notices.append(note)
        else:
            keep.append(name)
    if not keep:
        from pruneviz.core.errors import PrunevizError

        raise PrunevizError("no selected layer can lose neurons physically (see the notes above); export without --shrink")
    return patterns if len(keep) == len(chosen) else keep
