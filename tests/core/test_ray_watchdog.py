"""The watchdog of ``--ray local`` (no Ray needed): once its parent is killed it ends the processes
of the parent's session folder and those below them, and leaves every other process alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])

PARENT = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[2])
from pruneviz.core import ray_watchdog
dog = ray_watchdog.start()
grand = "import time; time.sleep(120)"
child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', sys.argv[1]]); time.sleep(120)", grand, sys.argv[1]])
dog.session(sys.argv[1])
print(child.pid, flush=True)
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().decode().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if name.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().decode().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.slow  # three Python processes start (about 2 s on an idle machine, 16 s on a busy one)
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process table from /proc")
def test_watchdog_ends_the_session_below_a_killed_parent_and_nothing_else(tmp_path):
    marker = str(tmp_path / "session_x")  # stands for Ray's session folder
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", marker + "_other"])
    parent = subprocess.Popen([sys.executable, "-c", PARENT, marker, ROOT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child, grand = None, []
    try:
        child = int(parent.stdout.readline())
        assert _wait_until(lambda: bool(_children(child)), 30)
        grand = _children(child)  # no marker in its command line: ended as a process below the session's
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_until(lambda: not _alive(child) and not any(_alive(g) for g in grand), 15)
        assert bystander.poll() is None  # not below the parent, and only names a folder like it
    finally:
        for pid in [p for p in [child, *grand] if p is not None and _alive(p)]:
            os.kill(pid, signal.SIGKILL)
        bystander.kill()
        bystander.wait()
        if parent.poll() is None:
            parent.kill()
