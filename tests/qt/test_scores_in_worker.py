"""Edits that rank by a data-driven criterion (Prune…, Step, Run until with taylor) compute their
scores in a worker, never on the GUI thread, and prune exactly what the same verb prunes."""

from __future__ import annotations

import threading

import torch

from pruneviz.core.session import Session

from .conftest import open_demo


def _record_scoring_threads(monkeypatch) -> list[tuple[str, int]]:
    """(method, thread id) of every data-driven score computation (cache misses included only)."""
    seen: list[tuple[str, int]] = []
    real = Session.scores

    def spy(self, layer=None, method="magnitude", granularity="weight", original=False):
        if method not in ("magnitude", "random"):
            seen.append((method, threading.get_ident()))
        return real(self, layer, method, granularity, original)

    monkeypatch.setattr(Session, "scores", spy)
    return seen


def test_prune_by_taylor_scores_in_the_worker_and_equals_the_verb(window, qtbot, monkeypatch):
    seen = _record_scoring_threads(monkeypatch)
    s = window.session
    done = []
    assert window.editing.scored("taylor", "weight", lambda: done.append(s.prune(0.3, scope="global", method="taylor")))
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    gui = threading.get_ident()
    assert seen and seen[0] == ("taylor", seen[0][1]) and seen[0][1] != gui  # computed in the worker
    oracle = open_demo("mlp")
    assert done[0] == oracle.prune(0.3, scope="global", method="taylor")
    for layer in s.layers:
        assert torch.equal(s.mask(layer.name), oracle.mask(layer.name))
    assert s.history.labels == oracle.history.labels


def test_step_by_taylor_removes_the_verbs_neuron_without_scoring_on_the_gui_thread(window, qtbot, monkeypatch):
    oracle = open_demo("mlp")
    expected = oracle.least_important_neuron("taylor")
    seen = _record_scoring_threads(monkeypatch)
    window.view.method.setCurrentText("taylor")
    assert window.view.method.currentText() == "taylor"
    gui = threading.get_ident()
    window.editing.step()
    qtbot.waitUntil(lambda: window.session.history.index == 1, timeout=30_000)
    assert window.session.history.labels == [f"step: prune neuron {expected[1]} of {expected[0]} (taylor)"]
    worker_calls = [t for m, t in seen if t != gui]
    assert worker_calls  # the step's ranking was computed in the worker


def test_an_edit_meanwhile_cancels_the_pending_prune(window, qtbot):
    s = window.session
    ran = []
    gate = threading.Event()
    real_scores = s.scores

    def slow_scores(*a, **kw):  # hold the worker until the edit below has happened
        gate.wait(10)
        return real_scores(*a, **kw)

    s.scores = slow_scores
    try:
        assert window.editing.scored("taylor", "weight", lambda: ran.append(True))
        s.prune_neurons("0", [3])  # the model changes while the scores are computed
        gate.set()
        qtbot.waitUntil(lambda: not window.editing.prep.busy, timeout=30_000)
    finally:
        del s.scores
    assert ran == []
    assert s.history.labels == ["prune neuron 3 of 0"]
    assert "changed meanwhile" in window.statusBar().currentMessage()


def test_run_until_by_taylor_takes_its_steps_through_the_worker(window, qtbot, monkeypatch):
    from types import SimpleNamespace

    seen = _record_scoring_threads(monkeypatch)
    gui = threading.get_ident()
    stopped = []
    window.loop.stopped.connect(stopped.append)
    window.loop.start(SimpleNamespace(method="taylor", layers=None, min_accuracy=None, target_sparsity=None, max_steps=3))
    qtbot.waitUntil(lambda: bool(stopped), timeout=60_000)
    assert stopped == ["step limit reached"]
    labels = window.session.history.labels
    assert len(labels) == 3 and all(label.endswith("(taylor)") for label in labels)
    assert len([t for m, t in seen if t != gui]) >= 3  # one worker computation per step
