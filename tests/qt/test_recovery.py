"""Nothing lost: kill -9 a running app mid-session, then recover every edit."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
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
    w.autosave.flush()  # the writer thread has written and fsynced every edit
    print("EDITS DONE", flush=True)
    app.exec()
    """
)


@pytest.mark.slow  # a second app in a real process, killed; in-process: test_unreadable_journals_...
def test_kill_9_mid_session_recovers_every_edit(qtbot, tmp_path, monkeypatch):
    """A second app started while the first runs neither offers nor discards the first one's
    journal; kill -9 of the first leaves it recoverable, every edit in it."""
    from PySide6.QtWidgets import QMessageBox

    from pruneviz.qt.app import recover_interactive

    env = dict(os.environ, PRUNEVIZ_DATA_DIR=str(tmp_path))
    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(tmp_path))
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Discard)
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a))
    proc = subprocess.Popen([sys.executable, "-c", APP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "EDITS DONE", proc.stderr.read()
        written = list((tmp_path / "autosave").glob("session-*.pvz"))
        assert len(written) == 1 and persist.owner(written[0]) == proc.pid
        assert recover_interactive("cpu") == (None, None)  # a second instance starting up
        assert asked == [] and written[0].exists()  # not offered, not discarded: the first one's
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
    assert w.autosave.flush() and w.autosave.path.exists()
    assert persist.recoverable() == []  # this app's own journal: locked, never offered
    path = w.autosave.path
    w.close()
    assert not path.exists() and persist.recoverable() == []


def test_no_recovery_prompt_for_a_journal_without_edits(qtbot, tmp_path, monkeypatch):
    """A crash (or kill) before any edit left a journal: nothing to recover, nothing to ask."""
    from PySide6.QtWidgets import QMessageBox

    from pruneviz.qt.app import recover_interactive

    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(tmp_path))
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    persist.Autosave(s).close(keep=True)  # as a crash leaves it: written, its lock gone
    assert len(persist.recoverable()) == 1
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes)
    assert recover_interactive("cpu") == (None, None)
    assert not asked and persist.recoverable() == []
    s2 = Session.open("demo:mlp", data="demo:digits", device="cpu")
    auto = persist.Autosave(s2)
    s2.prune_neurons("0", [1])  # one edit: that one is offered
    auto.close(keep=True)
    session, path = recover_interactive("cpu")
    assert len(asked) == 1 and session.history.labels == s2.history.labels


@pytest.mark.slow  # an app in a real process; in-process: test_clean_close_leaves_nothing_to_recover
def test_sigterm_closes_cleanly_and_leaves_nothing_to_recover(tmp_path):
    app = textwrap.dedent(
        """
        import os
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from pruneviz.qt.app import make_app, close_on_sigterm
        from pruneviz.qt.main_window import MainWindow
        from pruneviz.core.session import Session
        app = make_app()
        s = Session.open("demo:mlp", data="demo:digits")
        w = MainWindow(s, restore_layout=False, autosave=True)
        w.show()
        s.prune_neurons("0", [3])
        close_on_sigterm(app, w)
        w.autosave.flush()
        print("READY", flush=True)
        print("EXIT", app.exec(), flush=True)
        """
    )
    env = dict(os.environ, PRUNEVIZ_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", app], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        assert len(list((tmp_path / "autosave").glob("session-*.pvz"))) == 1  # an edit is journalled
        assert persist.recoverable(tmp_path / "autosave") == []  # by a running app, which owns it
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "EXIT 0" in out, err
    assert list((tmp_path / "autosave").glob("session-*")) == []  # journal and lock removed


def test_unreadable_journals_are_moved_aside_with_a_message_never_deleted(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from pruneviz.qt.app import recover_interactive

    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(tmp_path))
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s)
    s.prune(0.2)
    s.prune_neurons("0", [1])
    s.prune_weights("4", [3])
    auto.close(keep=True)
    good = auto.path.read_bytes()
    lines = good.split(b"\n")
    folder = auto.path.parent
    auto.path.unlink()
    bad = {
        "newer": good.replace(b'"version": 3', b'"version": 99', 1),
        "damaged-middle": b"\n".join([lines[0], lines[1], b'{"n": 2, "op": "pu', *lines[3:]]),
        "not-utf8": b"\n".join([lines[0], lines[1][:40] + b"\xff" + lines[1][40:], *lines[2:]]),
        "deep": lines[0] + b"\n" + b"[" * 100_000 + b"\n" + b"\n".join(lines[1:]),
    }
    for name, data in bad.items():
        (folder / f"session-{name}.pvz").write_bytes(data)
    asked, warned = [], []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Discard)
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: warned.append(text))
    assert recover_interactive("cpu") == (None, None)
    assert asked == [] and len(warned) == 1
    for name, data in bad.items():
        assert not (folder / f"session-{name}.pvz").exists()
        aside = list(folder.glob(f"session-{name}.pvz.unreadable-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == data  # kept whole
        assert str(aside[0]) in warned[0]
    assert persist.recoverable() == []  # not offered again at the next start
