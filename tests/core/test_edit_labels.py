"""History labels of a prune name its layers (a class reading the history sees what was cut)."""

from __future__ import annotations

from pruneviz.core.edit_labels import layers_phrase, prune_label
from pruneviz.core.session import Session


def test_labels_name_a_few_layers_and_count_many():
    assert prune_label(0.3, "layer", "neuron", "magnitude", ["fc1", "fc2"]) == "prune 30% neurons in fc1, fc2 by magnitude"
    assert prune_label(0.5, "global", "weight", "taylor", ["a", "b", "c"]) == "prune 50% weights by taylor (global, 3 layers)"
    assert layers_phrase([f"l{i}" for i in range(12)]) == "12 layers"
    assert layers_phrase(["only"]) == "only"


def test_a_prune_of_chosen_layers_says_which_in_the_history():
    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.3, "layer", "neuron", "magnitude", ["0", "2"])
    s.prune(0.5, "global", "weight", "magnitude")
    s.prune(0.1, "layer", "weight", "random", ["2"])
    assert s.history.labels == [
        "prune 30% neurons in 0, 2 by magnitude",
        "prune 50% weights by magnitude (global, 3 layers)",
        "prune 10% weights in 2 by random",
    ]
