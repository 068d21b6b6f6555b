"""The Prune dialog offers compensation (none / exact / sparsegpt) for weight pruning; choosing
one prunes through the engine's prune pipeline (the one `pruneviz prune` runs) with that mode."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog


def test_prune_dialog_compensates_with_the_chosen_mode(window, monkeypatch):
    from pruneviz.qt import controls

    w = window
    s = w.session
    d = controls.PruneDialog(s, w.layer, w)
    assert [d.compensate.itemText(i) for i in range(d.compensate.count())] == ["none", "exact", "sparsegpt"]
    assert d.args().compensate is None
    d.compensate.setCurrentText("sparsegpt")
    assert d.args().compensate == "sparsegpt"
    d.granularity.setCurrentText("neuron")
    assert not d.compensate.isEnabled() and d.args().compensate is None  # weights only

    def accept(self):
        self.amount.setValue(60.0)
        self.all_layers.click()
        self.compensate.setCurrentText("sparsegpt")
        return QDialog.DialogCode.Accepted

    from pruneviz.core import prune_pipeline

    jobs, real = [], prune_pipeline.run
    monkeypatch.setattr(prune_pipeline, "run", lambda session, job, cancel=None: (jobs.append(job), real(session, job, cancel))[1])
    monkeypatch.setattr(controls.PruneDialog, "exec", accept)
    w.editing.prune_dialog()
    assert [(j.compensate, j.measure) for j in jobs] == [("sparsegpt", False)]  # the CLI's pipeline, measured live
    assert s.history.labels == ["prune 60% weights in 0, 2, 4 by SparseGPT, compensated"]
    assert abs(s.sparsity() - 0.6) < 0.01
