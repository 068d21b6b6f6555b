"""Zip archives read within bounds: every member's uncompressed size is checked before any is inflated.

``torch.save``, ``torch.jit.save``, ``torch.export.save`` and ``numpy.savez`` all write zip
archives. Both readers that then inflate them (Python's :mod:`zipfile`, PyTorch's miniz reader)
allocate what the zip's central directory declares for a member, so summing those declared
sizes bounds the memory a load can take *before* it is spent. Two more things are refused:

* the same name stored twice: Python's ``zipfile`` reads the last copy, PyTorch's reader may read
  another, so a check could read one copy and the load another;
* members that inflate to far more than they take in the file (a "zip bomb"): deflated members
  that together inflate past :data:`BOMB_FLOOR` at over :data:`BOMB_RATIO` to 1. PyTorch itself
  stores tensors uncompressed, so a real model or data file never comes near it.

:func:`check_zip` raises :class:`~pruneviz.core.errors.PrunevizError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from pathlib import Path

from .common import load_error, reason

MAX_MODEL_BYTES = 16 * 1024**3
"""Default bound on what a model archive may inflate to (``open_model(max_bytes=...)``)."""
BOMB_RATIO = 100
BOMB_FLOOR = 64 * 1024**2


def size_text(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


@dataclasses.dataclass
class ZipSummary:
    """What :func:`check_zip` found: the members (no duplicates) and their inflated total."""

    infos: list[zipfile.ZipInfo]
    total: int
    """Sum of the declared uncompressed sizes of all members."""

    @property
    def names(self) -> list[str]:
        return [info.filename for info in self.infos]


def is_zip(source: str | os.PathLike | bytes) -> bool:
    try:
        if isinstance(source, bytes):
            return zipfile.is_zipfile(io.BytesIO(source))
        return zipfile.is_zipfile(source)
    except OSError:
        return False


def check_zip(
    spec: str,
    source: str | os.PathLike | bytes,
    max_bytes: int,
    what: str = "a file",
    key=None,
    bomb_check: bool = True,
) -> ZipSummary:
    """Read the zip directory of ``source`` (a path or the file's bytes) and bound it.

    Raises PrunevizError when it is not a readable zip, names a member twice (after ``key(name)``
    when given: ``numpy`` treats ``x`` and ``x.npy`` as the same array), declares more than
    ``max_bytes`` in all, or (``bomb_check``) inflates like a zip bomb. Returns the members and
    their total.
    """
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
    except Exception as exc:
        raise load_error(f"{spec} is not a readable zip archive ({reason(exc)})") from exc
    seen: set[str] = set()
    for info in infos:
        name = key(info.filename) if key is not None else info.filename
        if name in seen:
            raise load_error(f"{spec} is damaged (duplicate entries named {info.filename!r}): refusing to guess which one is read")
        seen.add(name)
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise load_error(
            f"{spec} inflates to {size_text(total)}, over the {size_text(max_bytes)} limit for {what}"
        )
    if not bomb_check:
        return ZipSummary(infos, total)
    packed = [info for info in infos if info.compress_type != zipfile.ZIP_STORED]
    inflated = sum(info.file_size for info in packed)
    if inflated > BOMB_FLOOR and inflated > BOMB_RATIO * max(1, sum(info.compress_size for info in packed)):
        raise load_error(
            f"{spec} is a decompression bomb: compressed members inflate to {size_text(inflated)} "
            f"(over {BOMB_RATIO}x their size in the file); refusing to read it"
        )
    return ZipSummary(infos, total)


def check_torch_records(spec: str, data: bytes | str | os.PathLike, summary: ZipSummary) -> None:
    """Check that PyTorch's own zip reader sees the same members as Python's ``zipfile``.

    PyTorch strips the archive's top folder from record names; two members that differ only
    there would be one record to PyTorch, so that is refused as a duplicate too.
    """
    import torch

    names = [n for n in summary.names if not n.endswith("/")]
    stripped = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if len(stripped) != len(names):
        raise load_error(f"{spec} is damaged (duplicate entries): refusing to guess which one is read")
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else os.fspath(data)
        records = set(torch._C.PyTorchFileReader(source).get_all_records())
    except Exception as exc:
        raise load_error(f"{spec} is damaged ({reason(exc)})") from exc
    if not records <= stripped:
        raise load_error(f"{spec} is damaged (its zip directory is inconsistent)")


def check_torch_zip(spec: str, path: str | os.PathLike, max_bytes: int, what: str = "a file", bomb_check: bool = True) -> ZipSummary | None:
    """:func:`check_zip` plus :func:`check_torch_records` for a ``torch.save`` file in zip format;
    None (nothing checked) for the legacy and plain-pickle formats, which are not compressed."""
    if not is_zip(path):
        return None
    summary = check_zip(spec, path, max_bytes, what, bomb_check=bomb_check)
    check_torch_records(spec, path, summary)
    return summary
