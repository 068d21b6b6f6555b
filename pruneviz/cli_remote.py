"""``--eval-on``, ``--remote-data`` and ``--remote-model`` for the commands that evaluate (``gui``, ``eval``, ``loop``).

Kept apart from ``cli.py`` so that the options and their checks live in one place; the session
part is :mod:`pruneviz.core.remote_eval`.
"""

from __future__ import annotations

EVAL_ON_HELP = ("evaluate on a Ray replica: local starts a private Ray head on this machine, ray://HOST:PORT joins a cluster's Ray client server "
                "(the replica goes on a GPU when the cluster has one; edits are shipped as flipped indices); default: here")


def add_args(p) -> None:
    """Add ``--eval-on``, ``--remote-data`` and ``--remote-model`` to the parser ``p``."""
    p.add_argument("--eval-on", metavar="local|ray://HOST:PORT", help=EVAL_ON_HELP)
    p.add_argument("--remote-data", metavar="PATH", help="with --eval-on: the evaluation data as the cluster reads it (default: the local data, shipped once)")
    p.add_argument("--remote-model", metavar="PATH", help="with --eval-on: the model file as the cluster reads it, checked to hold the same weights (default: the weights are shipped once)")


def check(args) -> None:
    """Refuse bad values before any work: one line (exit 2)."""
    from pruneviz.core.errors import PrunevizError

    eval_on = getattr(args, "eval_on", None)
    if eval_on is None:
        for option in ("remote_data", "remote_model"):
            if getattr(args, option, None):
                raise PrunevizError(f"--{option.replace('_', '-')} needs --eval-on local|ray://HOST:PORT")
        return
    from pruneviz.core.remote_address import check_client, parse_address
    from pruneviz.core.workers import ray_module

    address = parse_address(eval_on)
    ray_module()  # installed? one line if not
    check_client(address)


def attach(args, session):
    """Put ``session``'s evaluation on the replica that ``args`` ask for (nothing without --eval-on)."""
    if getattr(args, "eval_on", None) is None:
        return session
    from pruneviz.core.remote_eval import attach as attach_remote

    attach_remote(session, args.eval_on, remote_data=getattr(args, "remote_data", None), remote_model=getattr(args, "remote_model", None))
    return session
