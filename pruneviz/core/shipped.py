"""Where the files pruneviz ships (demo weights and data, lessons) are found at run time.

The repository keeps them in its top-level ``resources/`` folder; a wheel carries the same files as
the data package ``pruneviz.resources`` (mapped in ``pyproject.toml``), and an editable install maps
that package onto the checkout's folder. ``importlib.resources`` finds it in all three cases; a
checkout used without any install (``PYTHONPATH=.``) falls back to the folder beside the package.
Code run from a source checkout (``pyproject.toml`` and ``resources/`` beside the package) uses
that checkout's folder first: an editable install of one worktree must not serve its files to
another worktree's code.
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
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "resources" / "lessons").is_dir():
        # the code runs from a source checkout: its own files, even when an editable install of
        # another checkout (a second git worktree) maps pruneviz.resources elsewhere
        return checkout / "resources"
    try:
        root = importlib.resources.files("pruneviz.resources")
    except ModuleNotFoundError:
        root = None
    if root is not None and Path(str(root)).is_dir():  # a folder on disk: wheel and editable alike
        return Path(str(root)).resolve()
    return Path(__file__).resolve().parents[2] / "resources"
