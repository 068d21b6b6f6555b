"""Where the window's parts sit: the centre (layer view over the histogram), the docks, the track.

Layout only: no signal is connected here. :class:`~pruneviz.qt.main_window.MainWindow` calls
these once, after it has made the views and the controllers that own the controls placed here.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget


def dock(window, title: str, widget: QWidget, area) -> QDockWidget:
    """``widget`` in a movable, floatable, closable dock named ``dock_<title>`` (the saved layout's key)."""
    d = QDockWidget(title, window)
    d.setObjectName(f"dock_{title.lower()}")
    d.setWidget(widget)
    d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(area, d)
    return d


def centre(window, view, editing) -> tuple[QSplitter, QHBoxLayout, QHBoxLayout]:
    """The central splitter: the layer view's title, controls, heatmap and strip on top; the
    histogram / filter tabs and the threshold row below. Returns it (the window's centre), the
    strip's row and the view controls' row (the knockout track and its header go there)."""
    # the title and the selection's actions on one line, the view controls on the next: two
    # short rows keep the central area narrow enough for a 1280-pixel projector
    head = QHBoxLayout()
    head.addWidget(view.title, 1)
    head.addWidget(editing.sel_label)
    head.addWidget(editing.block)  # a selection tool: beside the selection's actions
    head.addWidget(editing.prune_sel)
    head.addWidget(editing.restore_sel)
    bar = QHBoxLayout()
    bar.addWidget(QLabel("Show"))
    bar.addWidget(view.mode)
    bar.addWidget(QLabel("by"))
    bar.addWidget(view.method)
    bar.addSpacing(10)
    bar.addWidget(view.sort)
    bar.addStretch(1)
    top = QWidget()
    tl = QVBoxLayout(top)
    tl.setContentsMargins(4, 4, 4, 0)
    tl.addLayout(head)
    tl.addLayout(bar)
    hv = QHBoxLayout()
    hv.setSpacing(2)
    hv.addWidget(view.heatmap, 1)
    hv.addWidget(view.strip)
    tl.addLayout(hv, 1)

    # the histogram shares its place with the per-filter kernels: one selected filter shows
    # there; the threshold row sits under both
    bottom = QWidget()
    bl = QVBoxLayout(bottom)
    bl.setContentsMargins(4, 0, 4, 4)
    bl.addWidget(view.lower_tabs, 1)
    tr = QHBoxLayout()
    tr.addWidget(QLabel("Threshold"))
    tr.addWidget(editing.thr_gran)
    tr.addWidget(editing.threshold, 1)
    tr.addWidget(editing.thr_info)
    tr.addWidget(editing.apply_thr)
    bl.addLayout(tr)

    splitter = QSplitter(Qt.Orientation.Vertical)
    splitter.addWidget(top)
    splitter.addWidget(bottom)
    splitter.setStretchFactor(0, 4)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([560, 300])  # the histogram keeps a readable share at 720 pixels
    window.setCentralWidget(splitter)
    return splitter, hv, bar


def place_knockout_track(track, strip_row: QHBoxLayout, controls: QHBoxLayout, strip, row_height: int) -> None:
    """The knockout track right of the neuron strip, its header at the right end of the view
    controls' row (above the track), kept within that row's height."""
    strip_row.insertWidget(strip_row.indexOf(strip) + 1, track)
    controls.addWidget(track.header)
    track.row_height = row_height
    track.fit_header()
