"""Nothing lost: kill -9 a running app mid-session, then recover every edit."""

import os
import signal
import subprocess
import sys
import textwrap

import torch

from pruneviz.core import persist
from pruneviz.core.session import Session

EDITS = textwrap.dedent(
    """
    s.prune(0.3, scope="global")
    s.prune_neurons("0", [3, 7, 11])
    s.prune_rect("2", (0, 4), (0, 20))
    s.undo()
    s.prune_weights("4", [1, 2, 3])
    s.restore_neurons("0", [7])
    """
)

APP = textwrap.dedent(
    """
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from pruneviz.qt.app import make_app
    from pruneviz.qt.main_window import MainWindow
    from pruneviz.core.session import Session
    app = make_app()
    s = Session.open("demo:mlp", data="demo:digits")
    w = MainWindow(s, restore_layout=False, autosave=True)
    w.show()
    """
) + EDITS + textwrap.dedent(
    """
    print("EDITS DONE", flush=True)
    app.exec()
    """
)


def test_kill_9_mid_session_recovers_every_edit(tmp_path):
    env = dict(os.environ, PRUNEVIZ_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", APP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "EDITS DONE", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    journals = persist.recoverable(tmp_path / "autosave")
    assert len(journals) == 1
    recovered = persist.load_session(journals[0], device="cpu")
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    exec(EDITS, {"s": s})
    assert recovered.history.labels == s.history.labels and recovered.history.index == s.history.index
    for k, v in s.model.state_dict().items():
        assert torch.equal(recovered.model.state_dict()[k], v), k
    recovered.undo()
    s.undo()
    assert recovered.mask("0").equal(s.mask("0"))  # the history recovered is the history lived


def test_clean_close_leaves_nothing_to_recover(qtbot, tmp_path, monkeypatch):
    from pruneviz.qt.main_window import MainWindow

    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(tmp_path))
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    w = MainWindow(s, restore_layout=False, autosave=True)
    qtbot.addWidget(w)
    s.prune_neurons("0", [1])
    assert len(persist.recoverable()) == 1
    w.close()
    assert persist.recoverable() == []
