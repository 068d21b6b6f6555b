"""The criteria tab of the Decide dock: two criteria's maps of one layer side by side (each on
its own colour scale: chosen automatically, log or rank for heavy-tailed scores, switchable), a
scatter of one against the other with pruned entries marked, and the share of the k lowest both
criteria agree on. The scores come from :func:`pruneviz.core.analysis.compare`."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QVBoxLayout, QWidget

from pruneviz.core import analysis, units

from . import decide_plots as dp
from .plain import plain_label


class CriteriaView(QWidget):
    """Controls and plots; ``result`` is the last :func:`~pruneviz.core.analysis.compare` summary.
    ``fill(combo, granularity)`` fills a method list (the panel's, which knows the session)."""

    def __init__(self, state, fill, parent=None):
        super().__init__(parent)
        self.state = state
        self.result: dict | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.setSpacing(3)
        self.gran = QComboBox()
        self.gran.addItems(units.leveled())
        self.a, self.b = QComboBox(), QComboBox()
        self.scale = QComboBox()
        self.scale.addItems(["auto", "linear", "log", "rank"])
        self.run = QPushButton("Compare")
        self.scale.currentTextChanged.connect(lambda _s: self.draw())
        self.gran.currentTextChanged.connect(lambda g: (fill(self.a, g), fill(self.b, g)))
        lay.addLayout(dp.row(self.gran, self.a, "vs", self.b, "scale", self.scale, self.run))
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.imgs, self.masks, self.titles = [], [], []
        for col in range(2):
            p = self.view.addPlot(row=0, col=col)
            p.invertY(True)
            img = pg.ImageItem(axisOrder="row-major")
            mask = pg.ImageItem(axisOrder="row-major")  # pruned entries in grey, over the scores
            p.addItem(img)
            p.addItem(mask)
            self.imgs.append(img)
            self.masks.append(mask)
            self.titles.append(p)
        self.scatter = self.view.addPlot(row=0, col=2)
        self.scatter.showGrid(x=True, y=True, alpha=0.2)
        dp.plain_axes(self.scatter)
        lay.addWidget(self.view, 1)
        self.info = plain_label(QLabel(""))  # names a layer from the file
        self.info.setWordWrap(True)  # one long line made the window 1,700 pixels wide in presentation mode
        lay.addWidget(self.info)

    def draw(self) -> None:
        res = self.result
        if res is None:
            return
        s = self.state.session
        info = s.layer(res["layer"])
        rows = info.view_shape[0] if units.get(res["granularity"]).edits == "elem" else 1
        pruned = res["pruned"].numpy()
        shown = []
        for k, m in enumerate(res["methods"]):
            scale = res["scale"][m] if self.scale.currentText() == "auto" else self.scale.currentText()
            v = analysis.scaled(res["scores"][m], scale).numpy().astype(np.float32)
            shown.append(v)
            img = v.reshape(rows, -1)
            kept = ~pruned
            lo, hi = (float(v[kept].min()), float(v[kept].max())) if kept.any() else (0.0, 1.0)
            self.imgs[k].setImage(np.where(pruned.reshape(rows, -1), lo, img), levels=(lo, hi if hi > lo else lo + 1), lut=pg.colormap.get("viridis").getLookupTable(nPts=256))
            rgba = np.zeros((*img.shape, 4), dtype=np.uint8)
            rgba[pruned.reshape(rows, -1)] = (190, 190, 190, 255)
            self.masks[k].setImage(rgba, levels=(0, 255))
            self.titles[k].setTitle(f"{m} ({scale})", color="k")
        sc = self.scatter
        sc.clear()
        a, b = shown
        sc.plot(a[~pruned], b[~pruned], pen=None, symbol="o", symbolSize=3, symbolBrush=dp.color(0), symbolPen=None)
        if pruned.any():
            sc.plot(a[pruned], b[pruned], pen=None, symbol="x", symbolSize=5, symbolBrush="#D55E00", symbolPen="#D55E00")
        sc.setLabel("bottom", res["methods"][0])
        sc.setLabel("left", res["methods"][1])
        self.info.setText(f"layer {res['layer']}: of the {res['k']} lowest kept {res['granularity']}s, {res['agreement']:.0%} are the same for both criteria (pruned ones: grey in the maps, red × in the scatter)")
