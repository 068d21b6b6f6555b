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


#: What an error asks the user to give or change, by key, in the Python API's words. The message
#: of a :class:`PrunevizError` says what went wrong without naming a front end's controls; its
#: ``hint_key`` names one of these, and each front end words it: a flag on the command line
#: (:data:`pruneviz.cli_common.CLI_HINTS`), a menu in the app (:data:`pruneviz.qt.hints.APP_HINTS`).
HINTS = {
    "data": "give evaluation data (Session.open(..., data=...))",
    "calib_data": "give calibration data (calib_data=..., or evaluation data)",
    "train_data": "give training data (train_data=...; demo models default to demo:digits-train)",
    "example_input": "give evaluation data or an input shape (data=..., or input_shape=(C, H, W); token models: input_dtype='long')",
    "arch": "name the function that builds the model (arch='package.module:function')",
    "trust": "open it with trust=True if you trust its source",
    "no_shrink": "export without shrinking (shrink=False)",
    "allow_divergence": "lower the learning rate, or pass allow_divergence=True to keep going",
    "device": "evaluate on device='auto' or 'cpu'",
    "batch_size": "evaluate in smaller batches (batch_size=...) or on less data",
    "format": "export as a state_dict (format='state_dict')",
    "separate_calib": "give calibration data the model is not evaluated on, e.g. its training data (calib_data=...)",
    "evaluator": "give evaluator='local' (a Ray instance on this machine) or 'ray://HOST:PORT' (a cluster, e.g. ray://10.0.0.5:10001)",
    "layers": "name layers the model has (layers=[...]; glob patterns allowed; see Session.layers)",
}


class Notice(str):
    """A notice a session keeps for the user (``session.notices``): the text, neutral, and like a
    :class:`PrunevizError` an optional ``hint_key`` that each front end words (:meth:`worded`)."""

    hint_key: str | None

    def __new__(cls, text: str, hint: str | None = None):
        if hint is not None and hint not in HINTS:
            raise ValueError(f"unknown hint {hint!r}; one of {', '.join(HINTS)}")
        out = super().__new__(cls, text)
        out.hint_key = hint
        return out

    def worded(self, hints: dict[str, str] | None = None) -> str:
        """The notice with its hint in ``hints``' words (:data:`HINTS` for keys it lacks)."""
        if self.hint_key is None:
            return str(self)
        return f"{self}: {(hints or {}).get(self.hint_key) or HINTS[self.hint_key]}"


class PrunevizError(Exception):
    """A user-facing error: one line, says what went wrong and what to do.

    ``hint_key`` (optional, a key of :data:`HINTS`) says what the user can give or change; the
    message itself stays neutral and ``str()`` adds the hint in the Python API's words, while
    :meth:`worded` lets a front end add it in its own (``--data``, "File > Open data…")."""

    def __init__(self, *args, hint: str | None = None):
        if hint is not None and hint not in HINTS:
            raise ValueError(f"unknown hint {hint!r}; one of {', '.join(HINTS)}")
        super().__init__(*args)
        self.hint_key = hint

    @property
    def message(self) -> str:
        """The neutral message, without the hint."""
        return str(self.args[0]) if self.args else ""

    def worded(self, hints: dict[str, str] | None = None) -> str:
        """The message with its hint in ``hints``' words (a front end's table; :data:`HINTS` for
        keys it lacks)."""
        if self.hint_key is None:
            return Exception.__str__(self)
        said = (hints or {}).get(self.hint_key) or HINTS[self.hint_key]
        return f"{self.message}: {said}"

    def __str__(self) -> str:
        return self.worded()


class TrustRequired(PrunevizError):
    """Opening this file would run code from it; the user must pass ``--trust`` / ``trust=True``.

    ``imports`` lists the ``module.name`` globals the file would import, when known, so a
    dialog can show them before asking.
    """

    def __init__(self, message: str, imports: list[str] | None = None, hint: str | None = "trust"):
        super().__init__(message, hint=hint)
        self.imports = list(imports or [])


class ArchRequired(PrunevizError):
    """The file holds only weights: the user must name the factory that builds the model (``--arch``)."""

    def __init__(self, *args, hint: str | None = "arch"):
        super().__init__(*args, hint=hint)


class SessionBusy(PrunevizError):
    """A running job (a fine-tune, a schedule, a lesson step) holds the session: every edit is
    refused until it finishes or is cancelled. ``job`` is the running :class:`~pruneviz.core.jobs.Job`."""

    def __init__(self, message: str, job=None):
        super().__init__(message)
        self.job = job
