"""The window's actions by verb: ``window.actions["undo"]`` is the QAction that undoes.

Each user verb the window offers is one :class:`QAction` registered once under a short name,
with what it calls (a Session verb, or a controller's dialog that ends in one), its shortcut
and tooltip, and where it shows: a menu (by key, ``"file"``, ``"edit"``, ``"prune"``, ``"view"``,
``"lessons"``) and the main toolbar. Code that needs an action or a menu asks the registry by
its key, never by the label the user reads (labels change: "Undo prune neurons 3, 7 of fc1").

    acts = ActionRegistry(window)
    acts.add("undo", "Undo", lambda: guard(session.undo), menu="edit", shortcut=QKeySequence.StandardKey.Undo, toolbar=True)
    acts["undo"].trigger()
    acts.menu("prune").addSeparator()

Menus appear in the menu bar in the order of :data:`MENUS`, whichever controller asks first.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

#: menu key -> title, in menu-bar order
MENUS = {"file": "&File", "edit": "&Edit", "prune": "&Prune", "view": "&View", "lessons": "&Lessons"}


class ActionRegistry(QObject):
    """verb -> QAction, and the window's menus and toolbar by key."""

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self._window = window
        self._actions: dict[str, QAction] = {}
        self._menus: dict[str, QMenu] = {}
        self._toolbar: QToolBar | None = None

    def __getitem__(self, verb: str) -> QAction:
        try:
            return self._actions[verb]
        except KeyError:
            raise KeyError(f"no action {verb!r} (known: {', '.join(self._actions)})") from None

    def __contains__(self, verb: str) -> bool:
        return verb in self._actions

    def verbs(self) -> list[str]:
        """The registered verbs, in the order they were added."""
        return list(self._actions)

    def get(self, verb: str) -> QAction | None:
        return self._actions.get(verb)

    def menu(self, key: str) -> QMenu:
        """The menu ``key`` (one of :data:`MENUS`), made in menu-bar order when missing."""
        if key not in self._menus:
            if key not in MENUS:
                raise KeyError(f"no menu {key!r} (known: {', '.join(MENUS)})")
            bar = self._window.menuBar()
            later = [self._menus[k].menuAction() for k in list(MENUS)[list(MENUS).index(key) + 1 :] if k in self._menus]
            menu = QMenu(MENUS[key], bar)
            menu.setObjectName(f"menu_{key}")
            if later:
                bar.insertMenu(later[0], menu)
            else:
                bar.addMenu(menu)
            self._menus[key] = menu
        return self._menus[key]

    @property
    def toolbar(self) -> QToolBar:
        """The main toolbar (fixed, object name ``toolbar_main`` for the saved layout)."""
        if self._toolbar is None:
            self._toolbar = self._window.addToolBar("Main")
            self._toolbar.setObjectName("toolbar_main")
            self._toolbar.setMovable(False)
        return self._toolbar

    def add(self, verb: str, text: str, slot=None, *, menu: str | None = None, shortcut=None, tip: str | None = None,
            toolbar: bool = False, checkable: bool = False, enabled: bool = True) -> QAction:
        """A new action for ``verb`` calling ``slot`` when triggered, put in ``menu`` (and the toolbar)."""
        act = QAction(text, self._window)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                act.setShortcuts([QKeySequence(k) for k in shortcut])
            else:
                act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip)
        act.setCheckable(checkable)
        act.setEnabled(enabled)
        if slot is not None:
            act.triggered.connect(lambda _checked=False: slot())
        return self.register(verb, act, menu=menu, toolbar=toolbar)

    def register(self, verb: str, act: QAction, *, menu: str | None = None, toolbar: bool = False) -> QAction:
        """Register an action made elsewhere (a dock's toggle) under ``verb``."""
        if verb in self._actions:
            raise ValueError(f"action {verb!r} is registered twice")
        act.setObjectName(f"act_{verb}")
        self._actions[verb] = act
        if menu is not None:
            self.menu(menu).addAction(act)
        if toolbar:
            self.toolbar.addAction(act)
        return act
