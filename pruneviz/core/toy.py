"""Generated 2-D problems (two moons, spirals, XOR) and a small MLP trained on them, for lessons.

Nothing is read from disk: the points come from a seeded numpy generator and the network is
trained at lesson start with a plain full-batch Adam loop (a second or two on a CPU), so the
same seed gives the same network.

Example::

    s = toy.open_problem({"kind": "moons"}, seed=0)     # a Session on the held-out points
    grid = toy.boundary(s)                              # P(class 1) on a 96x96 grid
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import EvalData
from .model_io import LoadedModel

#: the plane every problem lives in: (x0, x1, y0, y1)
BOUNDS = (-2.0, 2.0, -2.0, 2.0)


def points(kind: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labelled points of problem ``kind`` in :data:`BOUNDS` (float32 [n, 2], int64 [n])."""
    rng = np.random.default_rng(seed)
    half = n // 2
    y = np.r_[np.zeros(half), np.ones(n - half)].astype(np.int64)
    if kind == "moons":
        t = rng.uniform(0, np.pi, n)
        x = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
        x = (x - [0.5, 0.25]) * 1.25
    elif kind == "spirals":
        r = rng.uniform(0.15, 1.0, n)
        t = r * 3.2 * np.pi + np.pi * y
        x = 1.8 * np.c_[r * np.cos(t), r * np.sin(t)]
    elif kind == "xor":
        x = rng.uniform(-1.8, 1.8, (n, 2))
        x += np.sign(x) * 0.1
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    else:
        raise ValueError(kind)
    x = x + rng.normal(0.0, noise, x.shape)
    return x.astype(np.float32), y


def mlp(hidden: list[int]) -> nn.Sequential:
    """2 → hidden… → 2, ReLU between (a plain Sequential: incremental evaluation applies)."""
    layers: list[nn.Module] = []
    width = 2
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 2))
    return nn.Sequential(*layers)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int) -> float:
    """Full-batch Adam on cross-entropy for ``epochs`` steps; returns the final training loss."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # seeded init, independent of the global RNG
            if p.dim() > 1:
                bound = 1.0 / np.sqrt(p.shape[1])
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
            else:
                p.uniform_(-0.1, 0.1, generator=gen)
    # Adam written out: torch.optim's first use imports torch._dynamo (over a second on a CPU)
    params = list(model.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    model.train()
    loss = torch.tensor(0.0)
    for t in range(1, epochs + 1):
        loss = nn.functional.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, a, b in zip(params, grads, m1, m2):
                a.mul_(b1).add_(g, alpha=1 - b1)
                b.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(a / (1 - b1**t), (b / (1 - b2**t)).sqrt_().add_(eps), value=-lr)
    model.eval()
    return float(loss.detach())


def open_problem(problem: dict, seed: int = 0, device: str = "cpu"):
    """A trained Session for a ``[problem]`` table of a lesson (kind, samples, noise, hidden, epochs, lr).

    The model is trained on one seeded draw and evaluated on a second (held-out) draw."""
    from .session import Session

    kind = problem["kind"]
    n = int(problem.get("samples", 400))
    noise = float(problem.get("noise", 0.15))
    xt, yt = points(kind, n, noise, seed)
    xv, yv = points(kind, n, noise, seed + 1)
    model = mlp(list(problem.get("hidden", [8, 8])))
    x, y = torch.from_numpy(xt), torch.from_numpy(yt)
    train(model, x, y, int(problem.get("epochs", 300)), float(problem.get("lr", 0.02)), seed)
    data = EvalData(torch.from_numpy(xv), torch.from_numpy(yv), f"problem:{kind}")
    loaded = LoadedModel(model.eval(), f"problem:{kind}", "demo", None, data.x[:1], True)
    session = Session(loaded, data, device=device, seed=seed)
    session.toy_train = (xt, yt)  # the training points, for drawing
    return session


def boundary(session, resolution: int = 96) -> np.ndarray:
    """P(class 1) of the session's live model over :data:`BOUNDS` (float32 [res, res], row 0 at y0)."""
    x0, x1, y0, y1 = BOUNDS
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution, dtype=np.float32), np.linspace(y0, y1, resolution, dtype=np.float32))
    grid = torch.from_numpy(np.c_[gx.ravel(), gy.ravel()]).to(session.device)
    with session.lock, torch.inference_mode():
        p = torch.softmax(session.model(grid).float(), dim=1)[:, 1]
    return p.reshape(resolution, resolution).cpu().numpy().astype(np.float32)


def network(session) -> dict:
    """The network as a drawable chart: per layer |w| (kept entries), weight masks, neuron masks."""
    layers = []
    for info in session.layers:
        w = session.weight(info.name, original=True).abs().numpy()
        layers.append({"name": info.name, "w": w.tolist(), "mask": session.mask(info.name).numpy().tolist(), "neurons": session.neuron_mask(info.name).numpy().tolist(), "output": info.is_output})
    return {"kind": "network", "title": "the network (edge width = |w|, pruned dashed)", "layers": layers}
