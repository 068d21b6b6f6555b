"""The app entry point: ``pruneviz gui … --screenshot`` through the real CLI."""

from __future__ import annotations

import struct

from pruneviz import cli


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_screenshot_via_cli(tmp_path, qapp):
    out = tmp_path / "out.png"
    assert cli.main(["gui", "demo:mlp", "--data", "demo:digits", "--device", "cpu", "--screenshot", str(out)]) == 0
    w, h = _png_size(out)
    assert (w, h) == (1400, 900)
    assert out.stat().st_size > 30_000  # a rendered window, not a blank image


def test_screenshot_refused_model_exits_2(tmp_path, qapp, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a model" * 100)
    assert cli.main(["gui", str(bad), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("pruneviz: error:")
    assert not (tmp_path / "x.png").exists()


def test_screenshot_at_a_size_leaves_the_saved_layout_alone(tmp_path, qapp):
    from PySide6.QtCore import QByteArray, QSettings

    from pruneviz.qt.app import make_app

    make_app()  # the application's names: the settings file the app itself uses
    st = QSettings()
    st.setValue("window/geometry", QByteArray(b"users-own-geometry"))
    st.setValue("window/state", QByteArray(b"users-own-state"))
    st.sync()
    out = tmp_path / "small.png"
    # the README's classroom command, with --screenshot
    assert cli.main(["gui", "demo:cnn", "--size", "1280x720", "--presentation", "--device", "cpu", "--screenshot", str(out)]) == 0
    assert _png_size(out) == (1280, 720)
    st = QSettings()
    assert bytes(st.value("window/geometry")) == b"users-own-geometry"
    assert bytes(st.value("window/state")) == b"users-own-state"


def test_bad_size_is_one_line(tmp_path, qapp, capsys):
    assert cli.main(["gui", "--size", "big", "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pruneviz: error: --size 'big'") and err.count("\n") == 1


def test_gui_on_a_demo_model_without_data_uses_the_demo_data(monkeypatch, tmp_path, qapp):
    from pruneviz.qt import app

    opened = []
    real = app.default_open
    monkeypatch.setattr(app, "default_open", lambda model, data, *a, **k: opened.append((model, data)) or real(model, data, *a, **k))
    assert cli.main(["gui", "demo:cnn", "--device", "cpu", "--screenshot", str(tmp_path / "x.png")]) == 0
    assert opened == [("demo:cnn", "demo:digits")]
    assert app.default_data("model.pt", None) is None and app.default_data("demo:cnn", "my.npz") == "my.npz"


def test_gui_asks_openmp_to_wait_passively_unless_the_user_chose(monkeypatch, tmp_path, qapp):
    import os

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert cli.main(["gui", "demo:mlp", "--device", "cpu", "--screenshot", str(tmp_path / "a.png")]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cli.main(["gui", "demo:mlp", "--device", "cpu", "--screenshot", str(tmp_path / "b.png")]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
