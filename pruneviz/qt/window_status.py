"""The window's status bar and how it reports: evaluation progress, totals, memory, notices, errors.

The status bar shows the hovered cell, parameter totals, the multiply-accumulates of the original
and the masked model, the memory the session holds (masks, undo history, activation cache), the
evaluation device and progress with a Cancel button.

MACs: Torch-Pruning's counter runs the model once, which takes seconds on an ImageNet model, so
the original model's count (fixed for a session) is made once per session and kept: in a worker
(:class:`~pruneviz.qt.job_runner.JobRunner`) for models above ``SYNC_MACS_PARAMS`` parameters,
on the GUI thread just after the window has updated for smaller ones (demo:cnn: ~3 ms, less than
starting a thread); the masked count follows every edit from it
by arithmetic over the layers (``cost.masked_macs``), without running the model.
Session notices (out-of-memory fallbacks, CPU instead of GPU) and worker failures appear as
status messages; a :class:`PrunevizError` from a verb becomes a message box (``guard``) and
leaves the session unchanged.

:class:`StatusReports` is a controller object (``window.status``): it takes the window it puts
its status bar on (and the message boxes' parent), the window state, the evaluation runner, the
run loop (Cancel stops it) and the accuracy panel (progress and results). It says
``errorShown(message)`` for every error it shows and ``refused(message)`` for an edit refused
because a run holds the session (the edit pause words it).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QPushButton, QStatusBar

from pruneviz.core.errors import PrunevizError, SessionBusy

from .hints import error_text
from .accuracy_plot import ElidedLabel
from .labels import ShrinkingLabel
from .job_runner import JobRunner
from .plain import literal

SYNC_MACS_PARAMS = 1_000_000  # up to this many parameters the count takes a few ms: no worker

MACS_TIP = (
    "multiply-accumulates for one sample (Torch-Pruning's counter; FLOPs ≈ 2 × MACs): "
    "original model → masked model (each layer's MACs × its kept fraction of weights: what "
    "skipping the zeros would save; the masked model still runs dense)"
)


class ElidingStatusBar(QStatusBar):
    """A status bar whose messages never run under its permanent widgets: a message too long for
    the room left is elided with "…" and the whole text is its tooltip (QStatusBar's own
    ``showMessage`` just cuts it off). Same API: ``showMessage(text, timeout_ms)``,
    ``clearMessage()``, ``currentMessage()``, ``messageChanged``."""

    messageChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.message = ElidedLabel()
        self.addWidget(self.message, 3)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clearMessage)

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 - Qt's name
        self.message.setText(text)
        self.messageChanged.emit(text)
        if timeout > 0:
            self._timer.start(timeout)
        else:
            self._timer.stop()

    def clearMessage(self) -> None:  # noqa: N802
        self._timer.stop()
        if self.message.text():
            self.message.setText("")
            self.messageChanged.emit("")

    def currentMessage(self) -> str:  # noqa: N802
        return self.message.text()


def human_count(n: float) -> str:
    """``1_234_567`` -> ``"1.23 M"``: thousands, millions, billions (G), as MAC counts are read."""
    n = float(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f}"


def macs_text(before: int, masked: int) -> str:
    """The status bar's MACs read-out."""
    saved = 1 - masked / before if before else 0.0
    return f"  MACs {human_count(before)} → {human_count(masked)} ({saved:.1%} saved)  "


def shrunk_text(macs_readout: str, m: dict) -> str:
    """The MACs read-out with the measured shrunk model: its MACs and its speed-up."""
    lat = m.get("latency") or {}
    parts = []
    if m.get("macs") is not None:
        parts.append(f"shrunk {human_count(m['macs'])}")
    if lat.get("speedup"):
        parts.append(f"{lat['speedup']:.2f}× faster")
    return macs_readout.rstrip() + (" · " + ", ".join(parts) if parts else "") + "  "


