"""A run whose loss runs away (or whose accuracy falls to chance) stops, puts the model back bit
for bit and says so in one line, as a NaN loss does; ``allow_divergence=True`` keeps going; at a
normal learning rate, and through a schedule's deliberate cut, the stop does not trigger."""

from __future__ import annotations

import math

import pytest
import torch

from pruneviz.core.divergence import FACTOR, WINDOW, Diverged, Watch, chance
from pruneviz.core.session import Session
from pruneviz.core.training import complete


def _bits(s):
    out = {f"p:{n}": p.detach().clone() for n, p in s.model.named_parameters()}
    out |= {f"o:{n}": t.clone() for n, t in s.masks.orig.items()}
    return {k: v.view(torch.int32) for k, v in out.items()}


def _same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def mlp():
    return Session.open("demo:mlp", data="demo:digits")


@pytest.mark.slow
def test_lr_1e10_stops_restores_bit_for_bit_and_says_so(mlp):
    mlp.prune(0.5)
    before, labels = _bits(mlp), list(mlp.history.labels)
    with pytest.raises(Diverged) as info:
        complete(mlp.finetune(1, lr=1e10))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("training diverged: the loss rose to ")
    assert "back as it was before training" in msg and "allow_divergence=True to keep going" in msg and info.value.hint_key == "allow_divergence"
    _same(_bits(mlp), before)
    assert mlp.history.labels == labels and mlp.job is None
    assert mlp.evaluate().accuracy > 0.9


@pytest.mark.slow
def test_with_allow_divergence_the_run_goes_on(mlp):
    result = complete(mlp.finetune(1, lr=1e10, allow_divergence=True))
    assert result.steps > WINDOW and mlp.history.labels == ["fine-tune 1 epoch (lr 1e10)"]
    assert result.curve[-1]["loss"] > 1e6 and result.curve[-1]["accuracy"] < 0.3  # what it kept: a broken model


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_a_normal_learning_rate_does_not_trigger(mlp, optimizer):
    # the perturbed setting: the same run at the usual rate must not stop, from a trained model
    # (first batch loss ~1e-3, so "10x the start" alone would be a hair trigger) and a pruned one
    complete(mlp.finetune(1, optimizer=optimizer))
    mlp.prune(0.9)
    result = complete(mlp.finetune(1, optimizer=optimizer))
    assert len(result.curve) == 1 and result.curve[-1]["accuracy"] > 0.5  # ran to its end, and recovered


@pytest.mark.slow
def test_a_schedules_deliberate_cut_is_not_a_divergence(mlp):
    # train dense one epoch (loss ~1e-3), then cut 99%: the loss jumps to ~2.3, above 10x the
    # start and a uniform guess's; without the new start after the cut this run stops (measured)
    result = complete(mlp.train("after", 0.99, 2))
    assert abs(mlp.sparsity() - 0.99) < 0.005 and len(result.curve) == 2


def test_one_noisy_batch_does_not_trigger_and_a_run_away_mean_does():
    w = Watch(classes=10)
    w.loss(0.01, 1, 1)  # the start; the limit is ln 10 (a uniform guess), above 10 x 0.01
    assert w.limit == pytest.approx(math.log(10))
    for step in range(2, 40):
        w.loss(0.01 if step != 20 else 7 * w.limit, step, 1)  # one batch far above: an eighth of it counts
    with pytest.raises(Diverged, match=r"mean of the last 8 steps"):
        for step in range(40, 60):
            w.loss(1e6, step, 1)
    high = Watch(classes=10)
    high.loss(1.0, 1, 1)
    assert high.limit == pytest.approx(FACTOR * 1.0)


def test_a_cut_raises_the_start_and_the_short_epoch_is_checked_at_its_end():
    w = Watch(classes=10)
    w.loss(0.01, 1, 1)
    w.masks_changed()  # a schedule pruned: the next loss may be the new start
    w.loss(5.0, 2, 1)
    assert w.start == 5.0 and w.limit == 50.0
    for step in range(3, 3 + WINDOW):
        w.loss(20.0, step, 1)  # worse than before the cut, not a divergence
    short = Watch(classes=2)
    short.loss(0.1, 1, 1)
    short.loss(1e9, 2, 1)  # two steps, a window never full: the epoch end checks them
    with pytest.raises(Diverged):
        short.epoch_end(2, 1, None)


def test_accuracy_down_to_chance_stops_a_fine_tune_that_started_above_it():
    labels = torch.tensor([0] * 30 + [1] * 70)
    assert chance(labels) == pytest.approx(0.7)
    w = Watch(classes=2, chance=0.1, start_accuracy=0.95)
    w.epoch_end(10, 1, 0.5)  # lost much, not all: goes on
    with pytest.raises(Diverged, match=r"accuracy fell from 95.0% to 15.0% after epoch 2, near chance \(10.0%\)"):
        w.epoch_end(20, 2, 0.15)
    near = Watch(classes=2, chance=0.1, start_accuracy=0.15)  # started near chance: no accuracy rule
    near.epoch_end(10, 1, 0.1)
    cut = Watch(classes=2, chance=0.1, start_accuracy=0.95)
    cut.masks_changed()  # a schedule's cut may rightly cost accuracy
    cut.epoch_end(10, 1, 0.1)
