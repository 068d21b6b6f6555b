"""The Prune dialog offers every pruning unit the engine has that fits the model (read from the
core's registry): attention heads on a transformer, N:M everywhere; what a unit does not take
(an amount for N:M, a layer list for heads) is greyed out, and the choice prunes through the
session."""

from __future__ import annotations

import torch
from PySide6.QtWidgets import QDialog

from pruneviz import Session
from pruneviz.core import nm, units
from pruneviz.core.model_io import LoadedModel
from pruneviz.qt.layer_tree import COL_SPARSITY

from tests.core import zoo


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_two_four_from_the_dialog_prunes_to_the_pattern(window, monkeypatch):
    from pruneviz.qt import controls

    w, s = window, window.session
    d = controls.PruneDialog(s, w.layer, w)
    assert _items(d.granularity) == units.offered(s) and "2:4" in _items(d.granularity)
    d.granularity.setCurrentText("2:4")
    assert not d.amount.isEnabled() and d.compensate.isEnabled() and d.layers.isEnabled()

    def accept(self):
        self.granularity.setCurrentText("2:4")
        self.all_layers.click()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(controls.PruneDialog, "exec", accept)
    w.editing.prune_dialog()
    assert s.history.labels == ["prune to 2:4 by magnitude"]
    for layer in s.layers:
        assert nm.conforms(s.mask(layer.name), 2, 4, layer.kind)
    w.tree.refresh()
    assert w.tree.items["2"].text(COL_SPARSITY) == "50.0% 2:4"
    assert w.heatmap.pool_pruned is not None  # the shown layer's overlay is pooled by its pattern


def test_heads_are_offered_on_a_transformer_and_prune(qtbot):
    from pruneviz.qt import controls

    s = Session(LoadedModel(zoo.vit_separate(), "vit", "state_dict", None, torch.randn(1, 3, 8, 8), True), None, device="cpu")
    d = controls.PruneDialog(s, None)
    qtbot.addWidget(d)
    assert "head" in _items(d.granularity)
    d.granularity.setCurrentText("head")
    assert not d.layers.isEnabled() and not d.compensate.isEnabled()
    d.amount.setValue(50.0)
    a = d.args()
    assert a.granularity == "head" and a.layers is None
    n = s.prune(a.amount, a.scope, a.granularity, a.method, a.layers)
    assert n > 0 and any(not bool(s.head_mask(u).all()) for u in s.attention_heads())
