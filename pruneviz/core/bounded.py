"""Reading untrusted bytes within limits set before the memory is spent.

* :func:`inflate` stream-inflates zlib data and refuses, as soon as it is passed, anything larger
  than the size the record declares (a 4 MiB "delta" that inflates to gigabytes stops at the
  declared size plus one byte);
* :func:`loads_json` parses JSON nested at most :data:`MAX_JSON_DEPTH` deep: Python's parser
  recurses, so a file of ten thousand ``[`` raises ``RecursionError`` deep in the stack; here it
  is one :class:`ValueError` line.
"""

from __future__ import annotations

import json
import zlib

#: deepest JSON nesting accepted in session files and journals (their records need 4)
MAX_JSON_DEPTH = 64
_CHUNK = 1 << 20


def inflate(data: bytes, limit: int) -> bytes:
    """The zlib stream ``data`` inflated, at most ``limit`` bytes; ValueError past it or when the
    stream is incomplete. Memory held: ``limit`` bytes plus one chunk, whatever ``data`` says."""
    d = zlib.decompressobj()
    out = bytearray()
    pending = memoryview(data)
    try:
        while True:
            room = limit - len(out) + 1  # one byte more than allowed: that is how we see "too large"
            piece = d.decompress(pending, min(room, _CHUNK))
            out += piece
            if len(out) > limit:
                raise ValueError(f"compressed data inflates past the {limit} bytes it declares")
            if d.eof:
                break
            tail = d.unconsumed_tail
            if not tail and not piece:
                raise ValueError("compressed data is incomplete")
            pending = memoryview(tail) if tail else memoryview(b"")
    except zlib.error as exc:
        raise ValueError(f"compressed data is damaged ({exc})") from None
    if d.unused_data:
        raise ValueError("compressed data has trailing bytes")
    return bytes(out)


def depth(obj, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value, counting stops past ``limit`` (no recursion)."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def loads_json(text, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads(text)`` with nesting bounded: ValueError (one line) for deeper input,
    never RecursionError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if depth(value, max_depth) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value
