"""What pruneviz reads from a model's output: a tensor of logits.

Hugging Face models return output objects (``ModelOutput`` with ``.logits``), others a tuple or a
dict. :func:`logits` takes the ``.logits`` attribute or ``"logits"`` key when there is one, else
the first element of a tuple or list; :func:`describe` says which, once, for the user.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .errors import PrunevizError


def logits(out: object) -> torch.Tensor:
    """The logits tensor in a model's output (the output itself when it is a tensor)."""
    if isinstance(out, torch.Tensor):
        return out
    found = getattr(out, "logits", None)
    if isinstance(found, torch.Tensor):
        return found
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise PrunevizError(
        f"the model returns a {type(out).__name__}, not a tensor of logits, an object with .logits, "
        "or a tuple starting with one"
    )


def describe(out: object) -> str | None:
    """A one-line notice when the output is not a plain tensor (what :func:`logits` reads), else None."""
    if isinstance(out, torch.Tensor):
        return None
    kind = type(out).__name__
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return f"the model returns {kind} objects: pruneviz reads their .logits"
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return f"the model returns a {kind}: pruneviz reads its 'logits' entry"
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return f"the model returns a {kind}: pruneviz reads its first element"
    return None


def output_notices(session) -> list[str]:
    """What a session should say once about how its model was read: notes from opening it, and
    the kind of output it returns when that is not a plain tensor."""
    notes = list(getattr(session.loaded, "notices", []) or [])
    example = session.example_input()
    if example is not None:
        try:
            with session.lock, torch.inference_mode():
                note = describe(session.model(example.to(session.device)))
        except Exception:
            note = None  # evaluation reports what goes wrong, with its own message
        if note:
            notes.append(note)
    return notes
