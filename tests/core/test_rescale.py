"""Rescaling across a ReLU keeps the function and is one undoable weight edit; it is what lets
the global-vs-layer lesson show layer collapse (and without the rescale its collapse claim fails)."""

from __future__ import annotations

import pytest
import torch

from pruneviz.core import lessons
from pruneviz.core.errors import PrunevizError
from pruneviz.core.lesson_actions import ACTIONS
from pruneviz.core.lesson_format import parse_lesson
from pruneviz.core.lesson_seeds import LessonSeeds
from pruneviz.core.rescale import preserving_factors, scale_layers
from pruneviz.core.session import Session


def _bits(s):
    return {k: v.detach().clone() for k, v in s.model.state_dict().items()}


def test_rescale_keeps_the_function_changes_the_weights_and_undoes_bit_for_bit():
    s = Session.open("demo:mlp", data="demo:digits")
    x = s.eval_tensors()[0][:64]
    before, out0 = _bits(s), s.model(x).detach()
    base = s.evaluate()
    scale_layers(s, preserving_factors("0", "2", 0.01))
    assert torch.allclose(s.weight("0"), before["0.weight"] * 0.01)
    assert torch.allclose(s.weight("2"), before["2.weight"] * 100)
    assert torch.allclose(s.model(x).detach(), out0, rtol=1e-4, atol=1e-4)  # the same function
    ev = s.evaluate()
    assert ev.accuracy == base.accuracy and abs(ev.loss - base.loss) < 1e-5
    assert s.history.labels[-1].startswith("rescale layer 0 x0.01")
    s.undo()
    after = _bits(s)
    assert all(torch.equal(after[k], before[k]) for k in before)  # undo restores every bit


def test_rescale_refuses_bad_input_and_changes_nothing():
    s = Session.open("demo:mlp", data="demo:digits")
    before = _bits(s)
    labels = list(s.history.labels)
    with pytest.raises(PrunevizError):
        scale_layers(s, {"0": (0.5, 0.5), "nosuch": (2.0, 1.0)})
    with pytest.raises(PrunevizError, match="above 0"):
        scale_layers(s, {"0": (float("nan"), 1.0)})
    after = _bits(s)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert s.history.labels == labels  # no undo step for a refused edit


@pytest.mark.slow
def test_without_the_rescale_the_collapse_claim_fails():
    """The collapse is the rescale's doing: the same step with factor 1 empties no layer."""
    path = lessons.LESSON_DIR / "global-vs-layer.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count("rescale = 0.01") == 1
    lesson = parse_lesson(text.replace("rescale = 0.01", "rescale = 1.0"), path.name, ACTIONS, name="global-vs-layer", path=path)
    seeds = LessonSeeds(lesson)
    for _ in seeds.run():
        pass
    assert seeds.result_json()["holds"] is False
