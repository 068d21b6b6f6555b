"""Where a remote evaluation runs: the evaluator address (``local`` or ``ray://HOST:PORT``), the
check that Ray's client is installed for ``ray://``, and what to do about the failures of Ray's
client that say little. Used by :mod:`pruneviz.core.remote_eval` and the command line."""

from __future__ import annotations

from .errors import PrunevizError


def parse_address(text: str) -> str:
    """``local`` (a Ray instance started on this machine) or ``ray://HOST:PORT`` (a cluster's
    Ray client server); anything else is a one-line error."""
    text = (text or "").strip()
    if text == "local" or (text.startswith("ray://") and text[6:].rpartition(":")[2].isdigit() and text[6:].rpartition(":")[0]):
        return text
    raise PrunevizError(f"cannot evaluate on {text!r}", hint="evaluator")


def check_client(address: str) -> None:
    """``ray://`` goes through Ray's client, which needs ``ray[client]`` (grpcio) here: one line if not."""
    import importlib.util

    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise PrunevizError(f"evaluating on {address}: Ray's client is not installed here: pip install 'ray[client]' (or evaluate on local)")


#: what Ray's client says when a cluster fails it, and what to do about it
CLIENT_HINTS = {
    "Initialization failure from server": "the cluster's client server could not start a driver for this connection; try again (a cluster "
    "started with GRPC_ENABLE_FORK_SUPPORT=false avoids it: Ray issue 63202)",
    "connection timeout": "a cluster with Ray's token authentication also needs RAY_AUTH_MODE=token and its token here (RAY_AUTH_TOKEN or ~/.ray/auth_token)",
}


def client_hint(message: str) -> str:
    """``message`` (one line) with what to do, for the failures of Ray's client that say little."""
    message = message.splitlines()[0].rstrip(": ") if message else message
    for key, hint in CLIENT_HINTS.items():
        if key in message:
            return f"{message}: {hint}"
    return message
