"""Stopping a training run that diverges, as a NaN loss stops it.

A learning rate far too high makes the loss grow without bound while staying finite
(demo:mlp at lr 1e10: ~2e34 from the second step, accuracy 0.98 -> 0.09); kept silently, the
run would leave a broken model as one undo step. :class:`Watch` stops it; the run then puts the
model back as it was and raises :class:`Diverged` (one line). ``allow_divergence=True``
(``--allow-divergence``) turns the watch off. The rule:

* **loss**: the mean training loss of the last :data:`WINDOW` (8) steps rises above
  :data:`FACTOR` (10) times the starting loss, and above ln(classes), the loss of a uniform
  guess. The starting loss is the first step's, measured before any update; when a schedule
  changes the masks (prunes, regrows), the first loss after the change becomes the start if it
  is higher (a deliberate cut is not a divergence). The mean is checked once 8 steps have run,
  and at every epoch end; one noisy batch moves it by an eighth.
* **accuracy**: at an epoch end, the held-out accuracy keeps less than a tenth of its margin
  over chance (the share of the most frequent label), when the run started at least 10 points
  above chance and has not changed the masks (fine-tuning; a schedule's cut may rightly cost
  accuracy for a while).
"""

from __future__ import annotations

import math
from collections import deque

import torch

from .errors import PrunevizError

WINDOW = 8  #: steps in the running mean of the loss
FACTOR = 10.0  #: how far above its start the running mean may rise
KEEP = 0.1  #: share of its margin over chance the accuracy must keep
MIN_MARGIN = 0.1  #: the accuracy rule applies to runs starting this far above chance

_ADVICE = "stopped, and the model is back as it was before training"


class Diverged(PrunevizError):
    """The training run diverged (see the module docstring); the model was put back as it was."""


def chance(labels: torch.Tensor) -> float | None:
    """Accuracy of always answering the most frequent label (None without labels)."""
    y = labels.reshape(-1)
    y = y[y >= 0]
    if not y.numel():
        return None
    return float(torch.bincount(y).max()) / y.numel()


class Watch:
    """Watches a run's step losses and epoch accuracies; raises :class:`Diverged`.

    ``classes``: number of classes of the training labels (for ln(classes)); ``chance`` and
    ``start_accuracy``: of the held-out data (None: no accuracy rule)."""

    def __init__(self, classes: int, chance: float | None = None, start_accuracy: float | None = None):
        self.floor = math.log(classes) if classes > 1 else 0.0
        self.chance = chance
        self.start_accuracy = start_accuracy
        self.start: float | None = None
        self.recent: deque[float] = deque(maxlen=WINDOW)
        self._rebase = False

    @property
    def limit(self) -> float:
        return max(FACTOR * (self.start or 0.0), self.floor)

    def masks_changed(self) -> None:
        """The run pruned or regrew: the next loss may raise the start; no accuracy rule now."""
        self._rebase = True
        self.start_accuracy = None

    def loss(self, value: float, step: int, epoch: int) -> None:
        """A step's loss (measured before its update)."""
        if self.start is None or self._rebase:
            self.start = value if self.start is None else max(self.start, value)
            self._rebase = False
        self.recent.append(value)
        if len(self.recent) == WINDOW:
            self._check_loss(step, epoch)

    def epoch_end(self, step: int, epoch: int, accuracy: float | None) -> None:
        """An epoch ended with held-out ``accuracy`` (None without evaluation data)."""
        if self.recent:
            self._check_loss(step, epoch)
        a0, c = self.start_accuracy, self.chance
        if accuracy is None or a0 is None or c is None or a0 - c < MIN_MARGIN:
            return
        if accuracy < c + KEEP * (a0 - c):
            raise Diverged(f"training diverged: held-out accuracy fell from {a0:.1%} to {accuracy:.1%} after epoch {epoch}, near chance ({c:.1%}): {_ADVICE}", hint="allow_divergence")

    def _check_loss(self, step: int, epoch: int) -> None:
        mean = sum(self.recent) / len(self.recent)
        if mean > self.limit:
            raise Diverged(
                f"training diverged: the loss rose to {mean:.3g} (mean of the last {len(self.recent)} steps, step {step}, epoch {epoch}), "
                f"above {self.limit:.3g} (10x its starting {self.start:.3g}, and at least a uniform guess's {self.floor:.3g}): {_ADVICE}",
                hint="allow_divergence",
            )
