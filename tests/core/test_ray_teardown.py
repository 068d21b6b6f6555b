"""Ray processes that ``--ray local`` starts end with our process, a ``kill -9`` included."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from pruneviz.core.ray_local import session_processes  # noqa: E402 - after the skip

pytestmark = pytest.mark.slow  # starting Ray takes tens of seconds on a busy machine


# ------------------------------------------------------------------- teardown after kill -9
def _is_agent(cmd: str) -> bool:
    return "dashboard/agent.py" in cmd or "runtime_env/agent/main.py" in cmd or (cmd.startswith("ray::") and "Agent" in cmd)


def _running(cmds) -> bool:
    """Ray's agents and at least one worker (``ray::IDLE``, ``ray::_run_remote``) are running."""
    cmds = list(cmds)
    return any(_is_agent(c) for c in cmds) and any(c.startswith("ray::") and "Agent" not in c for c in cmds)


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process table from /proc")
def test_kill_9_of_a_local_ray_run_leaves_no_ray_process(tmp_path):
    """The CLI runs in a session of its own: every Ray process it starts is in that session (Ray
    does not start new ones), so the test counts exactly the processes of this run, and ends only
    those when it fails. The watchdog runs in a session of its own and is not counted."""
    tmp = tempfile.mkdtemp(prefix="pvr", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, RAY_TMPDIR=tmp, OMP_NUM_THREADS="1", PYTHONPATH=root)
    env.pop("RAY_ADDRESS", None)
    levels = ",".join(f"{k / 100:.2f}" for k in range(1, 100))  # long enough to be killed while it runs
    cmd = [sys.executable, "-m", "pruneviz", "sensitivity", "demo:cnn", "--data", "demo:digits", "--ray", "local", "--levels", levels, "--out", str(tmp_path / "s.json")]
    cli = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # killed while Ray's workers evaluate; its agents (children of the raylet) are the
        # processes that outlived a kill -9 by over a minute
        started = _wait_until(lambda: cli.poll() is not None or _running(session_processes(cli.pid).values()), 240)
        assert started and cli.poll() is None, "the run ended before Ray's workers started"
        ray_procs = {pid: c for pid, c in session_processes(cli.pid).items() if pid != cli.pid}
        assert len(ray_procs) >= 4, ray_procs  # GCS, raylet, agents, monitors
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=30)
        assert _wait_until(lambda: not session_processes(cli.pid), 20), session_processes(cli.pid)
    finally:
        if cli.poll() is None:
            cli.kill()
        for pid in session_processes(cli.pid):  # this run's processes only (its own session)
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
