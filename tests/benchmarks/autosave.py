"""How long the GUI thread stalls while the autosave journals a weight step.

    python tests/benchmarks/autosave.py [--quick] [--inline]

A fine-tune of a 7000×7000 Linear (49 M weights) changes every weight: its undo step holds a
196 MB XOR delta that the autosave deflates, base64-encodes, writes and fsyncs. The step is
recorded and announced on the GUI thread exactly as a fine-tune's end does (``deltas.record``,
then ``session.changed``); a 5 ms QTimer on the GUI thread records every gap between its ticks
until the journal is written. ``autosave_gui_stall_ms`` is the longest gap (goal ≤ 50);
``autosave_write_s`` how long the writer took; with ``--inline`` the same step is also journalled
on the GUI thread itself, as before the writer thread (``autosave_gui_stall_ms_inline``).
``autosave_gui_stall_floor_ms`` is the same timer's longest gap while a thread keeps a core busy
without holding the GIL: on a loaded machine the scheduler alone costs that much.
--quick uses a 2048×2048 Linear (4 M weights).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

GOALS = {"autosave_gui_stall_ms": ("<=", 50)}


def _session(n: int):
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n, n)).eval()
    x = torch.randn(1, n)
    loaded = LoadedModel(model=model, spec="bench", source="state_dict", arch=None, example_input=x, structured_ok=True)
    return Session(loaded, None, device="cpu")


def _fine_tune_like_step(s):
    """The undo step a fine-tune of every weight leaves: a WeightDelta of all changed values."""
    from pruneviz.core import deltas
    from pruneviz.core.history import Step

    snap = deltas.Snapshot(s)
    with torch.no_grad():
        for t in s.masks.orig.values():
            t.add_(torch.randn_like(t) * 1e-3 * t.abs().mean())
        for name, p in s.masks.params.items():
            if name not in s.masks.orig:
                p.add_(1e-3)
    deltas.refresh(s, list(s.masks.orig))
    return Step("fine-tune 1 epoch", [], weights=snap.delta(s))


def stall(n: int, background: bool = True) -> dict:
    """Longest GUI-thread gap (ms) while the autosave journals one fine-tune-like step of an n×n Linear."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from pruneviz.core import deltas, persist
    from pruneviz.core.history import Change
    from pruneviz.qt.app import make_app

    app = make_app()
    s = _session(n)
    step = _fine_tune_like_step(s)
    with tempfile.TemporaryDirectory() as folder:
        auto = persist.Autosave(s, folder, background=background)
        auto.flush()
        clock = QElapsedTimer()
        gaps: list[int] = []
        last = [0]
        done = [None]

        def tick():
            now = clock.elapsed()
            gaps.append(now - last[0])
            last[0] = now

        def announce():  # what the end of a fine-tune does on the GUI thread
            t0 = time.perf_counter()
            deltas.record(s, step)
            s.changed.emit(Change(step.label, frozenset(layer.name for layer in s.layers)))
            done[0] = t0

        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: loop.quit() if done[0] is not None and not auto.pending else None)
        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        for _ in range(3):
            app.processEvents()
        clock.start()
        timer.start()
        poll.start()
        QTimer.singleShot(50, announce)
        loop.exec()
        written = time.perf_counter() - done[0]
        timer.stop()
        poll.stop()
        size = auto.path.stat().st_size
        ok = persist.replay_matches(s, auto.path, base=_session(n))
        auto.close()
    return {"stall_ms": max(gaps), "write_s": written, "journal_mb": size / 1e6, "replay_matches": ok, "weights": step.weights.values}


def floor(seconds: float) -> float:
    """The same 5 ms timer's longest gap while a sibling thread keeps a core busy without holding
    the GIL (zlib): what the machine's scheduler alone costs, the floor under the figure above."""
    import threading
    import zlib

    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from pruneviz.qt.app import make_app

    make_app()
    data, stop = os.urandom(4 << 20), threading.Event()

    def busy():
        while not stop.is_set():
            zlib.compress(data, 1)

    worker = threading.Thread(target=busy)
    clock, gaps, last = QElapsedTimer(), [], [0]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer, loop = QTimer(), QEventLoop()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    worker.start()
    clock.start()
    timer.start()
    loop.exec()
    timer.stop()
    stop.set()
    worker.join()
    return float(max(gaps))


def figures(quick: bool, inline: bool = False) -> dict:
    n = 2048 if quick else 7000
    r = stall(n, background=True)
    out = {"autosave_gui_stall_ms": float(r["stall_ms"]), "autosave_write_s": r["write_s"], "autosave_journal_mb": r["journal_mb"], "autosave_weights": r["weights"], "autosave_replay_matches": r["replay_matches"]}
    out["autosave_gui_stall_floor_ms"] = floor(min(max(r["write_s"], 1.0), 5.0))
    if inline:
        out["autosave_gui_stall_ms_inline"] = float(stall(n, background=False)["stall_ms"])
    return out


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--inline", action="store_true")
    args = ap.parse_args()
    print(json.dumps(figures(args.quick, args.inline), indent=1))
