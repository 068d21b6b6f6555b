"""A claim that cannot fail is a defect: each shipped lesson, perturbed so its claim should not
hold (the same arms at a budget or a setting where the result does not hold, or the arms
swapped), run on its seeds, decides ``holds: false``. Slow: each runs a whole lesson."""

from __future__ import annotations

import pytest

from pruneviz.core import lessons
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_format import parse_lesson
from pruneviz.core.lesson_seeds import LessonSeeds

#: lesson -> (what changes, [(old text, new text, how many times)])
PERTURB = {
    # the arms swapped: the cut recorded as "magnitude_40" is the random one and vice versa
    "playground": ("arms swapped", [('method = "magnitude"\nrecord = "magnitude_40"', 'method = "random"\nrecord = "magnitude_40"', 1), ('method = "random"\nrecord = "random_40"', 'method = "magnitude"\nrecord = "random_40"', 1)]),
    # the unbounded loop stops at 25 % sparsity, before the cliff
    "node-loop": ("the loop stopped before the cliff", [("target_sparsity = 0.9", "target_sparsity = 0.25", 1)]),
    # global and per layer swapped in the claim
    "global-vs-layer": ("arms swapped", [("claim = \"accuracy_global_70 > accuracy_layer_70 and sparsity_global_70_4 < sparsity_global_70_2", "claim = \"accuracy_layer_70 > accuracy_global_70 and sparsity_layer_70_4 < sparsity_layer_70_2", 1)]),
    # random and magnitude swapped in the claim
    "criteria": ("arms swapped", [('claim = "accuracy_random_70 < accuracy_magnitude_70', 'claim = "accuracy_magnitude_70 < accuracy_random_70', 1), ("accuracy_random_90 < accuracy_magnitude_90", "accuracy_magnitude_90 < accuracy_random_90", 1)]),
    # the magnitude cut at 60 % of the layer instead of its lowest quarter: no longer free
    "faithful": ("a cut past the harmless neurons", [('amount = 0.25\ngranularity = "neuron"\nmethod = "magnitude"', 'amount = 0.6\ngranularity = "neuron"\nmethod = "magnitude"', 1)]),
    # a 30 % cut costs little: nothing to recover
    "fine-tune": ("a cut too small to hurt", [("amount = 0.9", "amount = 0.3", 1)]),
    # the same three arms with 1 epoch: gradual pruning is far ahead
    "when": ("the same arms with 1 epoch", [("epochs = 3", "epochs = 1", 3)]),
    "surgeon": ("arms swapped", [('claim = "compensated_80 > plain_80"', 'claim = "plain_80 > compensated_80"', 1)]),
    # the same three arms with 1 epoch: RigL falls 2-3 points behind one-shot + fine-tune
    "regrow": ("the same arms with 1 epoch", [("epochs = 3", "epochs = 1", 3)]),
}


def test_every_shipped_lesson_has_a_perturbation():
    assert set(PERTURB) == set(lessons.available())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PERTURB))
def test_perturbed_lesson_claim_does_not_hold(name):
    path = lessons.LESSON_DIR / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    what, edits = PERTURB[name]
    for old, new, count in edits:
        assert text.count(old) == count, (name, old)
        text = text.replace(old, new)
    lesson = parse_lesson(text, path.name, ACTIONS, name=name, path=path)
    seeds = LessonSeeds(lesson)
    for _ in seeds.run():
        pass
    assert seeds.verdict is not None and len(seeds.verdict.held) == lesson.seeds
    assert seeds.result_json()["holds"] is False, f"{name} ({what}) still holds: {seeds.verdict}"
