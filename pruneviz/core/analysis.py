"""Analyses that help decide what to prune: layer sensitivity, neuron knockout maps, two
criteria side by side, and one-shot sweeps of a whole strategy.

Each analysis is a generator: it yields partial results as they are measured (one point or one
neuron at a time) and returns the JSON-ready summary (``StopIteration.value``; :func:`collect`
drains one). Set ``cancel`` or close the generator to stop it. The measurements run on a
:class:`~pruneviz.core.workers.Probe` (a copy of the session, see :mod:`pruneviz.core.workers`),
so the session is exactly as before afterwards, also when an analysis is cancelled or fails.
Pass ``ray="local"`` or a cluster address to fan the evaluations out on Ray.

Example::

    s = Session.open("demo:cnn", data="demo:digits")
    result = collect(s.sensitivity(levels=[0.25, 0.5, 0.75]))
    result["layers"]["1"][0]  # {'level': 0.25, 'sparsity': 0.25, 'accuracy': …, 'loss': …}
"""

from __future__ import annotations

import threading
from typing import Generator

import numpy as np
import torch

from . import importance as imp
from . import ranking as rk
from .correlation import ranks, spearman, top_overlap  # noqa: F401  (public here too)
from . import units as units_
from .errors import PrunevizError
from .history import Flip
from .workers import Edit, Probe, run_edits

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TOP_K = 10


