"""Text from files and users, made safe to show on a terminal.

Layer names come from model files (TorchScript and ``.pt2`` archives keep any name a module was
given), paths and error messages from users: printed raw, an escape sequence in them can retitle
the terminal window, write the clipboard (OSC 52), clear the screen, or reverse the text that
follows (U+202E). :func:`printable` writes such characters as Python-style escapes instead.
"""

from __future__ import annotations

import re

# Bidirectional controls (embeddings, overrides, isolates, marks): they reorder what follows.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI), line and paragraph separators, bidi
# controls and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, keep_newlines: bool = False) -> str:
    """``text`` (``str()`` of it) with control characters written as escapes, e.g. ``\\x1b``, ``\\u202e``.

    Escaped: C0 controls (tab and newline included, unless ``keep_newlines`` keeps ``\\n``), DEL,
    C1 controls, U+2028/U+2029, the bidirectional controls and lone surrogates. Everything
    else, non-ASCII letters and symbols included, is kept; a backslash is kept as it is.

    >>> printable("\\x1b]0;pwned\\x07fc1")
    '\\\\x1b]0;pwned\\\\x07fc1'
    """
    text = text if isinstance(text, str) else str(text)
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escape, text)


def is_printable(text: str) -> bool:
    """True when :func:`printable` would leave ``text`` unchanged."""
    return _UNSAFE.search(text) is None

