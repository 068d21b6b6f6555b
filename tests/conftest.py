"""Shared test set-up: Qt offscreen, deterministic torch, small real models."""

import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PRUNEVIZ_NO_AUTOSAVE_PROMPT", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread: the test models are small, and on a shared 2-CPU machine a second torch thread mostly
# waits at each op's barrier for a CPU (the quick loop took 125 s of CPU with two threads and 69 s
# with one, under the same load; every README figure and lesson claim holds with one).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Keep QSettings, autosaves and recent files of tests out of the user's home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("PRUNEVIZ_DATA_DIR", str(home / "pruneviz"))
    yield


_SLOW_MODULE = re.compile(r"^pytestmark\s*=\s*pytest\.mark\.slow\b", re.MULTILINE)


def pytest_ignore_collect(collection_path, config):
    """Under ``-m "not slow"`` (the quick loop) a module marked slow as a whole is not even
    imported: its tests would all be deselected, and importing it (hypothesis, Ray, transformers)
    costs seconds of the loop. Any other marker expression collects everything as usual."""
    if config.getoption("markexpr", "").replace(" ", "") != "notslow" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    try:
        head = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return True if _SLOW_MODULE.search(head) else None
