"""A Ray cluster in a separate process for the tests and benchmarks of ``--eval-on ray://``.

:class:`RayHead` runs ``ray start --head`` with its client server on a free port, in a process
session of its own, with a short temporary folder (Ray's socket paths must fit in 107 bytes).
``ray start`` returns once the cluster runs; every process it started (GCS, raylet, agents, the
client server, and the workers and per-client drivers they start later) stays in that session,
so :meth:`RayHead.kill` ends exactly this cluster — the whole of it, as a machine that goes away
would — and never another Ray on the machine. The cluster's workers import ``pruneviz`` from this
checkout (``PYTHONPATH``), as a cluster with pruneviz installed would.

Token authentication is off on this test cluster (``RAY_AUTH_MODE=disabled``): with Ray's token
auth on, a client needs ``RAY_AUTH_MODE=token`` and the cluster's token (see the README). The
cluster runs with ``GRPC_ENABLE_FORK_SUPPORT=false``: Ray's client server forks a driver process
per client while gRPC threads run, and with gRPC's fork handlers on that child often crashed
before it started (``Initialization failure from server``; Ray issue 63202): three connections
in four failed on this machine under load, none since.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session ``sid``: pid -> command line (Linux ``/proc``)."""
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


class RayHead:
    """``ray start --head`` in a session of its own (see the module's text)."""

    def __init__(self, num_cpus: int = 2, client_port: int | None = None):
        self.num_cpus = num_cpus
        self.client_port = client_port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="pvh", dir="/tmp")
        self.sid: int | None = None

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 300.0) -> "RayHead":
        """Start the cluster and wait until its client server accepts connections."""
        ray = str(Path(sys.executable).with_name("ray"))
        env = dict(os.environ, RAY_TMPDIR=self.tmp, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", GRPC_ENABLE_FORK_SUPPORT="false")
        env.pop("RAY_ADDRESS", None)
        cmd = [
            ray, "start", "--head", f"--port={free_port()}", f"--ray-client-server-port={self.client_port}", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
            "--include-dashboard=false", f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.tmp}", "--disable-usage-stats",
        ]
        log = open(os.path.join(self.tmp, "start.log"), "wb")
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        self.sid = proc.pid
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # ``ray start`` returns once the cluster runs
            if proc.poll() != 0:
                raise RuntimeError(f"ray start failed ({proc.poll()}): {self.log()[-400:]}")
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.client_port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.2)
            raise RuntimeError(f"Ray's client server did not open port {self.client_port}")
        except BaseException:
            self.kill()
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

    def kill(self, timeout: float = 30.0) -> bool:
        """SIGKILL every process of the cluster (the machine goes away); True once none is left."""
        deadline = time.monotonic() + timeout
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
