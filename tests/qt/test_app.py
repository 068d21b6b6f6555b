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
