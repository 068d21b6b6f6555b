"""The accuracy panel says in small text which data calibrates scores and analyses (issue 18)."""

import torch

from pruneviz.core.data import EvalData
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import models


def test_the_accuracy_panel_names_the_calibration_data(window):
    label = window.acc.calibration
    assert label.text() == "calibrated on demo:digits-train (1,437 samples)" and label.isVisible()
    assert label.font().pointSizeF() < window.acc.cells[("current", "acc")].font().pointSizeF()


def test_calibrating_on_the_evaluation_data_is_shown_as_inflating_the_figures(window, qtbot):
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(0))
    data = EvalData(x=x, y=torch.arange(30) % 5, spec="mine.npz")
    loaded = LoadedModel(model=models.mlp(), spec="mine.pt", source="state_dict", arch=None, example_input=x[:1], structured_ok=True)
    window.set_session(Session(loaded, data, device="cpu"))
    text = window.acc.calibration.text()
    assert text == "calibrated on the evaluation data mine.npz: figures inflated"
    assert "inflates the figures" in window.acc.calibration.toolTip()
