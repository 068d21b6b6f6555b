"""Import and call ``package.module:function`` factories (``--arch``, data factories)."""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Callable


from pruneviz.core.errors import PrunevizError

from .common import load_error, reason


# ---------------------------------------------------------------------------------------------
# Factories (--arch, data factories)

_FACTORY_RE = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\Z")


def is_factory_spec(spec: str) -> bool:
    """True for ``package.module:function`` (code to import and call); ``demo:NAME`` is not."""
    return isinstance(spec, str) and not spec.startswith("demo:") and bool(_FACTORY_RE.match(spec.strip()))


def load_factory(spec: str) -> Callable:
    """Import ``package.module:function`` and return the callable.

    The module is imported from ``PYTHONPATH`` or the current directory (added at the end of
    ``sys.path`` so it cannot shadow installed packages). Naming a module is the user's consent to
    import it. The returned callable wraps the factory so that an exception it raises becomes a
    :class:`PrunevizError` ("the factory X raised: ...").
    """
    if not isinstance(spec, str) or not _FACTORY_RE.match(spec.strip()):
        raise load_error(
            f"malformed factory spec {spec!r}: expected package.module:function, "
            "e.g. mymodels.nets:build_mlp"
        )
    module_name, attr_path = _FACTORY_RE.match(spec.strip()).groups()
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise load_error(
                f"cannot import {module_name} (from {spec}): no module named {missing}; run from the "
                "folder that holds it or add that folder to PYTHONPATH"
            ) from exc
        raise load_error(f"importing {module_name} (from {spec}) failed: {reason(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise load_error(
            f"importing {module_name} (from {spec}) raised {type(exc).__name__}: {reason(exc)}"
        ) from exc
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except Exception as exc:
            raise load_error(
                f"{module_name} has no attribute {attr_path} (from {spec}); check the name after the colon"
            ) from exc
    if not callable(target):
        raise load_error(f"{spec} is a {type(target).__name__}, not a function that builds something")
    factory = target

    @functools.wraps(factory)
    def call_factory(*args, **kwargs):
        try:
            return factory(*args, **kwargs)
        except PrunevizError:
            raise
        except (Exception, SystemExit) as exc:
            raise load_error(f"the factory {spec} raised: {type(exc).__name__}: {reason(exc)}") from exc

    return call_factory

