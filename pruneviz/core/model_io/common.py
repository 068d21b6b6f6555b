"""Shared by the model openers: the LoadedModel record, one-line errors, quiet torch."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Iterator

import torch

from pruneviz.core.errors import PrunevizError, TrustRequired, one_line, reason  # noqa: F401 - the readers' message helpers


STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
ACCEPTED = "expected .pt, .pth, .bin, .safetensors, .pt2, a TorchScript archive, or demo:NAME"



@dataclasses.dataclass
class LoadedModel:
    """A model ready to inspect and prune, and where it came from."""

    model: torch.nn.Module
    """In eval() mode, on the CPU."""
    spec: str
    """What the user passed."""
    source: str
    """``"demo"``, ``"state_dict"``, ``"safetensors"``, ``"pt2"``, ``"torchscript"`` or ``"pickle"``."""
    arch: str | None
    """The ``--arch`` factory spec, when one built the model."""
    example_input: torch.Tensor | None
    """A batch of one input when known (demo models; .pt2 sample inputs), else None."""
    structured_ok: bool
    """True for real ``nn.Module`` trees; False for .pt2 / TorchScript, whose layers are opaque
    (only weight-level pruning applies)."""
    notices: list[str] = dataclasses.field(default_factory=list)
    """What the user should know about how the model was read (an inferred input, ...)."""


# ---------------------------------------------------------------------------------------------
# Messages


def load_error(message: str, hint: str | None = None) -> PrunevizError:
    return PrunevizError(one_line(message, 1000), hint=hint)


def trust_required(message: str, imports: list[str] | None = None) -> TrustRequired:
    return TrustRequired(one_line(message, 1000), imports=imports)


def name_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


@contextlib.contextmanager
def quiet_torch() -> Iterator[list[BaseException]]:
    """Silence PyTorch's warnings and export logging while we load: failures become our errors.

    Yields a list that collects the exceptions PyTorch logged instead of raising (torch.export.load
    logs the real cause and raises a generic "check the warnings above").
    """
    capture = _Capture()
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    saved = [(logger.propagate, logger.handlers) for logger in loggers]
    for logger in loggers:  # torch._logging gives torch.export its own stderr handler
        logger.propagate = False
        logger.handlers = [capture]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield capture.errors
    finally:
        for logger, (propagate, handlers) in zip(loggers, saved):
            logger.handlers = handlers
            logger.propagate = propagate



def shape_text(t: torch.Tensor | torch.Size) -> str:
    return "[" + ", ".join(str(d) for d in (t.shape if isinstance(t, torch.Tensor) else t)) + "]"
