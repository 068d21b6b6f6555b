"""Saving, reopening and autosaving sessions: a journal of diffs.

A session file is a text journal, one JSON record per line:

* a header: format version, model spec, ``--arch``, data spec, seed;
* ``{"op": "push", "label": …, "flips": [{"store", "layer", "idx": base64 int32/64}]}`` per step;
  a step that changed values (fine-tuning, compensation) adds ``"weights"``: the XOR delta of
  each changed tensor, zlib-compressed and base64-encoded (:mod:`pruneviz.core.deltas`);
* ``{"op": "undo"}`` / ``{"op": "redo"}``;
* since version 2, the tree of plans: a push names the plan it ends (``"plan"``), and
  ``{"op": "plan", "name": …}`` makes that plan's path the current one (at the shared steps).


A push after undos starts a new branch, as it does in :class:`~pruneviz.core.history.History`, so
replaying the records gives back the exact masks and the whole tree of plans (redo included). The same format
serves the autosave: :class:`Autosave` appends one record per edit and fsyncs it, so a crash or
``kill -9`` loses at most the edit being written, and a torn last line is ignored on recovery.
``save_session`` writes a compacted journal atomically. Reopening a session never trusts the
model file on its own: a pickled model needs ``trust=True`` again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from .deltas import WeightDelta
from .deltas import replay as replay_step
from .errors import PrunevizError
from .export import atomic_path
from .history import Flip, Step

FORMAT = "pruneviz-session"
VERSION = 2


def data_dir() -> Path:
    """Where autosaves live: ``$PRUNEVIZ_DATA_DIR`` or the platform's user data dir."""
    env = os.environ.get("PRUNEVIZ_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("pruneviz", appauthor=False))


def _encode(flip: Flip) -> dict:
    arr = flip.idx.numpy()
    return {"store": flip.store, "layer": flip.layer, "dtype": str(arr.dtype), "idx": base64.b64encode(arr.tobytes()).decode("ascii")}


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


def header(session) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": session.spec,
        "arch": session.arch,
        "data": session.data.spec if session.data is not None else None,
        "seed": session.seed,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _step_record(step: Step, plan: str | None = None) -> dict:
    rec = {"op": "push", "label": step.label, "flips": [_encode(f) for f in step.flips]}
    if getattr(step, "weights", None) is not None:  # fine-tuned / compensated values: their XOR delta
        rec["weights"] = step.weights.to_json()
    if plan is not None:
        rec["plan"] = plan
    return rec


def journal_lines(session) -> list[str]:
    """The compacted journal of ``session``: header; the tree of plans depth first (a push per
    step, undos back up to each branch point; a linear history is just its pushes); then the
    current plan (only when it is not the last one written) and undos or redos to the index."""
    h = session.history
    records: list[dict] = []
    stack = [(child, False) for child in reversed(h.root.children)]
    while stack:  # iterative depth-first walk: push on the way down, undo on the way up
        node, leaving = stack.pop()
        if leaving:
            records.append({"op": "undo"})
            continue
        records.append(_step_record(node.step, node.name))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.children))
    while records and records[-1]["op"] == "undo":
        records.pop()  # the replay stays at the end of the last plan written
    at = h.plans()[-1] if h.root.children else h.root
    depth = len(at.path())
    if at is not h.tip:
        records.append({"op": "plan", "name": h.current_plan})
        depth = h.shared(at)
    records += [{"op": "undo"}] * max(0, depth - h.index) + [{"op": "redo"}] * max(0, h.index - depth)
    return [json.dumps(header(session))] + [json.dumps(r) for r in records]


