"""Qt views and controllers over :class:`pruneviz.core.session.Session` (may import core; never the reverse).

Importing this package works around a reference-count bug seen with PySide6 6.12 on Python 3.11:
several bindings (``QApplication.processEvents``, ``QGraphicsItem.parentItem`` returning None,
Python overrides of virtuals such as ``paint``) drop one reference to ``None`` (and sometimes
``True``/``False``) per call. On Python ≥ 3.12 these objects are immortal (PEP 683) and nothing
happens; on 3.11 a pyqtgraph window aborts with ``Fatal Python error: none_dealloc`` after a few
thousand repaints. We give the three singletons a huge reference count, which is what 3.12 does.
"""

from __future__ import annotations

import sys


def _immortalise_singletons() -> None:
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_immortalise_singletons()
