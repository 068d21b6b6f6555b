"""The window's menus and toolbar, and everything that reads or writes files.

File > Open model / Open data / Open recent, drag and drop of model and ``.npz`` files,
File > Export… (model + JSON report) and Save heatmap as PNG. Opening goes through
:func:`pruneviz.qt.opening.open_session_interactive` (trust and architecture prompts); every write
goes through a Session verb guarded by ``_guard``.

:class:`FileActions` is a controller object: :class:`~pruneviz.qt.main_window.MainWindow` creates
it with itself and keeps it as ``window.files``; it reads the window's ``session``, ``layer``,
``heatmap``, ``runner``, ``loop`` and docks, and reports through ``window.show_error``.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QCoreApplication, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from pruneviz.core.errors import PrunevizError, TrustRequired

from .hints import error_text
from .plain import literal
from .render import save_image

MAX_RECENT = 8
EXPORT_FORMATS = {"state_dict (*.pt)": ("state_dict", ".pt"), "safetensors (*.safetensors)": ("safetensors", ".safetensors"), "pt2 (*.pt2)": ("pt2", ".pt2"), "ONNX (*.onnx)": ("onnx", ".onnx")}


class FileActions(QObject):
    """Menus, toolbar and file handling: a controller that the window assembles.

    It builds the File, Edit, Prune and View menus and the toolbar on ``window`` (its
    ``menuBar()`` and ``addToolBar``) and owns their actions (``act_*``); what they do goes
    through the window's session verbs and views."""

    #: the autosave's writer thread failed (its message); delivered on the GUI thread
    autosave_failed = Signal(str)

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.autosave_failed.connect(lambda message: self.w.statusBar().showMessage(message))
        app = QCoreApplication.instance()
        if app is not None:  # quitting without closing the window keeps the journal: whole
            app.aboutToQuit.connect(self.flush_autosave)
        self._build_actions()
        self._fill_recent()

    def flush_autosave(self) -> None:
        """Wait (up to a minute) for the autosave's writer to write what it has."""
        if self.w.autosave is not None:
            self.w.autosave.flush(60)

    def _build_actions(self) -> None:
        mb = self.w.menuBar()
        fm = mb.addMenu("&File")
        self.act_open = fm.addAction("&Open model…", QKeySequence.StandardKey.Open, self.open_model_dialog)
        self.act_open_spec = fm.addAction("Open by &name…", QKeySequence("Ctrl+L"), self.open_spec_dialog)
        self.act_open_spec.setToolTip("A model file or a demo: name (demo:mlp, demo:cnn)")
        self.demos_menu = fm.addMenu("&Demos")
        self._fill_demos()
        self.act_open_data = fm.addAction("Open &data…", self.open_data_dialog)
        self.recent_menu = fm.addMenu("Open &recent")
        fm.addSeparator()
        self.act_save_session = fm.addAction("&Save session…", QKeySequence.StandardKey.Save, self.save_session_dialog)
        self.act_open_session = fm.addAction("Open &session…", self.open_session_dialog)
        fm.addSeparator()
        self.act_export = fm.addAction("&Export…", QKeySequence("Ctrl+E"), self.export_dialog)
        fm.addAction("Save heatmap as &PNG…", self.save_heatmap_dialog)
        fm.addSeparator()
        fm.addAction("&Quit", QKeySequence.StandardKey.Quit, self.w.close)

        em = mb.addMenu("&Edit")
        self.act_undo = em.addAction("Undo", QKeySequence.StandardKey.Undo, lambda: self.w._guard(self.w.session.undo))
        self.act_redo = em.addAction("Redo", QKeySequence.StandardKey.Redo, lambda: self.w._guard(self.w.session.redo))
        em.addSeparator()
        self.act_prune = em.addAction("Prune selected neurons", lambda: self.w.prune_selected(False))
        self.act_prune.setShortcuts([QKeySequence(Qt.Key.Key_Delete), QKeySequence(Qt.Key.Key_Backspace)])
        self.act_restore = em.addAction("Restore selected neurons", QKeySequence("Shift+Delete"), lambda: self.w.prune_selected(True))
        em.addAction("Clear selection", QKeySequence(Qt.Key.Key_Escape), lambda: self.w._select(set()))

        pm = mb.addMenu("&Prune")
        self.act_prune_dlg = pm.addAction("&Prune…", QKeySequence("Ctrl+P"), self.w.prune_dialog)
        self.act_step = pm.addAction("&Step", QKeySequence("Ctrl+T"), self.w.step)
        self.act_run = pm.addAction("&Run until…", QKeySequence("Ctrl+R"), self.w.run_until_dialog)
        self.act_stop = pm.addAction("S&top", self.w.loop.stop)
        self.act_stop.setEnabled(False)
        pm.addSeparator()
        pm.addAction("Re-&evaluate", QKeySequence("F5"), self.w.runner.request)

        vm = mb.addMenu("&View")
        for d in (self.w.dock_layers, self.w.dock_hist, self.w.dock_acc):
            vm.addAction(d.toggleViewAction())
        self.act_block = vm.addAction(self.w.block.text(), QKeySequence("B"), self.w.block.toggle)
        vm.addSeparator()
        self.w.presentation.add_actions(vm)

        tb = self.w.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        for a in (self.act_undo, self.act_redo, None, self.act_prune_dlg, self.act_step, self.act_run, self.act_stop):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.act_prune_dlg.setText("Prune…")
        self.act_step.setToolTip("Remove the least important neuron (one undo step)")

    def _open(self, model: str, data: str | None, arch: str | None = None) -> bool:
        from .opening import open_session_interactive

        s = open_session_interactive(self.w, model, data, arch, self.w._open_session)
        if s is None:
            return False
        self.w.set_session(s)
        self._add_recent(model)
        return True

    def _fill_demos(self) -> None:
        """One entry per demo model: a click opens it with its data."""
        from pruneviz.core import demo

        self.demos_menu.clear()
        for name, text in demo.NAMES.items():
            act = self.demos_menu.addAction(f"demo:{name} — {text}", lambda name=name: self.open_spec(f"demo:{name}"))
            act.setData(f"demo:{name}")

    def open_spec(self, spec: str) -> bool:
        """Open a model spec as the command line takes it: ``demo:cnn`` (with its demo data), or a
        file (keeping the current data)."""
        from .opening import default_data

        spec = spec.strip()
        if not spec:
            return False
        data = self.w.session.data.spec if self.w.session is not None and self.w.session.data is not None else None
        return self._open(spec, default_data(spec, None) or data)

    def open_spec_dialog(self) -> None:
        text, ok = QInputDialog.getText(self.w, "Open by name", "Model: a file path, or demo:mlp / demo:cnn")
        if ok and text.strip():
            self.open_spec(text)

    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Save session", "session.pvz", "pruneviz sessions (*.pvz)")
        if path:
            self.save_session(path)

    def save_session(self, path: str) -> bool:
        """Write the session (model spec, data spec, every step of the history) to ``path``."""
        from pruneviz.core import persist

        try:
            persist.save_session(self.w.session, path)
        except (PrunevizError, OSError) as exc:
            self.w.show_error(f"could not save {path}: {exc}")
            return False
        self.w.statusBar().showMessage(f"saved session {path}", 5000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Open session", "", "pruneviz sessions (*.pvz);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        """Reopen a saved session (asks before trusting code its model or data would run)."""
        from pruneviz.core import persist

        from .opening import ask_trust

        for trust in (False, True):
            try:
                notes: list[str] = []  # an older file without a checksum opens, with a word about it
                s = persist.load_session(path, trust=trust, device=self.w.session.device.type if self.w.session is not None else "auto", on_warning=notes.append)
            except TrustRequired as exc:
                if trust or not ask_trust(self.w, exc):
                    return False
                continue
            except PrunevizError as exc:
                self.w.show_error(error_text(exc))
                return False
            self.w.set_session(s)
            if notes:
                self.w.statusBar().showMessage(notes[0], 15_000)
            return True
        return False

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Open model", "", "Models (*.pt *.pth *.bin *.safetensors *.pt2 *.ts);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str, arch: str | None = None) -> bool:
        """Open a model file, keeping the current data; asks for --arch when a state_dict needs one."""
        data = self.w.session.data.spec if self.w.session is not None and self.w.session.data is not None else None
        # tried without an architecture first: the engine says when a state_dict needs one
        return self._open(path, data, arch)

    def ask_arch(self, message: str) -> str | None:
        text, ok = QInputDialog.getText(self.w, "Architecture needed", f"{message}\n\nArchitecture factory (package.module:function):")
        return text.strip() if ok and text.strip() else None

    def open_data_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Open evaluation data", "", "Data (*.npz *.pt);;All files (*)")
        if path:
            self._guard_data(path)

    def _guard_data(self, spec: str) -> None:
        """Attach evaluation data; the session's ``changed`` (kind "data") redraws the rest."""
        self.w._guard(self.w.session.set_data, spec)

    def _add_recent(self, path: str) -> None:
        st = QSettings()
        rec = [p for p in (st.value("recent", []) or []) if p != path]
        st.setValue("recent", [path, *rec][:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        rec = QSettings().value("recent", []) or []
        if isinstance(rec, str):
            rec = [rec]
        for p in rec:
            self.recent_menu.addAction(os.path.basename(p) or p, lambda p=p: self.open_path(p)).setToolTip(literal(p))
        self.recent_menu.setEnabled(bool(rec))

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls() and not self.w.edit_pause.paused:  # no opening while a run holds the session
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            p = urls[0]
            if p.endswith(".npz"):
                self._guard_data(p)
            else:
                self.open_path(p)

    def export_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self.w, "Export pruned model", "pruned.pt", ";;".join(EXPORT_FORMATS))
        if not path:
            return
        fmt, ext = EXPORT_FORMATS.get(flt, ("state_dict", ".pt"))
        shrink = False
        if self.w.session.neuron_pruning:
            shrink = QMessageBox.question(self.w, "Export", "Remove pruned neurons physically (smaller model)?") == QMessageBox.StandardButton.Yes
        report = os.path.splitext(path)[0] + ".report.json"
        if self.w._guard(self.w.session.export, path, fmt, shrink, report) is not None:
            self.w.statusBar().showMessage(f"exported {path} and {os.path.basename(report)}", 5000)

    def save_heatmap_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Save heatmap", f"{self.w.layer}.png", "PNG (*.png)")
        if path:
            self.save_heatmap(path)

    def save_heatmap(self, path: str) -> bool:
        return save_image(self.w.heatmap.grab(), path)
