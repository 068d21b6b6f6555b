"""The analyses' figures: --plot renders the app's figure to a PNG without a display."""

import json
import os
import subprocess
import sys

import pytest
from PySide6.QtGui import QImage

from pruneviz.qt import decide_plots as dp


def colours(image: QImage) -> set[str]:
    seen = set()
    for y in range(0, image.height(), 3):
        for x in range(0, image.width(), 3):
            seen.add(image.pixelColor(x, y).name())
    return seen


@pytest.mark.slow  # a subprocess without a display; in-process: test_sensitivity_and_knockout_figures
def test_cli_plot_without_a_display_is_the_apps_figure(tmp_path, qtbot):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "pruneviz", "sweep", "demo:mlp", "--data", "demo:digits", "--methods", "magnitude,random", "--scopes", "layer,global",
           "--levels", "0.3,0.6,0.9", "--out", str(tmp_path / "w.json"), "--plot", str(tmp_path / "w.png"), "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    png = QImage(str(tmp_path / "w.png"))
    assert (png.width(), png.height()) == (900, 560)
    # each of the four curves is drawn in its own colour
    assert {c.lower() for c in dp.PALETTE[:4]} <= colours(png)
    # the same figure as the app builds from the same result
    res = json.loads((tmp_path / "w.json").read_text())
    w = dp.sweep_plot(res)
    qtbot.addWidget(w)
    items = [i for i in w.getPlotItem().listDataItems()]
    assert [i.name() for i in items] == ["magnitude · layer · weights", "magnitude · global · weights", "random · layer · weights", "random · global · weights"]
    xs, ys = items[3].getData()
    pts = sorted(res["curves"][3]["points"], key=lambda p: p["sparsity"])
    assert list(xs) == [p["sparsity"] for p in pts] and list(ys) == [p["accuracy"] for p in pts]


def test_sensitivity_and_knockout_figures(qtbot, tmp_path):
    res = {"baseline": {"accuracy": 0.9, "loss": 0.3}, "granularity": "weight", "method": "magnitude", "levels": [0.5, 0.9],
           "layers": {"a": [{"level": 0.5, "sparsity": 0.5, "accuracy": 0.8, "loss": 0.5}, {"level": 0.9, "sparsity": 0.9, "accuracy": 0.2, "loss": 2.0}],
                      "b": [{"level": 0.5, "sparsity": 0.5, "accuracy": 0.9, "loss": 0.31}, {"level": 0.9, "sparsity": 0.9, "accuracy": 0.85, "loss": 0.4}]}}
    w = dp.sensitivity_plot(res, selected="b")
    qtbot.addWidget(w)
    assert set(w.curves) == {"a", "b"} and w.curves["b"].opts["pen"].width() == 4
    dp.save_png(w, tmp_path / "s.png")
    assert QImage(str(tmp_path / "s.png")).width() == 900
    ko = {"layer": "x", "baseline": {"accuracy": 0.9, "loss": 0.3}, "neurons": [{"index": 0, "accuracy": 0.8, "loss": 0.5}, {"index": 1, "accuracy": 0.9, "loss": 0.3, "pruned": True}, {"index": 2, "accuracy": 0.85, "loss": 0.4}],
          "faithfulness": {"magnitude": {"spearman": 1.0, "top10_overlap": 1.0}}}
    k = dp.knockout_plot(ko, scores=[2.0, 0.0, 1.0], method="magnitude")
    qtbot.addWidget(k)
    assert "Spearman 1.00" in k.getPlotItem().titleLabel.text
    dots = [i for i in k.getPlotItem().listDataItems() if i.name() == "magnitude score (scaled)"][0]
    assert list(dots.getData()[0]) == [0, 2] and list(dots.getData()[1]) == [0.2, 0.1]
