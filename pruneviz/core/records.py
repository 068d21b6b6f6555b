"""Journal records written piece by piece, with bounded memory and short holds of the GIL.

A record of a step is one JSON line; a fine-tune of a 49 M-weight model makes that line hundreds
of megabytes of base64. Building it as one string (``json.dumps``, ``base64.b64encode`` of the
whole delta) would double the memory and hold Python's GIL for a second, freezing the window
while the autosave runs in its background thread. :func:`record_chunks` yields the same line as
bytes chunks of about a megabyte: the delta is deflated in slices (zlib lets other threads run
while it works) and base64-encoded slice by slice.

A record is described by a :class:`Rec`: the op, the step it pushes (a reference to the history's
own step: its flips and delta are not copied), the plan name, and ``at``: the history index after
the record. :func:`tree_records` lists the records of a whole history tree (the compacted journal).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from .history import Step

#: bytes per slice: a multiple of 3, so base64 slices join without padding; small enough that
#: encoding one (which holds the GIL) takes a few milliseconds even on a loaded machine
_SLICE = 3 * (1 << 17)
#: deflate level of weight deltas: XORed float bits are mostly noise in their low bytes, where
#: higher levels buy little and cost several times the time
LEVEL = 1


@dataclass(frozen=True)
class Rec:
    op: str  # "push" | "undo" | "redo" | "plan"
    at: int  # history index once the record is applied
    step: Step | None = None
    plan: str | None = None


class Cancelled(Exception):
    """The writer was asked to stop while a record was being encoded."""


def tree_records(history) -> list[Rec]:
    """The compacted journal of ``history``: the tree of plans depth first (a push per step, undos
    back up to each branch point; a linear history is just its pushes), then the current plan (only
    when it is not the last one written) and undos or redos to the index. Steps are referenced."""
    h = history
    out: list[Rec] = []
    depth = 0
    stack = [(child, False) for child in reversed(h.root.children)]
    while stack:  # iterative depth-first walk: push on the way down, undo on the way up
        node, leaving = stack.pop()
        if leaving:
            depth -= 1
            out.append(Rec("undo", depth))
            continue
        depth += 1
        out.append(Rec("push", depth, node.step, node.name))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.children))
    while out and out[-1].op == "undo":
        out.pop()  # the replay stays at the end of the last plan written
    last = h.plans()[-1] if h.root.children else h.root
    depth = len(last.path())
    if last is not h.tip:
        depth = h.shared(last)
        out.append(Rec("plan", depth, plan=h.current_plan))
    out.extend(walk(depth, h.index))
    return out


def walk(index: int, target: int) -> list[Rec]:
    """The undo or redo records that move a replay from history index ``index`` to ``target``."""
    if target < index:
        return [Rec("undo", i) for i in range(index - 1, target - 1, -1)]
    return [Rec("redo", i) for i in range(index + 1, target + 1)]


def _b64(data) -> bytes:
    import binascii

    return binascii.b2a_base64(data, newline=False)


def _raw_chunks(view: memoryview, cancel):
    for i in range(0, len(view), _SLICE):
        if cancel is not None and cancel():
            raise Cancelled
        yield _b64(view[i : i + _SLICE])


def _deflated_chunks(view: memoryview, cancel):
    z = zlib.compressobj(LEVEL)
    buf = bytearray()
    for i in range(0, len(view), _SLICE):
        if cancel is not None and cancel():
            raise Cancelled
        buf += z.compress(view[i : i + _SLICE])  # zlib lets other threads run meanwhile
        cut = len(buf) - len(buf) % 3
        if cut:
            yield _b64(bytes(buf[:cut]))
            del buf[:cut]
    buf += z.flush()
    for i in range(0, len(buf), _SLICE):
        yield _b64(bytes(buf[i : i + _SLICE]))


def _bytes_of(t) -> memoryview:
    arr = t.detach().cpu().contiguous().numpy()
    return memoryview(arr).cast("B")


def record_chunks(n: int, rec: Rec, cancel=None):
    """The journal line of record number ``n`` (with its newline) as bytes chunks."""
    head = {"n": n, "op": rec.op, "at": rec.at}
    if rec.op == "plan":
        head["name"] = rec.plan
    if rec.op != "push":
        yield (json.dumps(head) + "\n").encode()
        return
    step = rec.step
    head["label"] = step.label
    if rec.plan is not None:
        head["plan"] = rec.plan
    yield json.dumps(head)[:-1].encode() + b', "flips": ['
    for i, f in enumerate(step.flips):
        meta = {"store": f.store, "layer": f.layer, "dtype": str(f.idx.dtype).split(".")[-1]}
        yield (", " if i else "").encode() + json.dumps(meta)[:-1].encode() + b', "idx": "'
        yield from _raw_chunks(_bytes_of(f.idx), cancel)
        yield b'"}'
    yield b"]"
    if step.weights is not None:  # fine-tuned / compensated values: their XOR delta, deflated
        yield b', "weights": ['
        for i, ((kind, name), d) in enumerate(step.weights.parts().items()):
            meta = {"kind": kind, "name": name, "dtype": str(d.dtype).split(".")[-1], "shape": list(d.shape)}
            yield (", " if i else "").encode() + json.dumps(meta)[:-1].encode() + b', "bits": "'
            yield from _deflated_chunks(_bytes_of(d), cancel)
            yield b'"}'
        yield b"]"
    yield b"}\n"


# ------------------------------------------------------------------ the journal file
FORMAT = "pruneviz-session"
#: 3: every record numbered (``"n"``) and placed (``"at"``: the history index after it); a saved
#: session file ends with a checksum line; an autosave journal says so (``"kind": "journal"``)
VERSION = 3


def data_dir() -> Path:
    """Where autosaves live: ``$PRUNEVIZ_DATA_DIR`` or the platform's user data dir."""
    env = os.environ.get("PRUNEVIZ_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("pruneviz", appauthor=False))


def header(session, kind: str = "session") -> dict:
    """The first line of a session file (``kind="session"``) or an autosave journal (``"journal"``)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "model": session.spec,
        "arch": session.arch,
        "data": session.data.spec if session.data is not None else None,
        "seed": session.seed,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_records(fh, recs, start: int = 1, hasher=None, cancel=None) -> int:
    """Write ``recs`` (:class:`~pruneviz.core.records.Rec`) to the binary file ``fh``, numbered
    from ``start``; returns the next number. ``hasher`` (hashlib) sees every byte written."""
    n = start
    for rec in recs:
        for chunk in record_chunks(n, rec, cancel):
            fh.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
        n += 1
    return n
