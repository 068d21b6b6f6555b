"""What a lesson file may open. Lessons are shared between lecturers as files: they are data, and
opening one must never run code that the person opening it did not agree to.

A lesson names its model and data as text (``model = "…"``, ``data = "…"``). It may name:

* ``demo:`` models and data (``demo:mlp``, ``demo:digits``), or a generated ``[problem]`` (the
  built-in lesson models) - always;
* files in the lesson's own folder: a relative path (``model.pt``, ``data/test.npz``) is resolved
  against the folder of the lesson file, never the current folder; an absolute path (``~``
  included), a path with ``..`` or a link that points out of the folder is refused. These files are opened by
  the same readers as on the command line, without trust (a pickled model is refused);
* a data factory ``package.module:function`` only with trust, as a saved session naming a
  factory: ``trust=True`` in Python, ``--trust`` on the command line, a prompt in the app naming
  the module, the file it would be imported from and the lesson file.

:func:`check_specs` runs while the lesson is validated, before anything is imported: finding
where a module would come from (:func:`module_origin`) only searches the import path.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .model_io import is_factory_spec

__all__ = ["Specs", "SpecRefused", "check_specs", "module_origin"]

_DATA_SUFFIXES = (".npz", ".pt", ".pth")


class SpecRefused(ValueError):
    """A model or data spec a lesson may not name; ``key`` is ``"model"`` or ``"data"``."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass
class Specs:
    """What to open for a lesson: the specs to pass to ``Session.open`` (files made absolute), and
    the code a trusted lesson would run (``"data = 'mod:fn' imports mod from /path/mod.py"``)."""

    model: str | None
    data: str | None
    code: list[str] = field(default_factory=list)


def module_origin(module: str) -> str:
    """The file ``module`` would be imported from, found without importing anything (for a
    dotted name, parent packages are located, not run); ``"built into Python"`` or
    ``"not found"`` otherwise. Searches the import path and then the current folder, as
    :func:`pruneviz.core.model_io.load_factory` does."""
    parts = module.split(".")
    try:
        spec = sys.modules[parts[0]].__spec__ if parts[0] in sys.modules else None
        if spec is None:
            spec = importlib.machinery.PathFinder.find_spec(parts[0], sys.path + [os.getcwd()])
        if spec is None:
            spec = importlib.util.find_spec(parts[0])  # built-in and frozen modules (no code runs)
        for i in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                return "not found"
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(spec.submodule_search_locations))
    except (ImportError, ValueError, AttributeError):
        return "not found"
    if spec is None:
        return "not found"
    if spec.origin in (None, "built-in", "frozen") or not spec.has_location:
        return "built into Python"
    return spec.origin


def _inside(key: str, spec: str, folder: Path) -> str:
    """``spec``, a file in ``folder``, as an absolute path; refuses paths that leave it."""
    path = Path(spec)
    where = "its own folder (a relative path such as model.pt)"
    if path.is_absolute() or spec.startswith("~"):
        raise SpecRefused(key, f"{key} {spec!r} is an absolute path: a lesson may name files in {where}, demo: specs or a [problem]")
    if ".." in path.parts:
        raise SpecRefused(key, f"{key} {spec!r} uses '..': a lesson may name files in {where}, demo: specs or a [problem]")
    full = folder / path
    try:
        inside = full.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a name the OS refuses
        raise SpecRefused(key, f"{key} {spec!r} is not a usable file name") from None
    if not inside:
        raise SpecRefused(key, f"{key} {spec!r} is a link out of the lesson's folder: a lesson may name files in {where}")
    return str(full)


def check_specs(model: str | None, data: str | None, folder: Path | None) -> Specs:
    """Classify a lesson's ``model`` and ``data`` (see the module docstring); raises
    :class:`SpecRefused`. ``folder`` is the lesson file's folder (None: the current folder, for a
    lesson given as text). Factories are listed in ``Specs.code``, not refused: whether to run
    them is the caller's question (trust)."""
    folder = Path(folder) if folder is not None else Path.cwd()
    out = Specs(model, data)
    if model is not None and not model.startswith("demo:"):
        if is_factory_spec(model) and not (folder / model).exists():
            raise SpecRefused("model", f"model {model!r}: a lesson's model is a demo: model, a file in its own folder or a [problem]; a factory needs a file of weights")
        out.model = _inside("model", model, folder)
    if data is not None and not data.startswith("demo:"):
        spec = data.strip()
        as_file = Path(spec).suffix.lower() in _DATA_SUFFIXES
        if not as_file and is_factory_spec(spec):
            try:
                as_file = (folder / spec).exists()  # data.py reads an existing file before a factory
            except (OSError, ValueError):
                as_file = False
        if as_file or not is_factory_spec(spec):
            out.data = _inside("data", data, folder)
        else:
            module = spec.split(":", 1)[0]
            origin = module_origin(module)
            where = f"from {origin}" if origin not in ("built into Python", "not found") else f"({origin})"
            out.code.append(f"data = {spec!r} imports {module} {where}")
    return out
