"""The one exception type users see.

Everything the engine refuses (bad file, bad spec, bad argument) raises :class:`PrunevizError`
with a one-line message that says what to do. The CLI prints it as ``pruneviz: error: …`` and
exits 2; the app shows it in a dialog. Anything else escaping the engine is a bug.
"""


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` folded onto one line, cut at ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason(exc: BaseException) -> str:
    """The first meaningful line of an exception, for the end of a one-line message."""
    for line in str(exc).splitlines():
        if line.strip():
            return one_line(line.strip(), 200)
    return type(exc).__name__


class PrunevizError(Exception):
    """A user-facing error: one line, says what went wrong and what to do."""


class TrustRequired(PrunevizError):
    """Opening this file would run code from it; the user must pass ``--trust`` / ``trust=True``.

    ``imports`` lists the ``module.name`` globals the file would import, when known, so a
    dialog can show them before asking.
    """

    def __init__(self, message: str, imports: list[str] | None = None):
        super().__init__(message)
        self.imports = list(imports or [])


class ArchRequired(PrunevizError):
    """The file holds only weights: the user must name the factory that builds the model (``--arch``)."""


class SessionBusy(PrunevizError):
    """A running job (a fine-tune, a schedule, a lesson step) holds the session: every edit is
    refused until it finishes or is cancelled. ``job`` is the running :class:`~pruneviz.core.jobs.Job`."""

    def __init__(self, message: str, job=None):
        super().__init__(message)
        self.job = job
