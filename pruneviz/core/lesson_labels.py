"""Figure names in words, for handout tables and chart labels.

A lesson records figures under names a claim can read (``accuracy_global_70``); a class reads
"accuracy, global, at 70 %". :func:`human` turns the names the actions record into words; a
name it does not know keeps its words with the underscores as spaces.

Example::

    human("accuracy_global_70")        # 'accuracy, global, at 70 %'
    human("sparsity_global_98_2")      # 'sparsity of layer 2, global, at 98 %'
"""

from __future__ import annotations

import re

__all__ = ["human"]

_WORDS = {"obd": "OBD", "taylor": "Taylor", "oneshot": "one-shot", "regrown": "RigL"}
_FIXED = {
    "knockout_max_loss_increase": "knockout: largest loss increase",
    "knockout_neurons": "knockout: neurons measured",
    "knockout_tied_lowest": "knockout: neurons whose removal alone changes nothing",
    "baseline": "unpruned",
    "trained_dense": "trained dense (shipped)",
}


def _words(text: str) -> str:
    return " ".join(_WORDS.get(w, w) for w in text.split("_") if w)


def human(name: str) -> str:
    """``name`` (a figure a lesson records) in words; see the module docstring."""
    if name.endswith("_loss"):
        return human(name[: -len("_loss")]) + ": loss"
    if name in _FIXED:
        return _FIXED[name]
    if m := re.fullmatch(r"accuracy_(.+)_(\d+)", name):
        return f"accuracy, {_words(m.group(1))}, at {m.group(2)} %"
    if m := re.fullmatch(r"(sparsity|kept)_(layer|global)_(\d+)_(.+)", name):
        what = "sparsity of" if m.group(1) == "sparsity" else "weights kept in"
        return f"{what} layer {m.group(4)}, {m.group(2)}, at {m.group(3)} %"
    if m := re.fullmatch(r"median_w_(.+)", name):
        return f"median |w| of layer {m.group(1)}"
    if m := re.fullmatch(r"sensitivity_(.+)_(\d+)", name):
        return f"accuracy, layer {m.group(1)} alone at {m.group(2)} %"
    if m := re.fullmatch(r"spearman_(.+)", name):
        return f"Spearman ρ, {_words(m.group(1))} vs knockout"
    if m := re.fullmatch(r"(.+)_(\d+)_regrown", name):
        return f"{_words(m.group(1))} at {m.group(2)} %: connections regrown"
    if m := re.fullmatch(r"(.+)_(\d+)", name):
        return f"{_words(m.group(1))}, at {m.group(2)} %"
    return _words(name)
