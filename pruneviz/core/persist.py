"""Saving and reopening sessions: a journal of diffs.

A session file is a text journal, one JSON record per line:

* a header: format version, ``kind`` (``"session"`` for a saved file, ``"journal"`` for an
  autosave), model spec, ``--arch``, data spec, seed;
* ``{"n", "op": "push", "at", "label", "flips": [{"store", "layer", "idx": base64 int32/64}]}``
  per step; a step that changed values (fine-tuning, compensation) adds ``"weights"``: the XOR
  delta of each changed tensor, zlib-compressed and base64-encoded (:mod:`pruneviz.core.deltas`);
* ``{"op": "undo"}`` / ``{"op": "redo"}``;
* the tree of plans: a push names the plan it ends (``"plan"``), and ``{"op": "plan", "name"}``
  makes that plan's path the current one (at the shared steps);
* every record is numbered (``"n"``: 1, 2, …) and says where the history stands after it
  (``"at"``); a saved session file ends with ``{"op": "end", "records", "steps", "sha256"}``, the
  SHA-256 of every byte before that line.

A push after undos starts a new branch, as it does in :class:`~pruneviz.core.history.History`, so
replaying the records gives back the exact masks and the whole tree of plans (redo included).
Reading refuses a saved file that is cut short or altered (checksum, counts, sequence) and a
journal whose middle is damaged; a journal's torn last line (a crash mid-write) is dropped.
Files of format 1 and 2 (no checksum) still open, with a warning (:func:`unchecked`).
Deltas are inflated within the size their tensor has, and JSON nesting is bounded
(:mod:`pruneviz.core.bounded`). The autosave (:mod:`pruneviz.core.autosave`) writes the same format.
Reopening a session never trusts the model file on its own: a pickled model needs ``trust=True``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from .bounded import loads_json
from .deltas import WeightDelta
from .deltas import replay as replay_step
from .errors import PrunevizError, reason
from .files import atomic_path
from .history import Flip, Step
from .records import FORMAT, VERSION, data_dir, header, tree_records, write_records  # noqa: F401 - the journal's format lives with its records

def _decode(rec: dict) -> Flip:
    if not isinstance(rec, dict):
        raise ValueError("bad flip record")
    dtype = {"int32": np.int32, "int64": np.int64}.get(rec.get("dtype"))
    if dtype is None or rec.get("store") not in ("elem", "chan") or not isinstance(rec.get("layer"), str) or not isinstance(rec.get("idx"), str):
        raise ValueError("bad flip record")
    arr = np.frombuffer(base64.b64decode(rec["idx"], validate=True), dtype=dtype).copy()
    if arr.size > 1 and not bool((np.diff(arr.astype(np.int64)) > 0).all()):
        raise ValueError("flip indices must be unique and sorted")  # a repeat would flip twice
    return Flip(rec["store"], rec["layer"], torch.from_numpy(arr))


def save_session(session, path) -> None:
    """Write ``session`` (specs, masks as history, the other plans too) to ``path`` atomically,
    ending with a line that holds the record and step counts and the SHA-256 of everything before
    it: :func:`read_journal` refuses a file cut short or altered."""
    recs = tree_records(session.history)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sha = hashlib.sha256()
        first = (json.dumps(header(session, "session")) + "\n").encode()
        fh.write(first)
        sha.update(first)
        n = write_records(fh, recs, 1, sha)
        end = {"n": n, "op": "end", "records": len(recs), "steps": sum(r.op == "push" for r in recs), "sha256": sha.hexdigest()}
        fh.write((json.dumps(end) + "\n").encode())


def _damaged(path, what: str) -> PrunevizError:
    return PrunevizError(f"{path} is damaged ({what}); it was not opened")


def _check_head(path, head) -> dict:
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise PrunevizError(f"{path} is not a pruneviz session file")
    version = head.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise PrunevizError(f"{path} is not a pruneviz session file (bad version)")
    if version > VERSION:
        raise PrunevizError(f"{path} was written by a newer pruneviz (session format {version})")
    if version >= 3 and head.get("kind") not in ("session", "journal"):
        raise _damaged(path, "unknown kind of file")
    if version < 3 and "kind" in head:  # a version digit altered: a checked file must not pass as an old one
        raise _damaged(path, "its version does not match its header")
    if not isinstance(head.get("model"), str) or not all(head.get(k) is None or isinstance(head.get(k), str) for k in ("arch", "data")):
        raise PrunevizError(f"{path} is not a pruneviz session file (no model spec)")
    seed = head.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise PrunevizError(f"{path} is not a pruneviz session file (bad seed)")
    return head


def read_journal(path) -> tuple[dict, list[dict]]:
    """Parse a session file or journal: its header and its records.

    Journals (autosaves) drop a torn last line (a crash mid-write); anything else bad is a
    one-line :class:`PrunevizError`: a line that is not UTF-8 or JSON, JSON nested deeper than
    :data:`~pruneviz.core.bounded.MAX_JSON_DEPTH`, a record out of sequence, and for a saved
    session file a missing, miscounting or mismatching checksum line (a truncated or altered file).
    Files older than format 3 have no checksum and are read as they are (see :func:`unchecked`)."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise PrunevizError(f"{path} does not exist") from None
    except OSError as exc:
        raise PrunevizError(f"cannot read session file {path}: {exc.strerror or exc}") from None
    sha = hashlib.sha256()
    head, records, end, torn = None, [], None, False
    with fh:
        try:
            for i, raw in enumerate(fh, 1):
                last = not raw.endswith(b"\n")
                try:
                    rec = loads_json(raw.decode("utf-8")) if raw.strip() else None
                except (UnicodeDecodeError, ValueError) as exc:
                    if last and head is not None:
                        torn = True  # a crash in the middle of a write
                        break
                    if head is None:
                        raise PrunevizError(f"{path} is not a pruneviz session file (line 1: {reason(exc)})") from None
                    raise _damaged(path, f"line {i}: {reason(exc)}") from None
                if head is None:
                    if rec is None:
                        continue
                    head = _check_head(path, rec)
                elif rec is None:
                    pass
                elif end is not None:
                    raise _damaged(path, f"line {i} follows the checksum line")
                elif head.get("version", 0) >= 3:
                    if not isinstance(rec, dict) or rec.get("n") != len(records) + 1:
                        raise _damaged(path, f"line {i} is out of sequence")
                    if rec.get("op") == "end":
                        if last:  # even its newline is part of a whole file
                            break
                        end = rec
                        if end.get("sha256") != sha.hexdigest():
                            raise _damaged(path, "its checksum does not match its content")
                        continue
                    records.append(rec)
                else:
                    records.append(rec)
                sha.update(raw)
        except OSError as exc:
            raise PrunevizError(f"cannot read session file {path}: {exc.strerror or exc}") from None
    if head is None:
        raise PrunevizError(f"{path} is not a pruneviz session file")
    if head.get("version", 0) >= 3:
        if head["kind"] == "journal" and end is not None:
            raise _damaged(path, "an autosave journal with a checksum line")
        if head["kind"] == "session":
            if end is None:
                raise PrunevizError(f"{path} is incomplete (cut short: its checksum line is missing); it was not opened")
            steps = sum(1 for r in records if r.get("op") == "push")
            if end.get("records") != len(records) or end.get("steps") != steps:
                raise _damaged(path, f"it declares {end.get('steps')} steps in {end.get('records')} records but holds {steps} in {len(records)}")
    return head, records


