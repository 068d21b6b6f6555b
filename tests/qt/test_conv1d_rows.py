"""A Conv1D layer is shown as stored ([in, out]): its heatmap rows are inputs, so pruning selected
rows as neurons would remove the wrong ones; the window says so and edits nothing."""

import torch

from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import zoo


def test_selected_rows_of_a_conv1d_layer_are_not_pruned_as_neurons(qtbot):
    from pruneviz.qt.main_window import MainWindow

    s = Session(LoadedModel(zoo.conv1d_mlp(), "conv1d", "state_dict", None, torch.randn(1, 5, 12), True), None, device="cpu")
    w = MainWindow(s, restore_layout=False)
    qtbot.addWidget(w)
    w.show()
    w.view.show_layer("c_fc")
    w.editing.select_neurons([1])
    w.editing.prune_selected()
    assert s.history.index == 0 and bool(s.neuron_mask("c_fc").all())
    assert "Conv1D" in w.statusBar().currentMessage()
    w.view.show_layer("fc_in")  # a Linear: rows are neurons, and the same action prunes one
    w.editing.select_neurons([1])
    w.editing.prune_selected()
    assert s.history.index == 1 and not bool(s.neuron_mask("fc_in")[1])
