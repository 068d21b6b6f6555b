"""pruneviz installs like a library: a wheel built from this repository, installed without ``-e``
into a fresh virtual environment, runs its first commands from another directory.

The fresh environment borrows the dependencies (torch, Qt, ...) of the running one through a
``.pth`` line, so nothing is downloaded; pruneviz itself comes only from the wheel (the running
environment's editable install is not activated there, since a plain path line in a ``.pth`` does
not process the ``.pth`` files inside it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("pruneviz-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return env_dir


def test_wheel_holds_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ["pruneviz/resources/models/mlp.safetensors", "pruneviz/resources/models/cnn.safetensors",
                 "pruneviz/resources/digits/digits.npz", "pruneviz/resources/lessons/node-loop.toml",
                 "pruneviz/core/model_io/__init__.py", "pruneviz/qt/app.py"]:
        assert path in names
    shipped_lessons = {p.name for p in (ROOT / "resources" / "lessons").glob("*.toml")}
    assert {Path(n).name for n in names if n.startswith("pruneviz/resources/lessons/")} == shipped_lessons
    # every package of the source tree is in the wheel (the package list in pyproject is explicit)
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "pruneviz").rglob("__init__.py")}
    assert packages <= {str(Path(n).parent) for n in names}


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run([str(installed / "bin" / "pruneviz"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_installed_wheel_runs_from_elsewhere(installed, tmp_path):
    where = subprocess.check_output(
        [str(installed / "bin" / "python"), "-c", "import pruneviz, pruneviz.core.shipped as s; print(pruneviz.__file__); print(s.resources_dir())"],
        cwd=tmp_path, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).split()
    assert Path(where[0]).is_relative_to(installed), where  # the wheel's copy, not the checkout
    assert Path(where[1]).is_relative_to(installed), where

    res = _run(installed, tmp_path, "inspect", "demo:mlp")
    assert res.returncode == 0, res.stderr
    assert "demo:mlp" in res.stdout and "prunable layers" in res.stdout

    res = _run(installed, tmp_path, "lesson", "list")
    assert res.returncode == 0, res.stderr
    listed = res.stdout
    for lesson in (ROOT / "resources" / "lessons").glob("*.toml"):
        assert lesson.stem in listed

    png = tmp_path / "shot.png"
    res = _run(installed, tmp_path, "gui", "demo:mlp", "--screenshot", str(png), "--size", "1280x720")
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
