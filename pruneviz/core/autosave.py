"""The autosave: a journal that follows the session's history, owned by the app that writes it.

**Written from the history, not from the notifications.** The journal remembers which history
state its last record left the replay in (the path of steps, the index, the plan, every step it
has written). On each ``session.changed`` it compares that with the history as it is now and
writes what leads from one to the other: the new steps as pushes, undos and redos to the index;
a change it cannot express so (a plan switched or renamed, steps made and left while no
notification came, a new data spec) rewrites the compacted journal. Notifications that come late,
out of order, or not at all (an edit made with the session's signal blocked) are caught up by the
next one; every record carries its number (``"n"``) and the history index after it (``"at"``),
which the replay checks.

**Off the GUI thread.** With ``background=True`` (the app) the notifying thread only takes a
snapshot of the history (references to its steps, whose flips and weight deltas are immutable)
into a single slot; a writer thread encodes, deflates, writes and fsyncs
(:mod:`pruneviz.core.records`), so memory stays at one snapshot plus a slice of a record, and a
burst of edits is written as one catch-up. :meth:`Autosave.flush` waits for it; close flushes or,
when the journal is to be removed anyway, cancels.

**Owned.** Each journal has a ``.lock`` file beside it that its writer holds with an OS lock
(``flock``) and that names its process id. :func:`recoverable` lists only journals no running
process holds, so a second app never offers (or discards) the journal of the first; the lock
goes with the process, ``kill -9`` included. Journals that cannot be read are moved aside with
:func:`move_aside`, never deleted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import reason
from .files import atomic_path
from .records import Cancelled, Rec, data_dir, header, tree_records, walk, write_records

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: journals are not locked there
    fcntl = None


# ------------------------------------------------------------------------------ ownership
def lock_path(journal) -> Path:
    """The lock file of a journal: ``session-KEY.lock`` beside ``session-KEY.pvz``."""
    return Path(journal).with_suffix(".lock")


class JournalLock:
    """An exclusive OS lock on a journal's ``.lock`` file, which holds the owner's process id.

    flock locks belong to the open file: they end when it is closed or the process dies."""

    def __init__(self, journal: Path, fd: int):
        self.journal = Path(journal)
        self.path = lock_path(journal)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal, create: bool = True) -> "JournalLock | None":
        """The lock, or None when another open file (a running app) holds it."""
        path = lock_path(journal)
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None if create else cls(journal, -1)  # no lock file: nobody owns it
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return None
                raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(journal, fd)

    def release(self, remove: bool = False) -> None:
        """Let go of the lock; ``remove`` deletes the lock file first (while still holding it)."""
        if self._fd is None:
            return
        if remove:
            try:
                self.path.unlink()
            except OSError:
                pass
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = None


def owner(journal) -> int | None:
    """The process id written in a journal's lock file, when it has one."""
    try:
        return int(lock_path(journal).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def claim(journal) -> JournalLock | None:
    """Take a journal over (to recover or discard it): its lock, or None when a running app holds it."""
    if not Path(journal).exists():
        return None
    return JournalLock.acquire(journal)


def _directory(directory) -> Path:
    return Path(directory) if directory else data_dir() / "autosave"


def recoverable(directory: Path | None = None) -> list[Path]:
    """Autosave journals left by apps that did not exit cleanly, newest first. A journal whose
    lock a running app holds is its own, and is not listed."""
    directory = _directory(directory)
    if not directory.is_dir():
        return []
    out = []
    for path in directory.glob("session-*.pvz"):
        lock = JournalLock.acquire(path, create=False)
        if lock is None:
            continue
        lock.release()
        try:
            out.append((path.stat().st_mtime, path))
        except OSError:
            continue
    return [p for _, p in sorted(out, key=lambda t: t[0], reverse=True)]


def move_aside(journal, lock: JournalLock | None = None) -> Path:
    """Rename an unreadable journal to ``<name>.unreadable-<time>`` (no longer listed by
    :func:`recoverable`, still there to look at); returns the new path."""
    journal = Path(journal)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = journal.with_name(f"{journal.name}.unreadable-{stamp}")
    k = 1
    while target.exists():
        k += 1
        target = journal.with_name(f"{journal.name}.unreadable-{stamp}-{k}")
    os.replace(journal, target)
    if lock is not None:
        lock.release(remove=True)
    return target


# ------------------------------------------------------------------------------- the writer
@dataclass(frozen=True)
class _Snap:
    path: tuple  # the history's current path (its Step objects)
    index: int
    plan: str
    head: tuple  # what the header says: model, arch, data, seed
    tree: list  # the compacted journal (records referencing steps)


def _head_key(session) -> tuple:
    return (session.spec, session.arch, session.data.spec if session.data is not None else None, session.seed)


class Autosave:
    """Journals every change of ``session`` to ``directory`` (default: ``data_dir()/autosave``).

    ``background``: encode and write in a writer thread (the app); without it each notification
    writes before it returns. ``on_error(message)`` is called (from the writer's thread) when a
    write fails; autosaving then stops, and :attr:`error` says why. :meth:`close` on a clean exit
    removes the journal; a journal left behind is offered by :func:`recoverable` at the next start.
    """

    def __init__(self, session, directory: Path | None = None, background: bool = False, on_error=None):
        self.session = session
        directory = _directory(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(f"{session.spec}|{os.getpid()}|{time.time()}|{id(self)}".encode()).hexdigest()[:12]
        self.path = directory / f"session-{key}.pvz"
        self._lock = JournalLock.acquire(self.path)
        if self._lock is None:
            raise OSError(f"cannot lock {lock_path(self.path)}")
        self._header = lambda: header(session, "journal")
        self.error: str | None = None
        self._on_error = on_error
        self._cond = threading.Condition()
        self._io = threading.Lock()
        self._want: _Snap | None = None
        self._force = True
        self._busy = self._stop = self._cancel = False
        # what the journal's replay holds after its last record
        self._j_path: list = []
        self._j_index = 0
        self._j_plan: str | None = None
        self._j_head: tuple | None = None
        self._written: dict[int, object] = {}
        self._n = 0
        self._fh = None
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._run, name="pruneviz-autosave", daemon=True)
            self._thread.start()
        session.changed.connect(self._on_change)
        self._notify(force=True)

    # -------------------------------------------------------------- the notifying thread
    def _on_change(self, change) -> None:
        self._notify(force=getattr(change, "kind", "edit") in ("data", "plan", "load"))

    def _notify(self, force: bool = False) -> None:
        s = self.session
        # the session's lock, then ours (this order only): a snapshot is taken whole. A worker
        # that holds the session's lock long (scores) must not freeze the notifying thread: past
        # 50 ms the snapshot is taken without it and the journal rewritten from it (appending
        # relies on a whole snapshot; a rewrite is consistent in itself and the next one heals)
        locked = s.lock.acquire(timeout=0.05)
        try:
            with self._cond:
                if self._stop or self.error is not None:
                    return
                h = s.history
                self._want = _Snap(tuple(h.steps), h.index, h.current_plan, _head_key(s), tree_records(h))
                self._force |= force or not locked
                if self._thread is not None:
                    self._cond.notify_all()
                    return
        finally:
            if locked:
                s.lock.release()
        self._write_pending()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything notified so far is written and fsynced; False on timeout."""
        if self._thread is None:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: (self._want is None and not self._busy) or self.error is not None or not self._thread.is_alive(), timeout)

    @property
    def pending(self) -> bool:
        """True while the writer has work it has not written yet."""
        with self._cond:
            return self._want is not None or self._busy

    def close(self, keep: bool = False) -> None:
        """Stop autosaving. Without ``keep`` the journal is removed (a clean exit; work not yet
        written is dropped, not waited for); with it, everything is written first and it stays."""
        try:
            self.session.changed.disconnect(self._on_change)
        except (TypeError, ValueError, RuntimeError):
            pass
        with self._cond:
            self._stop = True
            self._cancel = not keep
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._io:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if not keep:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            if self._lock is not None:
                self._lock.release(remove=True)
                self._lock = None

    # ----------------------------------------------------------------------- the writer
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._want is not None or self._stop)
                if self._cancel or (self._stop and self._want is None):
                    return
            self._write_pending()

    def _write_pending(self) -> None:
        with self._io:
            with self._cond:
                snap, force = self._want, self._force
                self._want, self._force = None, False
                if snap is None or self.error is not None:
                    return
                self._busy = True
            try:
                if force or self._fh is None or snap.head != self._j_head or not self._append(snap):
                    self._rewrite(snap)
            except Cancelled:
                pass
            except OSError as exc:
                self._fail(f"autosave stopped: cannot write {self.path}: {exc.strerror or exc}")
            except Exception as exc:  # noqa: BLE001 - never into the edit that notified, never a dead writer unsaid
                self._fail(f"autosave stopped: {reason(exc)}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _fail(self, message: str) -> None:
        self.error = message
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # noqa: BLE001 - a reporting callback must not kill the writer
                pass

    def _cancelled(self) -> bool:
        return self._cancel

    def _rewrite(self, snap: _Snap) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            fh.write((json.dumps(self._header()) + "\n").encode())
            n = write_records(fh, snap.tree, 1, cancel=self._cancelled)
        self._fh = open(self.path, "ab")
        self._n = n - 1
        self._written = {id(r.step): r.step for r in snap.tree if r.op == "push"}
        self._j_path, self._j_plan, self._j_head = list(snap.path), snap.plan, snap.head
        self._j_index = snap.tree[-1].at if snap.tree else 0

    def _append(self, snap: _Snap) -> bool:
        """Append the records that lead from the journal's state to ``snap``; False when only a
        rewrite can express the change."""
        ops = self._diff(snap)
        if ops is None:
            return False
        if ops:
            self._n = write_records(self._fh, ops, self._n + 1, cancel=self._cancelled) - 1
            self._fh.flush()
            os.fsync(self._fh.fileno())
        for r in ops:
            if r.op == "push":
                self._written[id(r.step)] = r.step
        self._j_path, self._j_index, self._j_plan = list(snap.path), snap.index, snap.plan
        return True

    def _diff(self, snap: _Snap) -> list[Rec] | None:
        jp, sp = self._j_path, snap.path
        c = 0
        while c < min(len(jp), len(sp)) and jp[c] is sp[c]:
            c += 1
        new = sp[c:]
        nodes = sum(1 for r in snap.tree if r.op == "push")
        if any(id(step) in self._written for step in new):  # steps of another plan: switched
            return None
        if (not new and len(sp) < len(jp)) or len(self._written) + len(new) != nodes:
            return None  # a shorter path, or steps made and left unseen: the tree changed otherwise
        if not new and snap.plan != self._j_plan:
            return None
        ops, idx = [], self._j_index
        if new:
            ops.extend(walk(idx, c))
            idx = c
            for step in new:
                idx += 1
                ops.append(Rec("push", idx, step, snap.plan))
        ops.extend(walk(idx, snap.index))
        return ops