def unchecked(head: dict, path) -> str | None:
    """A one-line warning for a session file written before checksums (format < 3), else None."""
    if head.get("version", 0) >= 3:
        return None
    return f"{path} is an older session file (format {head.get('version', 0)}) without a checksum: it opened, but could not be checked for damage"


def factories(head: dict) -> list[str]:
    """The ``module:function`` specs a session file would import and call when reopened."""
    from .model_io import is_factory_spec

    return [spec for spec in (head.get("arch"), head.get("data")) if isinstance(spec, str) and is_factory_spec(spec)]


def replay(session, records: list[dict], source: str = "session file") -> None:
    """Apply journal records to a fresh ``session`` (its masks and history).

    A record that says where the history stands after it (``"at"``, format 3) is checked: a
    journal that does not follow its own history is refused rather than replayed wrong."""
    from .history import Change

    names = {layer.name: layer for layer in session.layers}
    try:
        for rec in records:
            op = rec.get("op") if isinstance(rec, dict) else None
            if op == "push":
                flips = [_decode(f) for f in rec.get("flips", [])]
                for f in flips:
                    layer = names.get(f.layer)
                    limit = None if layer is None else (layer.numel if f.store == "elem" else layer.out_channels)
                    if limit is None or (f.idx.numel() and (int(f.idx.min()) < 0 or int(f.idx.max()) >= limit)):
                        raise ValueError(f"layer {f.layer} does not match the model")
                    if f.store == "chan" and session.coupling is None:
                        raise ValueError("neuron edits on a model without neuron pruning")
                weights = WeightDelta.from_json(rec["weights"], session) if "weights" in rec else None
                label = rec.get("label", "step")
                if not isinstance(label, str):
                    raise ValueError("a step label is not text")
                step = Step(label, flips, weights=weights)
                replay_step(session, step, "redo")
                session.history.push(step)
                if isinstance(rec.get("plan"), str):
                    session.history.tip.name = rec["plan"]
            elif op == "plan":
                if not isinstance(rec.get("name"), str):
                    raise ValueError("a plan name is not text")
                leaf = session.history.plan(rec["name"])
                while session.history.index > session.history.shared(leaf):
                    replay_step(session, session.history.undo_step(), "undo")
                session.history.switch_path(leaf)
            elif op is None and not isinstance(rec, dict):
                raise ValueError("a record is not an object")
            elif op == "undo":
                step = session.history.undo_step()
                if step is not None:
                    replay_step(session, step, "undo")
            elif op == "redo":
                step = session.history.redo_step()
                if step is not None:
                    replay_step(session, step, "redo")
            else:
                raise ValueError(f"unknown record {str(op)[:40]!r}")
            at = rec.get("at")
            if at is not None and at != session.history.index:
                raise ValueError(f"record {rec.get('n')} leaves the history at step {session.history.index}, not {at}")
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, base64.binascii.Error, zlib.error) as exc:
        raise PrunevizError(f"the {source} does not fit this model: {reason(exc)}") from None
    session.changed.emit(Change("load session", frozenset(names), "load"))


