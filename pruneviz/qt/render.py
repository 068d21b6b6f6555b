"""PNG rendering: the one Qt module the command line imports besides the app (``gui``).

``pruneviz sensitivity/knockout/... --plot`` and ``pruneviz lesson run`` draw their pictures
here, offscreen; every image (these, screenshots, the app's "Save heatmap") is written through
:func:`save_image`, i.e. atomically (:mod:`pruneviz.core.files`): a failed write leaves the old
file whole. Qt and pyqtgraph are imported when a function is called, not with this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from pruneviz.core.files import atomic_path

__all__ = ["save_image", "analysis_png", "chart_png"]


def save_image(image, path) -> bool:
    """Write a ``QImage``/``QPixmap`` to ``path`` atomically (format from its suffix); False
    when Qt could not write it (the old file, if any, is then as before)."""
    try:
        with atomic_path(path) as tmp:
            if not image.save(str(tmp), Path(str(path)).suffix.lstrip(".").upper() or None):
                raise OSError(f"cannot write the image {path}")
    except OSError:
        return False
    return True


def analysis_png(figure, path) -> None:
    """Draw ``figure(decide_plots)`` (a pyqtgraph plot of an analysis result, see
    :mod:`pruneviz.qt.decide_plots`) offscreen and write it to ``path`` as a PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg

    from . import decide_plots

    pg.mkQApp()
    decide_plots.save_png(figure(decide_plots), path)


def chart_png(chart: dict, path) -> None:
    """Write a lesson chart spec as a PNG (the renderer ``lesson run`` hands to the core)."""
    from .lesson_charts import save_png

    save_png(chart, path)
