"""A private Ray head on this machine, in processes of its own, for ``--eval-on local``.

Ray started with ``ray.init()`` makes our process its driver: when Ray's processes die, Ray ends
our process about a minute later, having waited for its GCS. So ``local`` runs ``ray start --head``
instead, with its client server on a free port, in a process session of its own, with a short
temporary folder (Ray's socket paths must fit in 107 bytes), and our process joins it through
Ray's client (``ray://127.0.0.1:PORT``), as it would join a remote cluster: when the head dies,
the client only loses its connection. The tests and benchmarks start their clusters with the same
:class:`LocalHead`.

``ray start`` returns once the cluster runs; every process it started (GCS, raylet, agents, the
client server, and the workers and per-client drivers they start later) stays in that session,
so :meth:`LocalHead.kill` ends exactly this cluster — the whole of it, as a machine that goes away
would — and never another Ray on the machine. Its workers import ``pruneviz`` from where this
process does (``PYTHONPATH``).

Token authentication is off on this private cluster (``RAY_AUTH_MODE=disabled``; it listens on
127.0.0.1 ports only as far as Ray allows). It runs with ``GRPC_ENABLE_FORK_SUPPORT=false``:
Ray's client server forks a driver process per client while gRPC threads run, and with gRPC's
fork handlers on that child often crashed before it started (``Initialization failure from
server``; Ray issue 63202).

:func:`acquire` / :func:`release` share one head among the evaluators of a process (started on
the first, stopped with the last); it is also stopped when the process exits (``atexit``) and,
when the process is killed, by :mod:`pruneviz.core.ray_watchdog`, told the head's folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .errors import PrunevizError

#: the folder that holds the ``pruneviz`` package: on the workers' ``PYTHONPATH``
ROOT = str(Path(__file__).resolve().parents[2])
#: how long Ray's client tries to reconnect to the private head before giving up (a local head
#: that died does not come back; Ray's default of 30 s is for a network that hiccups)
RECONNECT_GRACE_S = "5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session ``sid``: pid -> command line (Linux ``/proc``;
    elsewhere only the session leader, through ``os.getsid``)."""
    if not os.path.isdir("/proc/self"):
        try:
            return {sid: ""} if os.getsid(sid) == sid else {}
        except OSError:
            return {}
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(name)] = cmd
    return out


class LocalHead:
    """``ray start --head`` in a session of its own (see the module's text)."""

    def __init__(self, num_cpus: int | None = None, client_port: int | None = None):
        self.num_cpus = num_cpus
        self.client_port = client_port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="pvh", dir="/tmp" if os.path.isdir("/tmp") else None)
        self.sid: int | None = None

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 300.0) -> "LocalHead":
        """Start the cluster and wait until its client server accepts connections."""
        ray = str(Path(sys.executable).with_name("ray"))
        path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, RAY_TMPDIR=self.tmp, OMP_NUM_THREADS="1", PYTHONPATH=path, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", GRPC_ENABLE_FORK_SUPPORT="false")
        env.pop("RAY_ADDRESS", None)
        cpus = [f"--num-cpus={self.num_cpus}"] if self.num_cpus else []
        cmd = [
            ray, "start", "--head", f"--port={free_port()}", f"--ray-client-server-port={self.client_port}", *cpus,
            "--include-dashboard=false", f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.tmp}", "--disable-usage-stats",
        ]
        log = open(os.path.join(self.tmp, "start.log"), "wb")
        try:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise PrunevizError(f"cannot start a local Ray instance ({ray}): {exc.strerror or exc}") from None
        self.sid = proc.pid
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # ``ray start`` returns once the cluster runs
            if proc.poll() != 0:
                tail = self.log().strip().splitlines()[-1:] or ["no output"]
                raise PrunevizError(f"cannot start a local Ray instance (ray start: {proc.poll()}): {tail[0][:200]}")
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.client_port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.2)
            raise PrunevizError(f"cannot start a local Ray instance: its client server did not open port {self.client_port}")
        except BaseException:
            self.stop()
            raise
        finally:
            log.close()

    def log(self) -> str:
        try:
            return Path(self.tmp, "start.log").read_text(errors="replace")
        except OSError:
            return ""

    def processes(self) -> dict[int, str]:
        return session_processes(self.sid) if self.sid is not None else {}

    def alive(self) -> bool:
        """Its client server still accepts connections."""
        try:
            socket.create_connection(("127.0.0.1", self.client_port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self, timeout: float = 30.0) -> bool:
        """SIGKILL every process of the cluster (the machine goes away); True once none is left."""
        deadline = time.monotonic() + timeout
        if self.sid is not None and not os.path.isdir("/proc/self"):
            try:
                os.killpg(self.sid, signal.SIGKILL)  # without /proc: the session's process group
            except OSError:
                pass
        while True:
            left = self.processes()
            if not left or time.monotonic() > deadline:
                return not left
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.1)

    def stop(self) -> bool:
        """Kill the cluster and remove its folder; True when no process of it is left."""
        gone = self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return gone


# ------------------------------------------------------------------- the process's private head
_LOCK = threading.Lock()
_HEAD: LocalHead | None = None
_USERS = 0
_AT_EXIT: list[bool] = []


def current() -> LocalHead | None:
    """The private head of this process, if one was started and not stopped."""
    return _HEAD


def acquire() -> tuple[LocalHead, bool]:
    """The private head (started now when there is none, or the last one died) and whether it
    was started now; the caller holds it until :func:`release`."""
    global _HEAD, _USERS
    with _LOCK:
        fresh = _HEAD is None or not _HEAD.alive()
        if fresh:
            if _HEAD is not None:
                _HEAD.stop()
            from . import ray_watchdog

            dog = ray_watchdog.start()  # ends the head when this process is killed
            head = LocalHead()
            if dog is not None:
                dog.session(head.tmp)
            _HEAD = head.start()
            if not _AT_EXIT:
                atexit.register(shutdown)
                _AT_EXIT.append(True)
        _USERS += 1
        return _HEAD, fresh


def release() -> None:
    """One holder fewer; the last one disconnects Ray's client and stops the head."""
    global _USERS
    with _LOCK:
        _USERS = max(0, _USERS - 1)
        last = _USERS == 0
    if last:
        shutdown()


def shutdown() -> None:
    """Disconnect Ray's client from the private head and stop it (at exit, or by the last holder)."""
    global _HEAD, _USERS
    with _LOCK:
        head, _HEAD, _USERS = _HEAD, None, 0
    if head is None:
        return
    ray = sys.modules.get("ray")
    if ray is not None:
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - the connection is gone already
            pass
    head.stop()
