"""Tear down the local Ray cluster of a process that dies, a ``kill -9`` included.

``--ray local`` starts Ray's processes (GCS, raylet, dashboard and runtime-env agents, log monitor,
workers) as children of our process. Ray ties the GCS and the raylet to us, but its agents,
children of the raylet, wait for a GCS that is gone: after a ``kill -9`` of ``pruneviz
sensitivity --ray local`` they were still running a minute later.

:func:`start` runs this file as a small separate process (standard library only, isolated from
the environment) before Ray starts. Every half second it records the processes below ours (pid
and start time, so a reused pid is never mistaken for one of them). When our process is gone,
whether it exited or was killed, it ends those that are still running, with the processes that
name our Ray session folder in their command line (told to it with :func:`Watchdog.session`) and
their children: SIGTERM, then SIGKILL after a grace period. It never touches a process that was
not below ours or in our session, so other Ray clusters on the machine are left alone.

Linux reads ``/proc``; elsewhere ``ps`` is asked (pid, parent and command only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

INTERVAL_S = 0.5  #: how often the processes below ours are recorded
GRACE_S = 3.0  #: how long SIGTERM is given before SIGKILL


# ------------------------------------------------------------------- the process table
def _table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start stamp, command line) of every process we can see."""
    if os.path.isdir("/proc/self"):
        out = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read().decode("utf-8", "replace")
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()  # the name in ( ) may hold spaces
            if fields[0] == "Z":  # a zombie has ended already
                continue
            out[int(name)] = (int(fields[1]), fields[19], cmd)
        return out
    try:
        text = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,lstart=,command="], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 7)
        if len(parts) >= 7 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = (int(parts[1]), " ".join(parts[2:7]), parts[7] if len(parts) > 7 else "")
    return out


def _below(table, roots) -> set[int]:
    """The descendants of ``roots`` in ``table`` (not the roots themselves)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _stamp, _cmd) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


# ------------------------------------------------------------------- the watchdog process
def watch(parent: int, sessions: set[str], interval: float = INTERVAL_S, grace: float = GRACE_S, settle=None) -> int:
    """Record the processes below ``parent`` until it is gone, then end them; returns how many
    were still running after the grace period (and got SIGKILL). ``settle()``, when given, is
    called once ``parent`` is gone, before anything is ended (it finishes reading ``sessions``)."""
    me = os.getpid()
    known: dict[int, str] = {}
    while os.getppid() == parent:
        table = _table()
        known = {pid: stamp for pid, stamp in known.items() if pid in table and table[pid][1] == stamp}  # ended ones go
        for pid in _below(table, [parent]):
            if pid != me:
                known.setdefault(pid, table[pid][1])
        time.sleep(interval)
    if settle is not None:
        settle()
    table = _table()
    ours = {pid for pid, stamp in known.items() if pid in table and table[pid][1] == stamp}
    named = [re.compile(re.escape(s) + r"(?=$|[/\s\"',;])") for s in list(sessions) if s]  # the folder, not a longer name
    ours |= {pid for pid, (_p, _s, cmd) in table.items() if any(n.search(cmd) for n in named)}
    ours |= _below(table, ours)
    ours.discard(me)
    for pid in ours:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while ours and time.monotonic() < deadline:
        time.sleep(0.1)
        table = _table()
        ours = {pid for pid in ours if pid in table}
    for pid in ours:
        _signal(pid, signal.SIGKILL)
    return len(ours)


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_sessions(sessions: set[str]) -> None:
    for line in sys.stdin:
        if line.strip():
            sessions.add(line.strip())


def main(argv: list[str]) -> int:
    parent = int(argv[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the command: we clean up after it
    sessions: set[str] = set()
    reader = threading.Thread(target=_read_sessions, args=(sessions,), daemon=True)
    reader.start()
    # what our process wrote before it died is still in the pipe: read it up to the end of the
    # pipe (a forked child of ours may hold the pipe open, hence the limit)
    watch(parent, sessions, settle=lambda: reader.join(timeout=1.0))
    return 0


# ------------------------------------------------------------------- our side
class Watchdog:
    """Our handle on the watchdog process (see the module's text)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def session(self, folder: str) -> None:
        """Also end the processes whose command line names ``folder`` (Ray's session folder)."""
        try:
            self.proc.stdin.write((folder.replace("\n", " ") + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass


_STARTED: list[Watchdog] = []  # kept alive for the life of the process


def start() -> Watchdog | None:
    """Start the watchdog of this process (once); None where it cannot run (Windows)."""
    if _STARTED:
        return _STARTED[0]
    if sys.platform == "win32":
        return None
    proc = subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or a kill of our process group leaves it to clean up
    )
    _STARTED.append(Watchdog(proc))
    return _STARTED[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
