"""Writing files atomically: the one helper every writer in pruneviz uses.

:func:`atomic_path` yields a temporary path beside the target; on success the temporary file is
fsynced and renamed over the target, so a failed or interrupted write leaves the old file whole.
:func:`atomic_write_bytes` and :func:`atomic_write_text` wrap it for data already in memory.

A crash (``kill -9``, power loss) between creating the temporary file and renaming it leaves
``.<stem>.<pid>-XXXXXXXX.tmp<suffix>`` beside the target. Such leftovers of ours are removed at
the next write of the same target: those whose process is gone, and those without a process id
(written by pruneviz before 0.3) once they are an hour old. Another process's write in flight is
never touched.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import PrunevizError

#: temporary files without a process id (older pruneviz) are removed once this old (seconds)
LEGACY_TMP_AGE = 3600.0


def check_target(path) -> None:
    """Refuse, before any work, a path that cannot be written as a file."""
    text = str(path)
    if not text or "\0" in text:
        raise PrunevizError(f"cannot write {text!r}: not a file name")
    p = Path(text)
    if text.endswith(("/", "\\")) or p.is_dir():
        raise PrunevizError(f"cannot write {text}: it is a folder; give a file name")
    if not p.parent.is_dir():
        raise PrunevizError(f"cannot write {text}: folder {p.parent} does not exist")


def new_file_mode(path) -> int:
    """Permission bits for writing ``path``: an existing file keeps its own, a new one gets
    0666 less the umask (0644 under the usual 022), as a plain ``open()`` would give it."""
    try:
        return Path(path).stat().st_mode & 0o777
    except OSError:
        pass
    umask = 0o022
    try:  # read without os.umask(), which would briefly change it for every thread
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
                break
    except (OSError, ValueError, IndexError):
        pass
    return 0o666 & ~umask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own: possibly another thread's write in flight
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def leftover_temps(path) -> list[Path]:
    """Temporary files a crashed write of ``path`` left beside it (see the module notes)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    mine = re.compile(re.escape(f".{path.stem}.") + r"(?:(\d+)-)?[A-Za-z0-9_]{6,}" + re.escape(f".tmp{path.suffix}") + r"\Z")
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    now = time.time()
    for entry in entries:
        m = mine.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not os.path.isfile(entry) or os.path.islink(entry):
            continue
        if m.group(1) is not None:
            if not _alive(int(m.group(1))):
                out.append(entry)
        elif now - st.st_mtime > LEGACY_TMP_AGE:
            out.append(entry)
    return out


def clean_leftovers(path) -> int:
    """Remove :func:`leftover_temps` of ``path``; returns how many went."""
    n = 0
    for entry in leftover_temps(path):
        try:
            entry.unlink()
            n += 1
        except OSError:
            pass
    return n


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``.

    The temporary name keeps ``path``'s suffix (torch.export checks it). Leftovers of earlier
    crashed writes of the same target are removed first."""
    check_target(path)
    path = Path(path)
    clean_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-", suffix=f".tmp{path.suffix}", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode(path))  # mkstemp makes 0600; a plain open() honours the umask
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); an OSError becomes a
    one-line :class:`PrunevizError`."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
    except OSError as exc:
        raise PrunevizError(f"cannot write {path}: {exc.strerror or exc}") from None


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))
