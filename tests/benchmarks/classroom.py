"""What a lecturer waits for in class.

    presentation_first_paint_ms  start of ``pruneviz gui demo:mlp --presentation`` (a fresh
                                 Python process) to the first painted window, on a 1280×720
                                 screen (the offscreen platform told its size); median of
                                 ``--repeat`` starts, with min and max
    lesson_seconds_max           the slowest lesson's ``pruneviz lesson run NAME`` with its own
                                 seeds (each lesson's time is printed too)

    python tests/benchmarks/classroom.py [--repeat 5] [--lessons playground,criteria] [--skip-lessons]

Both run the real command in a subprocess, as a class would start it; the figures are wall time
on this machine, under whatever else it is doing (say so when you report them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: run in the child: the gui as the CLI starts it, timing the first paint of the main window
_CHILD = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

import pruneviz.qt.app as qtapp

class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and obj.isWidgetType() and type(obj.window()).__name__ == "MainWindow":
            print("FIRST_PAINT", time.time(), flush=True)
            os._exit(0)
        return False

_make = qtapp.make_app
def make_app(*a, **k):
    app = _make(*a, **k)
    app._first_paint = FirstPaint(app)
    app.installEventFilter(app._first_paint)
    return app
qtapp.make_app = make_app

from pruneviz.cli import main
sys.exit(main(["gui", "demo:mlp", "--presentation", "--device", "cpu"]))
"""


def _env(tmp: Path) -> dict:
    screen = tmp / "screen.json"
    screen.write_text(json.dumps({"screens": [{"name": "projector", "x": 0, "y": 0, "width": 1280, "height": 720, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    return {
        **os.environ,
        "QT_QPA_PLATFORM": f"offscreen:configfile={screen}",
        "PYTHONPATH": str(ROOT),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "PRUNEVIZ_DATA_DIR": str(tmp / "pruneviz"),
        "PRUNEVIZ_NO_AUTOSAVE_PROMPT": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def first_paint(repeat: int) -> dict:
    """Milliseconds from spawning the process to the main window's first paint event."""
    times = []
    with tempfile.TemporaryDirectory() as d:
        env = _env(Path(d))
        for _ in range(repeat + 1):  # the first start warms the disk cache: not counted
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("FIRST_PAINT")), None)
            if line is None:
                raise SystemExit(f"the window never painted:\n{out.stderr[-2000:]}")
            times.append((float(line.split()[1]) - t0) * 1000)
    times = times[1:]
    return {"presentation_first_paint_ms": round(statistics.median(times)), "presentation_first_paint_ms_min": round(min(times)), "presentation_first_paint_ms_max": round(max(times)), "starts": len(times)}


def lessons(names: list[str] | None) -> dict:
    """Seconds of ``pruneviz lesson run NAME --out DIR`` per lesson (its default seeds)."""
    sys.path.insert(0, str(ROOT))
    from pruneviz.core import lessons as core

    names = names or [n for n in core.available() if core.load(n).runnable]
    each = {}
    with tempfile.TemporaryDirectory() as d:
        env = _env(Path(d))
        for name in names:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "pruneviz", "lesson", "run", name, "--out", str(Path(d) / name)], env=env, capture_output=True, text=True, timeout=3600, cwd=ROOT)
            each[name] = round(time.perf_counter() - t0, 1)
            if out.returncode != 0:
                each[name] = f"failed ({out.returncode}): {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}"
            print(f"  lesson {name}: {each[name]} s", file=sys.stderr, flush=True)
    timed = {k: v for k, v in each.items() if isinstance(v, float)}
    slowest = max(timed, key=timed.get) if timed else None
    return {"lesson_seconds_max": timed.get(slowest), "lesson_slowest": slowest, "lesson_seconds": each}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="starts timed for the first paint (after one warm-up)")
    ap.add_argument("--lessons", default=None, help="comma-separated lesson names (default: every runnable lesson)")
    ap.add_argument("--skip-lessons", action="store_true")
    a = ap.parse_args(argv)
    result = first_paint(a.repeat)
    print(json.dumps(result), flush=True)
    if not a.skip_lessons:
        result.update(lessons(a.lessons.split(",") if a.lessons else None))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
