"""The app builds a session's coupling graph (what a pruned neuron zeroes) in its worker, on the
first neuron edit: opening never builds it, and the GUI thread never waits for it."""

from __future__ import annotations

import threading

from pruneviz.core.session import Session


def test_first_neuron_step_builds_the_coupling_in_the_worker(window, qtbot, monkeypatch):
    s = window.session
    assert s.coupling_built is None and s.coupling_builds == 0  # opened without it
    threads = []
    real = Session.build_coupling

    def spy(self, *a, **kw):
        threads.append(threading.get_ident())
        return real(self, *a, **kw)

    monkeypatch.setattr(Session, "build_coupling", spy)
    window.view.method.setCurrentText("magnitude")
    window.editing.step()
    qtbot.waitUntil(lambda: s.history.index == 1, timeout=30_000)
    assert threads and threads[0] != threading.get_ident()  # built in the worker
    assert s.coupling_builds == 1 and s.history.labels[0].startswith("step: prune neuron")