def save_session(session, path) -> None:
    """Write ``session`` (specs, masks as history, redo steps too) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(journal_lines(session)) + "\n")


def read_journal(path) -> tuple[dict, list[dict]]:
    """Parse a journal; a torn last line (crash mid-write) is dropped, anything else bad is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PrunevizError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PrunevizError(f"cannot read session file {path}: {exc}") from None
    lines = text.split("\n")
    torn = not text.endswith("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if torn and i == len(lines) - 1:
                break
            raise PrunevizError(f"{path} is not a pruneviz session file (line {i + 1} is not JSON)") from None
    if not records or not isinstance(records[0], dict) or records[0].get("format") != FORMAT:
        raise PrunevizError(f"{path} is not a pruneviz session file")
    head = records[0]
    version = head.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise PrunevizError(f"{path} is not a pruneviz session file (bad version)")
    if version > VERSION:
        raise PrunevizError(f"{path} was written by a newer pruneviz (session format {version})")
    if not isinstance(head.get("model"), str) or not all(head.get(k) is None or isinstance(head.get(k), str) for k in ("arch", "data")):
        raise PrunevizError(f"{path} is not a pruneviz session file (no model spec)")
    seed = head.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise PrunevizError(f"{path} is not a pruneviz session file (bad seed)")
    return head, records[1:]


def factories(head: dict) -> list[str]:
    """The ``module:function`` specs a session file would import and call when reopened."""
    from .model_io import is_factory_spec

    return [spec for spec in (head.get("arch"), head.get("data")) if isinstance(spec, str) and is_factory_spec(spec)]


def replay(session, records: list[dict], source: str = "session file") -> None:
    """Apply journal records to a fresh ``session`` (its masks and history)."""
    from .session import Change

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
                step = Step(str(rec.get("label", "step")), flips, weights=weights)
                replay_step(session, step, "redo")
                session.history.push(step)
                if isinstance(rec.get("plan"), str):
                    session.history.tip.name = rec["plan"]
            elif op == "plan":
                leaf = session.history.plan(str(rec.get("name")))
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
                raise ValueError(f"unknown record {op!r}")
    except (ValueError, TypeError, KeyError, AttributeError, base64.binascii.Error, zlib.error) as exc:
        raise PrunevizError(f"the {source} does not fit this model: {exc}") from None
    session.changed.emit(Change("load session", frozenset(names), "load"))


def load_session(path, trust: bool = False, device: str = "auto"):
    """Reopen a saved session: the model and data specs, then every step.

    A session file that names ``--arch`` or data factories would import and run them: like a
    pickle, that needs ``trust=True`` (the app asks, listing them)."""
    from .errors import TrustRequired
    from .session import Session

    head, records = read_journal(path)
    code = factories(head)
    if code and not trust:
        raise TrustRequired(f"{path} names code to run when reopened ({', '.join(code)}); pass --trust if you trust it", imports=code)
    session = Session.open(head["model"], data=head.get("data"), arch=head.get("arch"), trust=trust, device=device, seed=int(head.get("seed", 0)))
    replay(session, records)
    return session


class Autosave:
    """Appends every edit of ``session`` to a journal in :func:`data_dir`, fsynced.

    Call :meth:`close` on a clean exit (removes the journal); a journal left behind means the
    app did not exit cleanly, and :func:`recoverable` finds it at the next start.
    """

    def __init__(self, session, directory: Path | None = None):
        self.session = session
        directory = Path(directory) if directory else data_dir() / "autosave"
        directory.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(f"{session.spec}|{os.getpid()}|{time.time()}".encode()).hexdigest()[:12]
        self.path = directory / f"session-{key}.pvz"
        self._fh = None
        self._rewrite()
        session.changed.connect(self._on_change)

    def _rewrite(self) -> None:
        """Write the whole (compacted) journal afresh, e.g. when the header changes."""
        if self._fh is not None:
            self._fh.close()
        with atomic_path(self.path) as tmp:
            tmp.write_text("\n".join(journal_lines(self.session)) + "\n")
        self._fh = open(self.path, "a", encoding="utf-8")

    def _on_change(self, change) -> None:
        if self._fh is None:
            return
        if change.kind in ("data", "plan"):  # the header names the data spec; plans: rare, rewrite
            self._rewrite()
            return
        if change.kind == "edit":
            h = self.session.history
            rec = _step_record(h.steps[h.index - 1], h.current_plan)
        elif change.kind in ("undo", "redo"):
            rec = {"op": change.kind}
        else:
            return
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self, keep: bool = False) -> None:
        """Stop autosaving; remove the journal unless ``keep``."""
        self.session.changed.disconnect(self._on_change)
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not keep:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def recoverable(directory: Path | None = None) -> list[Path]:
    """Autosave journals left by sessions that did not exit cleanly, newest first."""
    directory = Path(directory) if directory else data_dir() / "autosave"
    if not directory.is_dir():
        return []
    return sorted(directory.glob("session-*.pvz"), key=lambda p: p.stat().st_mtime, reverse=True)
