"""JSON out: the one place that turns NaN and infinities into ``null``.

``json.dumps`` writes ``NaN``/``Infinity`` by default, which is not JSON; every report, result
and ``--json`` line of pruneviz goes through :func:`finite` (via :func:`dumps` or
:func:`write_json`), so what it writes is strict JSON that any parser reads.
"""

from __future__ import annotations

import json
import math

from .files import atomic_write_text

__all__ = ["finite", "dumps", "write_json"]


def finite(obj):
    """``obj`` with every float (numpy's too) that is NaN or infinite replaced by None; dicts,
    lists and tuples are copied (tuples become lists, as JSON has no tuples)."""
    if isinstance(obj, float):  # numpy.float64 is a float
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype") and obj.dtype.kind == "f" and getattr(obj, "ndim", 1) == 0:
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)``, refusing any NaN left (``allow_nan=False``)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def write_json(path, obj, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically (see :mod:`pruneviz.core.files`)."""
    atomic_write_text(path, dumps(obj, indent=indent) + "\n")