def collect(gen: Generator) -> dict:
    """Drain an analysis generator; returns its summary."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def check_levels(levels) -> list[float]:
    levels = list(DEFAULT_LEVELS if levels is None else levels)
    if not levels:
        raise PrunevizError("give at least one level, e.g. 0.1,0.5,0.9")
    for v in levels:
        # 0 is the model as it is: the first point of a curve
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise PrunevizError(f"levels must be fractions from 0 to 1, got {v!r}")
    return sorted(set(float(v) for v in levels))


def _require_data(session) -> None:
    if session.data is None:
        raise PrunevizError("this analysis evaluates the model: it needs evaluation data", hint="data")


def _require_calibration(session) -> None:
    if session.calibration is None:
        raise PrunevizError("this analysis evaluates the model on calibration data", hint="calib_data")


def level_choices(session, name: str, method: str, levels: list[float]) -> list[torch.Tensor]:
    """For each level, the sorted flat indices of the kept weights of ``name`` that
    ``preview(level, "layer", "weight", method, [name])`` chooses, scored once."""
    scores, kept = session.scores(name, method, "weight"), session.mask(name)
    if method in imp.ROW_METHODS:
        conv1d = session.layer(name).kind == "Conv1D"
        return [rk.lowest_per_row(scores, kept, level, conv1d).reshape(-1).nonzero().flatten() for level in levels]
    return lowest_prefixes(scores, kept, levels)


def flips_for(session, chosen: dict[str, torch.Tensor], granularity: str) -> list[Flip]:
    """Flips that prune what a :meth:`Session.preview` chose (kept -> pruned)."""
    unit = units_.get(granularity)
    if unit.edits == "elem":
        return [Flip.make("elem", n, m.reshape(-1).nonzero().flatten(), m.numel()) for n, m in chosen.items() if m.any()]
    if unit.edits != "chan":
        raise PrunevizError(f"this analysis prunes weights or neurons, not {unit.counted_in}")
    return session.neuron_flips({n: m.nonzero().flatten() for n, m in chosen.items() if m.any()})


def lowest_prefixes(scores: torch.Tensor, kept: torch.Tensor, levels: list[float]) -> list[torch.Tensor]:
    """For each level, the sorted flat indices of ``rk.lowest(scores, kept, round(level * kept))``:
    the same choice, from one sort of the kept scores instead of one selection per level (the
    k lowest are a prefix of that order). Where the k-th and (k+1)-th lowest tie, which of the
    tied entries go depends on the selection, so that level asks :func:`rk.lowest` itself; so do
    all levels of a layer too big to sort or with non-finite scores."""
    flat_s, flat_k = scores.reshape(-1), kept.reshape(-1)
    n_kept = rk.count(flat_k)
    ks = [round(level * n_kept) for level in levels]

    def chosen(k: int) -> torch.Tensor:
        return rk.lowest(scores, kept, k).reshape(-1).nonzero().flatten()

    if flat_s.numel() > rk.SELECT_THRESHOLD or not bool(torch.isfinite(flat_s).all()):
        return [chosen(k) for k in ks]
    cand = flat_k.nonzero().flatten()
    kept_s = flat_s[cand].detach()
    if kept_s.dtype in (torch.float16, torch.bfloat16):
        kept_s = kept_s.float()  # exact, same order; numpy has no bfloat16
    # any order of ties will do (a tie at a cut asks rk.lowest); on the CPU numpy's quicksort
    # is ~7x faster than torch.sort here (0.27 vs 1.8 ms for 32k scores)
    order = torch.from_numpy(np.argsort(kept_s.numpy())) if kept_s.device.type == "cpu" else torch.argsort(kept_s)
    values = kept_s[order]
    # each kept entry's place in that order (pruned ones past the end): a level's choice is
    # then one comparison, already in index order
    place = torch.full((flat_s.numel(),), n_kept, dtype=torch.long, device=flat_s.device)
    place[cand[order]] = torch.arange(n_kept, device=flat_s.device)
    out = []
    for k in ks:
        if 0 < k < n_kept and bool(values[k - 1] == values[k]):
            out.append(chosen(k))
        else:
            out.append((place < k).nonzero().flatten())
    return out


def _baseline(probe: Probe) -> dict:
    r = probe.prime()  # also fills the probe's activation cache for the edits that follow
    return {"accuracy": r.accuracy, "loss": r.loss}


# ---------------------------------------------------------------- sensitivity
def sensitivity(session, layers=None, levels=None, granularity: str = "weight", method: str = "magnitude", cancel: threading.Event | None = None, ray=None) -> Generator[dict, None, dict]:
    """Prune each selected layer alone at each level (fraction of its kept weights or neurons,
    lowest ``method`` score first, as :meth:`Session.prune` with ``scope="layer"``) and evaluate.

    Every point is measured on the calibration split (:attr:`Session.calibration`, up to
    :data:`~pruneviz.core.calibration.ANALYSIS_SAMPLES` samples), not on the evaluation data:
    what is decided from it (an allocation) is then not tuned to the samples the accuracy is
    reported on.

    Yields ``{"layer", "level", "sparsity", "accuracy", "loss", "start"}`` per point
    (``sparsity``: the layer's; ``start``: the Sequential child evaluation started from).
    Returns ``{"baseline": {"accuracy", "loss"}, "granularity", "method", "levels",
    "calibration": {"spec", "samples"}, "layers": {NAME: [{"level", "sparsity", "accuracy", "loss"}, …]}}``."""
    _require_calibration(session)
    levels = check_levels(levels)
    names = session.select_layers(layers, granularity)
    edits: list[Edit] = []
    for name in names:
        if units_.get(granularity) is units_.WEIGHT:
            imp.check_method(method, "weight", True)
            n_weights = session.layer(name).numel
            for level, idx in zip(levels, level_choices(session, name, method, levels)):
                edits.append(((name, level), [Flip.make("elem", name, idx, n_weights)] if idx.numel() else []))
        else:
            for level in levels:
                chosen = session.preview(level, "layer", granularity, method, [name])
                edits.append(((name, level), flips_for(session, chosen, granularity)))
    # deepest layer first: after each edit is flipped back, the activations before the next
    # (shallower) layer are still cached, so every point starts at its own layer
    # (the depth is the Sequential child, or the node of the graph: known once the baseline ran)
    order = {n: i for i, n in enumerate(names)}
    probe = Probe(session, calibration=True)
    baseline = _baseline(probe)
    depth = {n: probe.child_of.get(("elem", n)) for n in names}
    edits.sort(key=lambda e: (-(depth[e[0][0]] if depth[e[0][0]] is not None else -1), order[e[0][0]], e[0][1]))
    out = {"baseline": baseline, "granularity": granularity, "method": method, "levels": levels,
           "calibration": session.calibration_info(), "layers": {n: [] for n in names}}
    for fig in run_edits(probe, edits, ray, cancel):
        name, level = fig["key"]
        point = {"level": level, "sparsity": fig["layer_sparsity"].get(name, session.sparsity(name)), "accuracy": fig["accuracy"], "loss": fig["loss"]}
        out["layers"][name].append(point)
        yield {"layer": name, **point, "start": fig["start"]}
    for pts in out["layers"].values():
        pts.sort(key=lambda p: p["level"])
    return out


# ------------------------------------------------------------------- knockout
def knockout(session, layer: str, methods=None, cancel: threading.Event | None = None, ray=None) -> Generator[dict, None, dict]:
    """Remove each kept neuron of ``layer`` alone (with its coupled channels) and evaluate: the
    measured importance of every neuron, on the calibration split (as :func:`sensitivity`).

    Yields ``{"index", "accuracy", "loss"}`` per neuron. Returns ``{"layer", "baseline",
    "neurons": [{"index", "accuracy", "loss"}…], "faithfulness": {METHOD: {"spearman",
    "top10_overlap"}}, "calibration"}``: how well each neuron criterion (all available by default) ranks the
    neurons by the loss increase their removal causes. Neurons already pruned are listed with
    the baseline figures (removing them changes nothing) and ``"pruned": true``."""
    _require_calibration(session)
    session.layer(layer)
    kept = session.neuron_mask(layer)
    edits = [(i, session.neuron_flips({layer: [i]})) for i in kept.nonzero().flatten().tolist()]
    methods = available_methods(session, "neuron") if methods is None else list(methods)
    for m in methods:
        imp.check_method(m, "neuron", True)
    probe = Probe(session, calibration=True)
    base = _baseline(probe)
    measured: dict[int, dict] = {}
    for fig in run_edits(probe, edits, ray, cancel):
        item = {"index": fig["key"], "accuracy": fig["accuracy"], "loss": fig["loss"]}
        measured[fig["key"]] = item
        yield item
    neurons = [measured.get(i, {"index": i, **base, "pruned": True}) for i in range(len(kept))]
    faith = {}
    idx = kept.nonzero().flatten()
    if len(idx) >= 2:
        increase = torch.tensor([neurons[i]["loss"] - base["loss"] for i in idx.tolist()], dtype=torch.float64)
        for m in methods:
            s = probe_scores(session, probe, layer, m)[idx]
            faith[m] = {"spearman": spearman(s, increase), "top10_overlap": top_overlap(s, increase, TOP_K)}
    return {"layer": layer, "baseline": base, "neurons": neurons, "faithfulness": faith, "calibration": session.calibration_info()}


def probe_scores(session, probe: Probe, layer: str, method: str) -> torch.Tensor:
    """Neuron scores of ``layer`` computed on the probe's copy (equal to ``session.scores``): the
    live model may be evaluated by another thread meanwhile, and scorers hook into the model."""
    info = session.layer(layer)
    opts = imp.ScoreOptions(seed=session.seed)
    return imp.SCORERS["neuron"](method, probe.model, [info], probe.masks.params, session.calib.use(), opts)[layer].detach().cpu().double()


def available_methods(session, granularity: str) -> list[str]:
    """Criteria that can score this session (data-driven ones need calibration data)."""
    return list(units_.get(granularity).methods(session.calibration is not None))


# ---------------------------------------------------------- criteria compared
def compare(session, layer: str, method_a: str, method_b: str, granularity: str = "weight", k: int | None = None, cancel: threading.Event | None = None) -> Generator[dict, None, dict]:
    """Two criteria on one layer: both scores, the pruned entries, the fraction of the ``k``
    lowest kept entries the two agree on (default: 10 % of the kept ones), and a colour scale
    for each (``"linear"``, ``"log"`` or ``"rank"``, see :func:`color_scale`).

    Yields ``{"method", "scale"}`` as each criterion is scored."""
    session.layer(layer)
    kept = (session.neuron_mask(layer) if units_.get(granularity).edits == "chan" else session.mask(layer)).reshape(-1)
    scores, scales = {}, {}
    for m in (method_a, method_b):
        if cancel is not None and cancel.is_set():
            return None
        s = session.scores(layer, m, granularity).reshape(-1).float()
        scores[m], scales[m] = s, color_scale(s[kept])
        yield {"method": m, "scale": scales[m]}
    n_kept = rk.count(kept)
    k = max(1, round(0.1 * n_kept)) if k is None else int(k)
    if not 0 < k <= max(n_kept, 1):
        raise PrunevizError(f"k must be between 1 and the {n_kept} kept entries, got {k}")
    low_a = rk.lowest(scores[method_a], kept, k)
    low_b = rk.lowest(scores[method_b], kept, k)
    agreement = rk.count(low_a & low_b) / k if n_kept else 0.0
    return {"layer": layer, "granularity": granularity, "methods": [method_a, method_b], "k": k, "agreement": agreement,
            "scale": scales, "scores": scores, "pruned": ~kept}


def color_scale(scores: torch.Tensor) -> str:
    """``"linear"`` unless the scores are heavy-tailed (the 99th percentile more than 6 times the
    median; on the demo models magnitude scores reach at most 5.3, Taylor and OBD weight scores
    7 to 1,400): then ``"log"``, or ``"rank"`` when more than 5 % of them are zero (a log scale
    cannot show zeros)."""
    s = scores.double().reshape(-1)
    s = s[torch.isfinite(s)]
    if s.numel() < 2 or bool((s < 0).any()):
        return "linear"
    q50, q99 = torch.quantile(s, torch.tensor([0.5, 0.99], dtype=torch.float64)).tolist()
    heavy = q99 > 6 * q50 if q50 > 0 else q99 > 0
    if not heavy:
        return "linear"
    return "rank" if float((s == 0).double().mean()) > 0.05 else "log"


def scaled(scores: torch.Tensor, scale: str) -> torch.Tensor:
    """Scores mapped for display: log10 (zeros at the smallest positive value) or rank in [0, 1]."""
    s = scores.double().reshape(scores.shape)
    if scale == "log":
        pos = s[s > 0]
        floor = float(pos.min()) if pos.numel() else 1.0
        return torch.log10(s.clamp(min=floor))
    if scale == "rank":
        return ((ranks(s) - 1) / max(s.numel() - 1, 1)).reshape(scores.shape)
    if scale != "linear":
        raise PrunevizError(f"unknown colour scale {scale!r}: use linear, log or rank")
    return s


# ---------------------------------------------------------------------- sweep
def sweep(session, levels=None, scope: str = "layer", granularity: str = "weight", method: str = "magnitude", layers=None, cancel: threading.Event | None = None, ray=None) -> Generator[dict, None, dict]:
    """One-shot pruning at each level from the current state (the session is not changed):
    accuracy and loss vs sparsity for one strategy.

    Yields ``{"method", "scope", "granularity", "level", "sparsity", "accuracy", "loss"}`` per
    level; returns ``{"curves": [{"method", "scope", "granularity", "points": [{"level",
    "sparsity", "accuracy", "loss"}…]}]}`` (``sparsity``: of all prunable weights)."""
    return sweeps(session, levels, [scope], [granularity], [method], layers, cancel, ray)


def sweeps(session, levels=None, scopes=("layer",), granularities=("weight",), methods=("magnitude",), layers=None, cancel: threading.Event | None = None, ray=None) -> Generator[dict, None, dict]:
    """:func:`sweep` for every combination of ``methods`` × ``scopes`` × ``granularities``: one
    curve each, to overlay on one plot."""
    _require_data(session)
    levels = check_levels(levels)
    for scope in scopes:
        if scope not in ("layer", "global"):
            raise PrunevizError(f"unknown scope {scope!r}: use layer or global")
    combos = [(m, sc, g) for m in methods for sc in scopes for g in granularities]
    for m, sc, g in combos:
        units_.get(g).check(m, sc)
    edits = []
    for combo in combos:
        m, sc, g = combo
        for level in levels:
            edits.append(((combo, level), flips_for(session, session.preview(level, sc, g, m, layers), g)))
    probe = Probe(session)
    _baseline(probe)
    curves = {c: [] for c in combos}
    for fig in run_edits(probe, edits, ray, cancel):
        (m, sc, g), level = fig["key"]
        point = {"level": level, "sparsity": fig["sparsity"], "accuracy": fig["accuracy"], "loss": fig["loss"]}
        curves[(m, sc, g)].append(point)
        yield {"method": m, "scope": sc, "granularity": g, **point}
    return {"curves": [{"method": m, "scope": sc, "granularity": g, "points": sorted(curves[(m, sc, g)], key=lambda p: p["level"])} for (m, sc, g) in combos]}

