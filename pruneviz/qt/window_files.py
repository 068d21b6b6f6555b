"""The window's menus and toolbar, and everything that reads or writes files.

File > Open model / Open data / Open recent, drag and drop of model and ``.npz`` files,
File > Export… (model + JSON report) and Save heatmap as PNG. Opening goes through
:func:`pruneviz.qt.opening.open_session_interactive` (trust and architecture prompts); every write
goes through a Session verb guarded by the status reports' ``guard``.

:class:`FileActions` is a controller object (``window.files``): it takes the window (dialogs'
parent, ``set_session`` for what it opens), the window state, the action registry, the status
reports, the heatmap (Save heatmap as PNG), and for the menus it lays out the editing
controller, the evaluation runner, the run loop, presentation mode and the docks.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, QSettings
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

    It registers the File menu's verbs, Undo / Redo, Stop and Re-evaluate, the View menu's dock
    toggles and presentation entries in the action registry, and lays out the main toolbar; what
    they do goes through the session's verbs (guarded by the status reports) and the window's
    ``set_session``."""

    def __init__(self, window, state, *, actions, status, heatmap, editing, runner, loop, presentation, docks, open_session=None):
        super().__init__(window)
        self._frame = window  # dialogs' parent; ``set_session`` shows what was opened; Quit closes it
        self.state, self.actions, self.status, self.heatmap = state, actions, status, heatmap
        self.session_opener = open_session  #: ``(model, data, arch, trust)`` -> Session; None: Session.open
        self._build_actions(editing, runner, loop, presentation, docks)
        self._fill_recent()

    def _build_actions(self, editing, runner, loop, presentation, docks) -> None:
        acts, guard, state = self.actions, self.status.guard, self.state
        acts.add("open", "&Open model…", self.open_model_dialog, menu="file", shortcut=QKeySequence.StandardKey.Open)
        acts.add("open_spec", "Open by &name…", self.open_spec_dialog, menu="file", shortcut="Ctrl+L",
                 tip="A model file or a demo: name (demo:mlp, demo:cnn)")
        fm = acts.menu("file")
        self.demos_menu = fm.addMenu("&Demos")
        self._fill_demos()
        acts.add("open_data", "Open &data…", self.open_data_dialog, menu="file")
        self.recent_menu = fm.addMenu("Open &recent")
        fm.addSeparator()
        acts.add("save_session", "&Save session…", self.save_session_dialog, menu="file", shortcut=QKeySequence.StandardKey.Save)
        acts.add("open_session", "Open &session…", self.open_session_dialog, menu="file")
        fm.addSeparator()
        acts.add("export", "&Export…", self.export_dialog, menu="file", shortcut="Ctrl+E")
        acts.add("save_heatmap", "Save heatmap as &PNG…", self.save_heatmap_dialog, menu="file")
        fm.addSeparator()
        acts.add("quit", "&Quit", self._frame.close, menu="file", shortcut=QKeySequence.StandardKey.Quit)

        # Undo and Redo head the Edit menu, above the selection's entries (the editing controller's)
        undo = acts.add("undo", "Undo", lambda: guard(state.session.undo), shortcut=QKeySequence.StandardKey.Undo)
        redo = acts.add("redo", "Redo", lambda: guard(state.session.redo), shortcut=QKeySequence.StandardKey.Redo)
        em = acts.menu("edit")
        first = em.actions()[0] if em.actions() else None
        em.insertActions(first, [undo, redo])
        em.insertSeparator(first) if first is not None else em.addSeparator()

        acts.add("stop", "S&top", loop.stop, menu="prune", enabled=False)
        acts.menu("prune").addSeparator()
        acts.add("reevaluate", "Re-&evaluate", runner.request, menu="prune", shortcut="F5")

        for verb, dock in docks.items():
            acts.register(verb, dock.toggleViewAction(), menu="view")
        acts.add("block", editing.block.text(), editing.block.toggle, menu="view", shortcut="B")
        acts.menu("view").addSeparator()
        presentation.add_actions(acts)

        for verb in ("undo", "redo", None, "prune_dialog", "step", "run", "stop"):
            acts.toolbar.addSeparator() if verb is None else acts.toolbar.addAction(acts[verb])
        acts["prune_dialog"].setText("Prune…")

    def _open(self, model: str, data: str | None, arch: str | None = None) -> bool:
        from .opening import open_session_interactive

        s = open_session_interactive(self._frame, model, data, arch, self.session_opener, ask_arch=self.ask_arch, report=self.status.show_error)
        if s is None:
            return False
        self._frame.set_session(s)
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
        data = self.state.session.data.spec if self.state.session is not None and self.state.session.data is not None else None
        return self._open(spec, default_data(spec, None) or data)

    def open_spec_dialog(self) -> None:
        text, ok = QInputDialog.getText(self._frame, "Open by name", "Model: a file path, or demo:mlp / demo:cnn")
        if ok and text.strip():
            self.open_spec(text)

    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._frame, "Save session", "session.pvz", "pruneviz sessions (*.pvz)")
        if path:
            self.save_session(path)

    def save_session(self, path: str) -> bool:
        """Write the session (model spec, data spec, every step of the history) to ``path``."""
        from pruneviz.core import persist

        try:
            persist.save_session(self.state.session, path)
        except (PrunevizError, OSError) as exc:
            self.status.show_error(f"could not save {path}: {exc}")
            return False
        self.status.bar.showMessage(f"saved session {path}", 5000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._frame, "Open session", "", "pruneviz sessions (*.pvz);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        """Reopen a saved session (asks before trusting code its model or data would run)."""
        from pruneviz.core import persist

        from .opening import ask_trust

        for trust in (False, True):
            try:
                notes: list[str] = []  # an older file without a checksum opens, with a word about it
                s = persist.load_session(path, trust=trust, device=self.state.session.device.type if self.state.session is not None else "auto", on_warning=notes.append)
            except TrustRequired as exc:
                if trust or not ask_trust(self._frame, exc):
                    return False
                continue
            except PrunevizError as exc:
                self.status.show_error(error_text(exc))
                return False
            self._frame.set_session(s)
            if notes:
                self.status.bar.showMessage(notes[0], 15_000)
            return True
        return False

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._frame, "Open model", "", "Models (*.pt *.pth *.bin *.safetensors *.pt2 *.ts);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str, arch: str | None = None) -> bool:
        """Open a model file, keeping the current data; asks for --arch when a state_dict needs one."""
        data = self.state.session.data.spec if self.state.session is not None and self.state.session.data is not None else None
        # tried without an architecture first: the engine says when a state_dict needs one
        return self._open(path, data, arch)

    def ask_arch(self, message: str) -> str | None:
        text, ok = QInputDialog.getText(self._frame, "Architecture needed", f"{message}\n\nArchitecture factory (package.module:function):")
        return text.strip() if ok and text.strip() else None

    def open_data_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._frame, "Open evaluation data", "", "Data (*.npz *.pt);;All files (*)")
        if path:
            self.set_data(path)

    def set_data(self, spec: str) -> None:
        """Attach evaluation data; the session's ``changed`` (kind "data") redraws the rest."""
        self.status.guard(self.state.session.set_data, spec)

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
        if ev.mimeData().hasUrls():  # the window asks only while no run holds the session
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            p = urls[0]
            if p.endswith(".npz"):
                self.set_data(p)
            else:
                self.open_path(p)

    def export_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self._frame, "Export pruned model", "pruned.pt", ";;".join(EXPORT_FORMATS))
        if not path:
            return
        fmt, ext = EXPORT_FORMATS.get(flt, ("state_dict", ".pt"))
        shrink = False
        if self.state.session.neuron_pruning:
            shrink = QMessageBox.question(self._frame, "Export", "Remove pruned neurons physically (smaller model)?") == QMessageBox.StandardButton.Yes
        report = os.path.splitext(path)[0] + ".report.json"
        if self.status.guard(self.state.session.export, path, fmt, shrink, report) is not None:
            self.status.bar.showMessage(f"exported {path} and {os.path.basename(report)}", 5000)

    def save_heatmap_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._frame, "Save heatmap", f"{self.state.layer}.png", "PNG (*.png)")
        if path:
            self.save_heatmap(path)

    def save_heatmap(self, path: str) -> bool:
        """The heatmap as the window shows it, written to ``path`` as a PNG."""
        return save_image(self.heatmap.grab(), path)
