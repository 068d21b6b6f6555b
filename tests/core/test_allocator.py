"""The allocator thresholds: set by the command line, refused where the user chose otherwise,
and checked by glibc's own accounting of mmapped blocks (mallinfo2), in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pruneviz.core import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc thresholds: Linux only")

PROBE = r"""
import ctypes, json, sys
from pruneviz.core import allocator
applied = allocator.tune_allocator() if sys.argv[1] == "tune" else False

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2().hblks
block = libc.malloc(8 * 1024 * 1024)  # an activation of 8 MB
during = libc.mallinfo2().hblks
libc.free(block)
print(json.dumps({"applied": applied, "why_not": allocator.why_not(), "mmapped": during - before}))
"""


def run(mode: str, **env) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "PRUNEVIZ_MALLOC")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=e, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_blocks_come_from_the_heap_not_fresh_pages():
    default, tuned = run("plain"), run("tune")
    assert default["mmapped"] == 1  # glibc's default: an 8 MB block is a fresh mmap
    assert tuned["applied"] is True and tuned["why_not"] is None
    assert tuned["mmapped"] == 0  # served from the heap, which keeps its pages


@pytest.mark.parametrize("env, reason", [({"PRUNEVIZ_MALLOC": "system"}, "PRUNEVIZ_MALLOC=system"),
                                         ({"MALLOC_TRIM_THRESHOLD_": "131072"}, "MALLOC_TRIM_THRESHOLD_ is set")])
def test_left_alone_where_the_user_chose(env, reason):
    r = run("tune", **env)
    assert r["applied"] is False and r["why_not"] == reason and r["mmapped"] == 1


def test_left_alone_under_another_allocator(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert allocator.why_not() == "another allocator is preloaded"


def test_the_command_line_sets_them(monkeypatch, capsys):
    from pruneviz import cli

    calls = []
    monkeypatch.setattr(allocator, "tune_allocator", lambda: calls.append(1) or True)
    assert cli.main(["lesson", "list"]) == 0
    assert calls == [1]
