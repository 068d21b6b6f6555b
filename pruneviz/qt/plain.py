"""Text from files shown as text, never as HTML.

Qt renders a tooltip, a message box or a label with the default text format as rich text when
it *looks* like HTML (``Qt.mightBeRichText``: a tag anywhere on the first line). Layer names,
class names and paths come from files, so a layer named ``<img src=x><b>bold</b>`` would be
drawn bold, and ``<img src=…>`` would make Qt load an image. Tooltips and message boxes go
through :func:`literal`; labels that show such text get :func:`plain_label`; inside rich text that the
program writes itself, file-derived parts are escaped with :func:`html.escape` (``esc``).
"""

from __future__ import annotations

import html

from PySide6.QtGui import Qt


def esc(text: object) -> str:
    """``text`` escaped for rich text that the program writes itself (``<b>{esc(name)}</b>``)."""
    return html.escape(str(text), quote=False)


def literal(text: str) -> str:
    """``text`` for a tooltip or a message box (whose format Qt guesses), shown literally.

    Unchanged when Qt would show it as plain text anyway; otherwise escaped and wrapped in a
    paragraph that keeps its spaces and line breaks (``white-space: pre``), so it reads the same.

    >>> literal("fc1: Linear")
    'fc1: Linear'
    >>> literal("<b>x</b>: Linear")
    "<p style='white-space:pre'>&lt;b&gt;x&lt;/b&gt;: Linear</p>"
    """
    if not text or not Qt.mightBeRichText(text):
        return text
    return f"<p style='white-space:pre'>{esc(text)}</p>"


def plain_label(label, text: str | None = None):
    """Make a QLabel (or QMessageBox) show its text literally; set ``text`` when given. Returns it."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    if text is not None:
        label.setText(text)
    return label