def load_session(path, trust: bool = False, device: str = "auto", on_warning=None):
    """Reopen a saved session: the model and data specs, then every step.

    A session file that names ``--arch`` or data factories would import and run them: like a
    pickle, that needs ``trust=True`` (the app asks, listing them). A file older than format 3
    (no checksum) opens, and its one-line warning goes to ``on_warning`` (a callable) or, without
    one, to :func:`warnings.warn`. A truncated or altered file is refused (:func:`read_journal`).

    Example: ``s = load_session("work.pvz", device="cpu")``"""
    from .errors import TrustRequired
    from .session import Session

    head, records = read_journal(path)
    code = factories(head)
    if code and not trust:
        raise TrustRequired(f"{path} names code to run when reopened ({', '.join(code)})", imports=code)
    session = Session.open(head["model"], data=head.get("data"), arch=head.get("arch"), trust=trust, device=device, seed=int(head.get("seed", 0)))
    replay(session, records)
    note = unchecked(head, path)
    if note:
        if on_warning is not None:
            on_warning(note)
        else:
            import warnings

            warnings.warn(note, stacklevel=2)
    return session


# ----------------------------------------------------------------- checks: replay == live
def state_checksum(session) -> str:
    """SHA-256 of what a session is: every mask, every value (live parameters, the originals the
    masks keep, buffers; bit patterns), and the history (index, current plan, every plan's labels).
    Two sessions with equal checksums show and compute the same thing and undo the same way."""
    from .deltas import bits, targets

    h = hashlib.sha256()

    def add(tag: str, t: torch.Tensor) -> None:
        h.update(tag.encode() + b"\0" + str(tuple(t.shape)).encode())
        h.update(bits(t).detach().cpu().contiguous().numpy().tobytes())

    with session.lock:
        for name in sorted(session.masks.elem):
            add(f"elem {name}", session.masks.elem[name])
            add(f"chan {name}", session.masks.chan[name])
        # a parameter's true value under one name, whether it is masked yet ("orig") or not
        # ("param"): the coupling, and with it the masking of biases, is built lazily
        values = {f"{'buffer' if kind == 'buffer' else 'value'} {name}": t for (kind, name), t in targets(session).items()}
        for tag in sorted(values):
            add(tag, values[tag])
        for name, t in sorted(session.model.state_dict().items()):
            add(f"state {name}", t)
        hist = session.history
        h.update(json.dumps([hist.index, hist.current_plan, [[leaf.name, [n.step.label for n in leaf.path()]] for leaf in hist.plans()]]).encode())
    return h.hexdigest()


def replay_matches(session, path, base=None, trust: bool = False) -> bool:
    """Does replaying the journal or session file ``path`` give exactly ``session``?

    ``base``: a fresh, unedited session of the same model to replay into (default: reopened from
    the file's header, on the CPU). Compares :func:`state_checksum`; for tests and for checking
    an autosave by hand (``Autosave.flush()`` first)."""
    from .session import Session

    head, records = read_journal(path)
    if base is None:
        base = Session.open(head["model"], data=head.get("data"), arch=head.get("arch"), trust=trust, device="cpu", seed=int(head.get("seed", 0)))
    replay(base, records)
    return state_checksum(base) == state_checksum(session)


from .autosave import Autosave, claim, move_aside, owner, recoverable  # noqa: E402,F401 - the autosave lives beside (it imports records, not this module); its names stay importable here
