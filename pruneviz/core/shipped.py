"""Where the files pruneviz ships (demo weights and data, lessons) are found at run time.

The repository keeps them in its top-level ``resources/`` folder; a wheel carries the same files as
the data package ``pruneviz.resources`` (mapped in ``pyproject.toml``), and an editable install maps
that package onto the checkout's folder. ``importlib.resources`` finds it in all three cases; a
checkout used without any install (``PYTHONPATH=.``) falls back to the folder beside the package.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

__all__ = ["resources_dir"]


@functools.lru_cache(maxsize=1)
def resources_dir() -> Path:
    """The folder holding ``lessons/``, ``digits/`` and ``models/`` (an absolute path).

    >>> (resources_dir() / "lessons").is_dir()
    True
    """
    try:
        root = importlib.resources.files("pruneviz.resources")
    except ModuleNotFoundError:
        root = None
    if root is not None and Path(str(root)).is_dir():  # a folder on disk: wheel and editable alike
        return Path(str(root)).resolve()
    return Path(__file__).resolve().parents[2] / "resources"
