"""Layers that cannot be neuron-pruned are greyed in the layer list, with the reason as tooltip."""

import torch

from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import zoo


def test_refused_layers_are_greyed_with_the_reason(qtbot, tmp_path):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.layer_tree import LayerTree

    make_app()
    s = Session(LoadedModel(zoo.vit_separate(), "vit", "state_dict", None, torch.randn(1, 3, 8, 8), True), None, device="cpu")
    tree = LayerTree()
    qtbot.addWidget(tree)
    tree.set_session(s)
    assert "no neuron pruning" not in tree.items["fc2"].toolTip(0)  # not known before the coupling is built
    assert s.build_coupling()  # the first neuron edit builds it; opening never does
    tree.set_session(s)
    tree.resize(700, 320)
    tree.show()
    fc2, fc1 = tree.items["fc2"], tree.items["fc1"]
    assert "no neuron pruning: its channels feed a LayerNorm" in fc2.toolTip(0)
    assert "no neuron pruning" not in fc1.toolTip(0)
    assert fc2.foreground(0).color() != fc1.foreground(0).color()
    assert tree.grab().save(str(tmp_path / "tree.png"))


def test_a_model_without_an_example_input_says_what_to_open_in_the_apps_words():
    from pruneviz.qt.hints import APP_HINTS
    from pruneviz.qt.layer_tree import neuron_refusal

    s = Session(LoadedModel(zoo.tied_lm(), "lm", "state_dict", None, None, True), None, device="cpu")
    said = neuron_refusal(s, s.layers[0].name)
    assert said == f"{s.coupling_error}: {APP_HINTS['example_input']}" and "--" not in said
