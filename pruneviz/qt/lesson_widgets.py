"""The widgets of the Lesson dock: the caption panel, a chart view and a multiple choice.

:class:`LessonPanel` lays out the title, step counter, caption, the step's picture (a
:class:`ChartView`, the playground, a :class:`PredictView` or "What we saw") and Back / Next;
:class:`~pruneviz.qt.lesson_panel.LessonController` drives it.
"""

from __future__ import annotations

import html
import math

from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontInfo, QPainter
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from . import lesson_charts as lc
from .playground_view import PlaygroundView


class _Painted(QWidget):
    """A boundary or network chart, painted (the plots are pyqtgraph widgets)."""

    def __init__(self, chart: dict, parent=None):
        super().__init__(parent)
        self.chart = chart
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("white"))
        lc.paint(p, QRectF(self.rect()).adjusted(4, 4, -4, -4), self.chart)
        p.end()


class ChartView(QWidget):
    """One or two chart specs side by side: plots as pyqtgraph widgets (text sized from the
    widget's font, so presentation mode scales them), boundary and network painted; or a card
    of big text when a step has no chart (its measured figures)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.charts: list[dict] = []
        self.card = ""  #: big text shown when a step has no chart (its measured figures)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), QColor("white"))
        self.setPalette(pal)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(2, 2, 2, 2)
        self._views: list[tuple[str, QWidget]] = []
        self._card = QLabel()
        self._card.setWordWrap(True)
        self._card.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._card.setStyleSheet("color:#0072B2; background:white;")
        self._row.addWidget(self._card)
        self._card.hide()

    def set_charts(self, charts: list[dict], card: str = "") -> None:
        self.charts = [c for c in charts if c][:2]
        self.card = card
        kinds = [("plot" if c.get("kind") in lc.AXES_KINDS else "paint") for c in self.charts]
        if kinds != [k for k, _ in self._views]:  # rebuild only when the layout changes (live steps redraw often)
            for _, w in self._views:
                self._row.removeWidget(w)
                w.deleteLater()
            self._views = []
            for kind, chart in zip(kinds, self.charts):
                w = lc.plot_widget(chart, self._pixel()) if kind == "plot" else _Painted(chart)
                self._row.addWidget(w, 1)
                self._views.append((kind, w))
        self._draw()
        self._card.setVisible(not self.charts and bool(card))
        self._card.setText(card)

    def _pixel(self) -> float:
        return max(11.0, QFontInfo(self.font()).pixelSize() * 1.15)

    def _draw(self) -> None:
        for (kind, w), chart in zip(self._views, self.charts):
            if kind == "plot":
                lc.draw(w.getPlotItem(), chart, self._pixel())
            else:
                w.chart = chart
                w.update()
        f = QFont(self.font())
        f.setPointSizeF(max(12.0, min(self.height() / 9, self.width() / 22)))
        self._card.setFont(f)

    def changeEvent(self, ev) -> None:
        super().changeEvent(ev)
        if ev.type() == QEvent.Type.FontChange and self.charts:
            self._draw()

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        if self.card and not self.charts:
            self._draw()


class PredictView(QWidget):
    """A multiple-choice question; choosing one (or :meth:`reveal`) shows the answer."""

    answered = Signal(int)  #: 1-based choice

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.question = QLabel()
        self.question.setWordWrap(True)
        lay.addWidget(self.question)
        self.buttons: list[QPushButton] = []
        self._box = QVBoxLayout()
        lay.addLayout(self._box)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        lay.addStretch(1)
        self.step: dict | None = None
        self.revealed = False

    def ask(self, step: dict, base_pt: float) -> None:
        self.step, self.revealed = step, False
        for b in self.buttons:
            b.deleteLater()
        self.buttons = []
        big = QFont(self.font())
        big.setPointSizeF(base_pt * 1.6)
        self.question.setFont(_bold(big))
        self.question.setText(step["question"])
        for i, text in enumerate(step["choices"], 1):
            b = QPushButton(f"{chr(64 + i)}.  {text}")
            b.setFont(big)
            b.setStyleSheet("text-align:left; padding:0.35em 0.8em;")
            b.clicked.connect(lambda _=False, i=i: self.choose(i))
            self._box.addWidget(b)
            self.buttons.append(b)
        mid = QFont(self.font())
        mid.setPointSizeF(base_pt * 1.3)
        self.verdict.setFont(mid)
        self.verdict.setText("Discuss, then choose.")

    def choose(self, i: int) -> None:
        self.answered.emit(i)
        self.reveal(i)

    def reveal(self, chosen: int | None = None) -> None:
        """Show the right answer (and whether ``chosen`` was it)."""
        if self.step is None:
            return
        self.revealed = True
        right = self.step["answer"]
        for i, b in enumerate(self.buttons, 1):
            b.setStyleSheet("text-align:left; padding:0.35em 0.8em;" + ("background:#009E73; color:white; font-weight:bold;" if i == right else ("background:#D55E00; color:white;" if i == chosen else "")))
        head = "Right!" if chosen == right else (f"Not quite: it is {chr(64 + right)}." if chosen else f"Answer: {chr(64 + right)}.")
        self.verdict.setText(f"<b>{head}</b> {html.escape(self.step.get('reveal', ''))}")


def _bold(font: QFont) -> QFont:
    f = QFont(font)
    f.setBold(True)
    return f


class LessonPanel(QWidget):
    """Title, step counter, caption, the step's picture (chart, playground or question), Back / Next."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.counter = QLabel()
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.counter)
        lay.addLayout(top)
        # caption, picture and note scroll when the screen is too small for them: the dock's least
        # height is then the title and the buttons, and Back / Next never leave the screen (a
        # revealed question at presentation size grew the window to 768 pixels on a 720 screen)
        body = QWidget()
        bl = QVBoxLayout(body)
        bl.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(body)
        lay.addWidget(self.scroll, 1)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        bl.addWidget(self.caption)
        self.stack = QStackedWidget()
        self.chart = ChartView()
        self.playground = PlaygroundView()
        self.predict = PredictView()
        # "What we saw": the claim and this run's figures, beside the lesson's last picture
        self.summary_page = QWidget()
        sl = QHBoxLayout(self.summary_page)
        sl.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary_chart = ChartView()
        sl.addWidget(self.summary, 2)
        sl.addWidget(self.summary_chart, 3)
        for w in (self.chart, self.playground, self.predict, self.summary_page):
            self.stack.addWidget(w)
        bl.addWidget(self.stack, 1)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        bl.addWidget(self.note)
        row = QHBoxLayout()
        self.back = QPushButton("◀  Back")
        self.next = QPushButton("Next  ▶")
        self.close_btn = QPushButton("End lesson")
        row.addWidget(self.close_btn)
        row.addStretch(1)
        row.addWidget(self.back)
        row.addWidget(self.next)
        lay.addLayout(row)

    def scale_fonts(self, base_pt: float) -> None:
        """Sizes follow the window's font, so presentation mode's larger font scales the lesson."""
        for w, k, bold in ((self.title, 1.45, True), (self.counter, 1.0, False), (self.caption, 1.3, False), (self.note, 1.0, False), (self.summary, 1.15, False), (self.back, 1.15, False), (self.next, 1.15, True), (self.close_btn, 1.0, False)):
            f = QFont(self.font())
            f.setPointSizeF(base_pt * k)
            f.setBold(bold)
            w.setFont(f)

    # ------------------------------------------------------------------ pages
    def show_opening(self, lesson) -> None:
        """While the lesson's session opens (a generated problem trains its network first)."""
        self.title.setText(lesson.title)
        self.counter.setText("")
        self.caption.setText(html.escape(lesson.summary))
        self.note.setText("Training the network…" if lesson.problem else f"Opening {lesson.model}…")
        self.chart.set_charts([], "")
        self.stack.setCurrentWidget(self.chart)

    def set_buttons(self, run, page: str) -> None:
        """Back / Next (and the playground) for ``run`` on ``page`` (none, opening, intro, step,
        running, summary): Back cancels a running step, Next says what comes."""
        running = page in ("running", "opening")
        self.back.setEnabled(run is not None and (page == "running" or (not running and (run.done > 0 or page == "summary"))))
        self.back.setText("Cancel" if page == "running" else "◀  Back")
        self.next.setEnabled(run is not None and not running and page != "summary")
        if run is not None and not running:
            self.next.setText("What we saw  ▶" if run.done >= len(run.lesson.steps) else "Next  ▶")
        self.playground.setEnabled(not running)

    def show_intro(self, lesson) -> None:
        """Before the first step: how many steps, what the lesson is about, its model."""
        self.counter.setText(f"{len(lesson.steps)} steps")
        self.caption.setText(html.escape(lesson.summary))
        self.note.setText("Press Next to begin.")
        if lesson.problem is not None:
            self.stack.setCurrentWidget(self.playground)
        else:
            self.chart.set_charts([], f"{lesson.model} on {lesson.data}" if lesson.data else lesson.model)
            self.stack.setCurrentWidget(self.chart)

    def show_step(self, r, lesson, base_pt: float) -> None:
        """A finished step's result ``r``: its question (predict), the playground, or its charts."""
        self.note.setText(r.note if r.step["action"] != "predict" else "")
        if r.step["action"] == "predict":
            self.predict.ask(r.step, base_pt)
            self.predict.reveal()
            self.stack.setCurrentWidget(self.predict)
        elif lesson.problem is not None:
            self.playground.refresh()
            self.stack.setCurrentWidget(self.playground)
        else:
            self.chart.set_charts(r.charts, card_text(r))
            self.stack.setCurrentWidget(self.chart)

    def show_summary(self, run, holds: bool | None) -> None:
        """"What we saw": the claim, whether it ``holds`` in this run, the figures it reads, the last chart."""
        verdict = {True: "<span style='color:#0a6b2b'><b>holds</b></span>", False: "<span style='color:#a11'><b>does not hold</b></span>", None: "could not be checked"}[holds]
        # the figures the claim reads (all of them are in the handout)
        names = sorted(run.lesson.claim.names & set(run.figures))
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td align='right'>&nbsp;&nbsp;{figure_text(run.figures[k])}</td></tr>" for k in names)
        self.counter.setText("")
        self.caption.setText("<b>What we saw</b>")
        self.summary.setText(f"<p><b>Claim:</b> {html.escape(run.lesson.claim_text)}</p><p><code>{html.escape(run.lesson.claim.text)}</code> — in this run it {verdict}.</p><table>{rows}</table>")
        self.note.setText(f"measured in this run, seed {run.lesson.seed}")
        last = next((r.charts[-1] for r in reversed(run.results) if r.charts), None)
        if run.lesson.problem is not None and run.results:
            last = run.boundary_chart("the boundary now")
        self.summary_chart.set_charts([last] if last else [])
        self.summary_chart.setVisible(last is not None)
        self.stack.setCurrentWidget(self.summary_page)


def card_text(r) -> str:
    """The big text of a step without a chart: its accuracy figures, else its note."""
    shown = [f"{k.replace('_', ' ')}: {v:.1%}" for k, v in r.figures.items() if not k.endswith("_loss") and 0 <= v <= 1]
    return "\n".join(shown[:4]) or r.note


def figure_text(v: float) -> str:
    """A measured figure for the summary table (– when not finite)."""
    return "–" if not math.isfinite(v) else (f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}")
