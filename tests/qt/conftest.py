"""Sessions for the GUI tests: the demo specs when the core can open them, else the same demo
architectures trained for a moment on the shipped digits (while model_io/data are being finished)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pruneviz.core.errors import PrunevizError

try:  # pragma: no cover - depends on what colleagues have landed
    import pruneviz.core.data  # noqa: F401
except ImportError:  # pragma: no cover
    _d = types.ModuleType("pruneviz.core.data")

    @dataclass
    class EvalData:
        x: torch.Tensor
        y: torch.Tensor
        spec: str

        @property
        def num_classes(self) -> int:
            return int(self.y.max()) + 1

        def __len__(self) -> int:
            return len(self.x)

    def _open_data(spec):
        raise PrunevizError(f"cannot open data {spec!r} yet")

    _d.EvalData, _d.open_data, _d.check_fits = EvalData, _open_data, lambda m, d: None
    sys.modules["pruneviz.core.data"] = _d

from pruneviz.core.data import EvalData  # noqa: E402
from pruneviz.core.model_io import LoadedModel  # noqa: E402
from pruneviz.core.session import Session  # noqa: E402

_TRAINED: dict[str, dict] = {}


def _digits():
    from pruneviz.core import demo

    d = np.load(demo.resources_dir() / "digits" / "digits.npz")
    x = torch.tensor(d["x"], dtype=torch.float32) / 16.0
    y = torch.tensor(d["y"], dtype=torch.long)
    test = torch.tensor(d["test_idx"])
    train = torch.ones(len(x), dtype=torch.bool)
    train[test] = False
    return x[train], y[train], x[test], y[test]


def fallback_session(name: str = "mlp", data: bool = True) -> Session:
    """The demo architecture, quickly trained (cached per process), as a Session."""
    from pruneviz.core import demo

    xtr, ytr, xte, yte = _digits()
    if name not in _TRAINED:
        torch.manual_seed(0)
        m = demo.build(name)
        opt = torch.optim.Adam(m.parameters(), 3e-3)
        for i in range(150):
            idx = torch.randint(0, len(xtr), (128,))
            loss = torch.nn.functional.cross_entropy(m(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        _TRAINED[name] = m.eval().state_dict()
    m = demo.build(name)
    m.load_state_dict(_TRAINED[name])
    m.eval()
    loaded = LoadedModel(model=m, spec=f"demo:{name}", source="demo", arch=None, example_input=xte[:1], structured_ok=True)
    return Session(loaded, EvalData(x=xte, y=yte, spec="demo:digits") if data else None, device="cpu")


def open_demo(name: str = "mlp") -> Session:
    try:
        return Session.open(f"demo:{name}", data="demo:digits", device="cpu")
    except Exception:  # noqa: BLE001 - the demo specs are not ready yet: train the same architecture
        return fallback_session(name)


def demo_opener(model, data, arch=None, trust=False, device="cpu"):
    """Session opener for MainWindow/app that falls back for demo specs."""
    if str(model).startswith("demo:"):
        return open_demo(str(model).split(":", 1)[1])
    return Session.open(model, data=data, arch=arch, trust=trust, device="cpu")


@pytest.fixture
def mlp_session():
    return open_demo("mlp")


@pytest.fixture
def window(qtbot, mlp_session):
    from pruneviz.qt.main_window import MainWindow
    from pruneviz.qt.app import make_app

    make_app()
    w = MainWindow(mlp_session, open_session=demo_opener)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.acc.current is not None and w.acc.baseline is not None, timeout=30_000)
    yield w
    w.runner.shutdown(5000)
