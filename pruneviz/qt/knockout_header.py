"""The knockout track's header: the criterion's faithfulness in two short lines, every
criterion's figures in its tooltip (:class:`~pruneviz.qt.knockout_track.KnockoutTrack`)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel

from pruneviz.core.analysis import TOP_K

from .plain import esc

MEASURED = "#D55E00"  #: Okabe-Ito vermillion: what the knockout measured
CRITERION = "#0072B2"  #: the criterion's rank


class HeaderLabel(QLabel):
    """A label that never makes its row wider than the window allows (a 1280-pixel projector in
    presentation mode): with no room it is clipped, and its tooltip still gives every figure."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(1, super().minimumSizeHint().height())


def header_texts(res: dict, method: str, stale: str | None) -> tuple[str, str]:
    """The header's two lines (rich text) and its tooltip (every criterion's figures) for the
    knockout ``res`` with the strip showing ``method``; ``stale``: why it no longer describes the model."""
    faith = res.get("faithfulness", {})
    f = faith.get(method)
    # short: the row it sits in is narrow at 1280 pixels, and "by [method]" beside it names
    # the criterion; the tooltip has every criterion's figures
    if f is None:
        figures = ["ρ n/a", f"no figure for {method}"]
    else:
        rho = "n/a" if f["spearman"] is None else f"{f['spearman']:+.2f}"
        figures = [f"ρ {rho}", f"top-{TOP_K} overlap {f['top10_overlap']:.0%}"]
    if stale is None:
        first = f"<b>Knockout</b> {figures[0]}"
        second = figures[1]
    else:
        first = f"<b><span style='color:{MEASURED}'>⚠ Knockout stale</span></b>"
        second = "the model changed"
    rows = sorted(faith.items(), key=lambda kv: -(kv[1]["spearman"] if kv[1]["spearman"] is not None else -2))
    table = "".join(
        f"<tr><td>{'<b>' + esc(m) + '</b>' if m == method else esc(m)}</td><td align=right>{'n/a' if v['spearman'] is None else format(v['spearman'], '+.3f')}</td>"
        f"<td align=right>{v['top10_overlap']:.0%}</td></tr>" for m, v in rows)
    tip = (f"<b>Knockout of layer {esc(res['layer'])}</b>: each neuron removed alone and evaluated "
           f"(baseline loss {res['baseline']['loss']:.4g}, accuracy {res['baseline']['accuracy']:.4f}).<br>"
           f"How faithfully each criterion ranks the neurons by the measured loss increase:"
           f"<table><tr><th>criterion</th><th>Spearman ρ</th><th>top-{TOP_K} overlap</th></tr>{table}</table>"
           f"Rank column: <span style='color:{CRITERION}'>●</span> the criterion's rank, "
           f"<span style='color:{MEASURED}'>|</span> the measured rank (1 = first to prune).")
    if stale is not None:
        tip = f"<b>Stale</b>: {esc(stale)}. Run the knockout again (Decide ▸ Knockout).<br>" + tip
    return first + "<br>" + second, tip
