"""Shared helpers of the core tests: one way to run the command line in-process, and read-only
demo sessions opened once per test run.

``cli`` runs ``pruneviz.cli.main`` in this process (no subprocess: a subprocess start costs
seconds of imports; the few tests that need a real process say so and are marked slow). Every
run checks the CLI's promise that no traceback reaches the terminal (unless ``--debug``);
``cli.strict(...)`` also checks that a refusal is exactly one ``pruneviz: error: …`` line.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


class CliRunner:
    """``cli("inspect", "demo:mlp")`` -> ``CliResult(code, out, err)``; arguments go through ``str``."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *argv) -> CliResult:
        from pruneviz.cli import main

        args = [str(a) for a in argv]
        self.capsys.readouterr()  # what an earlier step printed is not this command's
        code = main(args)
        out, err = self.capsys.readouterr()
        if "--debug" not in args:
            assert "Traceback" not in err and "Traceback" not in out, (args, err)
        return CliResult(code, out, err)

    def strict(self, *argv) -> CliResult:
        """Run and check the exit contract: 0, or 2 with exactly one ``pruneviz: error: …`` line."""
        res = self(*argv)
        assert res.code in (0, 2), (argv, res.code, res.err)
        if res.code == 2:
            lines = res.err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("pruneviz: error: "), res.err
        return res


@pytest.fixture
def cli(capsys) -> CliRunner:
    return CliRunner(capsys)


@pytest.fixture(scope="session")
def _demo_session_cache() -> dict:
    return {}


@pytest.fixture
def demo_session(_demo_session_cache):
    """``demo_session("mlp")`` -> a Session on ``demo:<name>`` with ``demo:digits``, on the CPU,
    opened once per test run and shared (its activation cache is primed once, which the analyses
    reuse). Read-only: a test that edits it fails at its teardown; a test that edits opens its own."""
    from pruneviz.core.session import Session

    used = []

    def get(name: str = "mlp"):
        if name not in _demo_session_cache:
            _demo_session_cache[name] = Session.open(f"demo:{name}", data="demo:digits", device="cpu")
        s = _demo_session_cache[name]
        used.append((name, s, s.masks.version, s.history.index))
        return s

    yield get
    for name, s, version, index in used:
        assert (s.masks.version, s.history.index) == (version, index), f"the test edited the shared demo:{name} session: open one of its own"