def shrunk_tip(m: dict) -> str:
    """One sentence on the measured shrunk model, for the tooltip and the status message."""
    lat = m.get("latency") or {}
    text = f"shrunk model: {m['params']:,} parameters"
    if m.get("macs") is not None:
        text += f", {m['macs']:,} MACs per sample"
    if lat:
        o, r = lat["original_ms"], lat["shrunk_ms"]
        text += (f"; batch of {lat['batch']} on {lat['device']}: {o['median']:.2f} ms (min {o['min']:.2f}, max {o['max']:.2f}) "
                 f"before, {r['median']:.2f} ms (min {r['min']:.2f}, max {r['max']:.2f}) shrunk")
    return text


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"``: binary multiples, short SI-like names, as file managers show them."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class StatusReports(QObject):
    """Status bar, evaluation progress and error reporting: a controller that the window assembles.

    It puts an :class:`ElidingStatusBar` on ``window`` with the read-outs (hover, totals, memory,
    device, progress, Cancel), follows the evaluation runner, and turns engine refusals into message
    boxes (``guard``)."""

    errorShown = Signal(str)  #: an error was shown (a message box, or an evaluation failure)
    refused = Signal(str)  #: an edit was refused because a run holds the session

    def __init__(self, window, state, *, runner, loop, acc):
        super().__init__(window)
        self._frame = window
        self.state, self.runner, self.loop, self.acc = state, runner, loop, acc
        self.boxes = True  #: errors as message boxes (off: only ``errorShown``, for a screenshot run)
        self._notices_seen = 0
        self.macs_count: tuple[int, dict[str, int]] | None = None  # the original model's, per session
        self._macs_session = None
        self.macs_jobs = JobRunner(self)
        self.macs_jobs.finished.connect(self._on_macs)
        self.macs_jobs.failed.connect(self._on_macs_failed)
        self.macs_jobs.idle.connect(self._count_macs)  # a session switched while counting
        self._macs_soon = QTimer(self)  # small models: counted once the window has updated
        self._macs_soon.setSingleShot(True)
        self._macs_soon.timeout.connect(self._count_macs_here)
        # the shrunk model, measured on demand (Prune > Measure the shrunk model)
        self.shrunk: dict | None = None  #: last measurement, for the masks' version it was made at
        self.shrunk_jobs = JobRunner(self)
        self.shrunk_jobs.finished.connect(self._on_shrunk)
        self.shrunk_jobs.dropped.connect(lambda name: self.bar.showMessage("the model changed while it was measured: measure again", 5000))
        self.shrunk_jobs.failed.connect(lambda name, msg: self.bar.showMessage(f"cannot measure the shrunk model: {msg}", 10_000))
        self._frame.installEventFilter(self)  # the worker stops when the window closes
        self._build_status_bar()
        self._wire_runner()

    def _build_status_bar(self) -> None:
        sb = ElidingStatusBar(self._frame)
        self._frame.setStatusBar(sb)
        self.bar = sb
        self.hover = ElidedLabel(" ")
        self.device = QLabel()
        # the read-outs take their text's width when there is room and are elided when there is
        # not: the status bar never makes the window wider than a 1024-pixel screen
        self.totals = ShrinkingLabel()
        self.macs = ShrinkingLabel()
        self.macs.setTip(MACS_TIP)
        self.memory = ShrinkingLabel()
        self.memory.setTip("memory held by masks and original values, undo history, and cached activations")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(150)
        self.progress.setTextVisible(True)
        self.progress.setFormat("eval %p%")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        sb.addWidget(self.hover, 2)
        sb.addPermanentWidget(self.totals)
        sb.addPermanentWidget(self.macs)
        sb.addPermanentWidget(self.memory)
        sb.addPermanentWidget(self.device)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel)
        self.cancel.clicked.connect(self._cancel_clicked)

    def _wire_runner(self) -> None:
        r = self.runner
        r.started.connect(lambda req: (self.progress.setValue(0), self.cancel.setEnabled(True)))
        r.progress.connect(self._on_progress)
        r.finished.connect(self._on_result)
        r.baselineReady.connect(self.acc.set_baseline)
        r.failed.connect(self._on_failed)
        r.cancelled.connect(lambda: self.acc.clear_running("evaluation cancelled"))
        r.idle.connect(lambda: self.cancel.setEnabled(False))

    def follow_session(self, s) -> None:
        """A new session: its device, and only notices from now on."""
        self._notices_seen = len(s.notices)
        from pruneviz.core.evaluate import device_name

        self.device.setText(f"  {device_name(s.device)}  ")
        self.device.setToolTip("where the model is evaluated")
        self.acc.set_calibration(s.calibration_info())
        self.macs_count = None
        self._macs_session = s
        self.shrunk = None  # a measurement of the previous session's model (and no reference to it)
        self.macs.setText("  MACs …  ")
        self.macs.setTip("counting the model's multiply-accumulates (Torch-Pruning's counter)")
        self.macs_jobs.cancel()
        self._count_macs()

    def refresh_totals(self) -> None:
        s = self.state.session
        self.totals.setText(f"  {s.params_remaining():,} / {s.original_params:,} params · sparsity {s.sparsity():.1%}  ")
        self.refresh_macs()
        self._refresh_memory()

    # ------------------------------------------------------------------ MACs
    def _count_macs(self) -> None:
        """Count the session's original MACs in the worker (once; later when it is busy)."""
        s = self._macs_session
        if s is None or self.macs_count is not None or self.macs_jobs.busy:
            return
        if s.original_params <= SYNC_MACS_PARAMS:
            self._macs_soon.start(0)
            return

        def job(cancel):
            yield "counting"  # a switch before the count starts closes the job here
            from pruneviz.core.cost import original_macs

            return s, original_macs(s)

        self.macs_jobs.start("macs", job)

    def _count_macs_here(self) -> None:
        s = self._macs_session
        if s is None or self.macs_count is not None:
            return
        from pruneviz.core.cost import original_macs

        self._on_macs("macs", (s, original_macs(s)))

    def _on_macs(self, _name, value) -> None:
        s, counted = value
        if s is not self._macs_session:
            return  # a count for a session no longer shown
        if counted is None:
            self.macs_count = (0, {})
            self.macs.setText("  MACs n/a  ")
            self.macs.setTip("Torch-Pruning's counter cannot run this model (or it has no example input)")
            return
        self.macs_count = counted
        self.macs.setTip(MACS_TIP)
        self.refresh_macs()

    def _on_macs_failed(self, _name, msg: str) -> None:
        self.macs_count = (0, {})
        self.macs.setText("  MACs n/a  ")
        self.macs.setTip(f"counting MACs failed: {msg}")

    def refresh_macs(self) -> None:
        """The masked model's MACs from the kept count (arithmetic over the layers: no model run)."""
        if not self.macs_count or not self.macs_count[0] or self._macs_session is not self.state.session:
            return
        from pruneviz.core.cost import masked_macs

        total, per = self.macs_count
        text, tip = macs_text(total, masked_macs(self.state.session, total, per)), MACS_TIP
        m = self.shrunk
        if m is not None and m["session"] is self.state.session and m["version"] == self.state.session.version:
            text, tip = shrunk_text(text, m), tip + "; " + shrunk_tip(m)
        self.macs.setText(text)
        self.macs.setTip(tip)

    def measure_shrunk(self) -> bool:
        """Build the shrunk model (pruned neurons and heads removed) in a worker, count its MACs and
        time it against the original on the session's device. The figures join the MACs read-out
        until the next edit. Returns False while a measurement is running."""
        s = self.state.session
        if s is None or self.shrunk_jobs.busy:
            return False
        version = s.version

        def job(cancel):
            from pruneviz.core.cost import compare_latency, count_macs
            from pruneviz.core.export import build_shrunk

            model, _ = build_shrunk(s)
            counted = count_macs(model.eval(), s.example_input()[:1].cpu())
            return {"session": s, "version": version, "macs": counted[0] if counted else None, "params": sum(p.numel() for p in model.parameters()), "latency": compare_latency(s, model)}
            yield  # a generator: the JobRunner runs it in the worker

        self.bar.showMessage("measuring the shrunk model…")
        return self.shrunk_jobs.start("shrunk model", job, session=s)  # keyed: an edit meanwhile drops it

    def _on_shrunk(self, _name, m) -> None:
        if m["session"] is not self.state.session:
            return
        self.shrunk = m
        self.bar.showMessage(shrunk_tip(m), 10_000)
        self.refresh_macs()

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self._frame and ev.type() == QEvent.Type.Close:
            self.macs_jobs.shutdown(5000)
            self.shrunk_jobs.shutdown(5000)
        return False

    def _refresh_memory(self) -> None:
        mem = self.state.session.memory()  # the cache sums itself under its lock
        disk = mem.get("history_disk", 0)
        on_disk = f" (+{human_bytes(disk)} on disk)" if disk else ""
        self.memory.setText(f"  masks {human_bytes(mem['masks'])} · history {human_bytes(mem['history'])}{on_disk} · cache {human_bytes(mem['cache'])}  ")
        self.memory.setTip(
            f"memory held by masks and original values ({mem['masks']:,} bytes), undo history ({mem['history']:,} bytes) and cached activations ({mem['cache']:,} bytes)"
            + (f"; fine-tuning deltas past the in-memory budget are kept on disk ({disk:,} bytes)" if disk else "")
            + f"\n{self.state.session.evaluation.cache_info()}"
        )

    def _show_notices(self) -> None:
        """New fallback messages of the session (out of memory, CPU instead of GPU) → status bar."""
        s = self.state.session
        new = s.notices[self._notices_seen :]
        self._notices_seen = len(s.notices)
        if new:
            self.bar.showMessage(" · ".join(new), 15_000)

    def guard(self, fn, *args, **kw):
        """Call a Session verb; a PrunevizError becomes a message box and leaves the session unchanged
        (a refusal because a run holds the session is said in the status bar instead)."""
        try:
            return fn(*args, **kw)
        except SessionBusy as exc:  # a run holds the session: not an error, a wait (status bar)
            self.refused.emit(str(exc))
            return None
        except PrunevizError as exc:
            self.show_error(error_text(exc))
            return None

    def show_error(self, msg: str) -> None:
        """Say ``errorShown(msg)``, and show it in a message box unless ``boxes`` is off."""
        self.errorShown.emit(msg)
        if self.boxes:
            QMessageBox.warning(self._frame, "pruneviz", literal(msg))

    def _cancel_clicked(self) -> None:
        self.loop.stop()
        self.runner.cancel()

    def _on_progress(self, req, p) -> None:
        self.progress.setValue(int(100 * p.fraction))
        self.acc.set_progress(req, p)

    def _on_result(self, req, r) -> None:
        self.progress.setValue(100)
        self.cancel.setEnabled(self.loop.running)
        self.acc.set_result(req, r, incremental=self.state.session.incremental)
        self.device.setText(f"  {r.device}  ")
        self._refresh_memory()
        self._show_notices()

    def _on_failed(self, req, msg: str) -> None:
        """An exception in the worker: say so in the accuracy panel and the status bar; the
        window keeps working and the next edit evaluates again."""
        self.acc.clear_running(f"evaluation failed: {msg}")
        self.cancel.setEnabled(False)
        self.bar.showMessage(f"evaluation failed: {msg}", 15_000)
        self.errorShown.emit(f"evaluation failed: {msg}")
        self._show_notices()
