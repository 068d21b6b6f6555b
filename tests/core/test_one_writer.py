"""One writer at a time: while a fine-tune, a schedule or a lesson step holds the session, every
edit is refused (SessionBusy, one line naming the job); reading stays allowed; the job is let go
when the run ends, is closed, raises or is collected. After every scenario the live session
equals its saved-and-reopened replay (masks and weights bit for bit)."""

from __future__ import annotations

import gc
import threading

import pytest
import torch

from pruneviz.core import persist
from pruneviz.core.errors import PrunevizError, SessionBusy
from pruneviz.core.session import Session
from pruneviz.core.training import complete


def _bits(s):
    out = {f"p:{n}": p.detach().clone() for n, p in s.model.named_parameters()}
    out |= {f"b:{n}": b.clone() for n, b in s.model.named_buffers()}
    m = s.masks  # true values by name, whether masked yet (orig) or not: the coupling is built lazily
    out |= {f"v:{n}": m.orig.get(n, p).detach().clone() for n, p in m.params.items()}
    return {k: (v.view(torch.int32) if v.dtype == torch.float32 else v) for k, v in out.items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _masks(s):
    return {layer.name: s.mask(layer.name) for layer in s.layers}


def _zeros_stay_zero(s):
    for layer in s.layers:
        assert bool((s.weight(layer.name)[~s.mask(layer.name)] == 0).all()), layer.name
    m = s.masks
    for p in m.orig:
        lname = m.weight_layer.get(p)
        mask = m.param_mask(p, m.elem[lname] if lname else None)
        assert torch.equal(m.params[p].detach(), m.orig[p] * mask.to(m.orig[p].dtype)), p


def _replays_to_live(s, tmp_path):
    path = tmp_path / "replay.pvz"
    persist.save_session(s, path)
    back = persist.load_session(path)
    assert back.history.labels == s.history.labels and back.history.index == s.history.index
    for name, m in _masks(s).items():
        assert torch.equal(_masks(back)[name], m), name
    _same(_bits(back), _bits(s))


@pytest.fixture
def mlp():
    return Session.open("demo:mlp", data="demo:digits")


def _edits(s):
    """Every verb that changes the model, the masks or the history."""
    return {
        "prune": lambda: s.prune(0.1),
        "prune_weights": lambda: s.prune_weights("0", [0, 1]),
        "restore_weights": lambda: s.restore_weights("0", [0, 1]),
        "prune_rect": lambda: s.prune_rect("0", (0, 2), (0, 2)),
        "prune_neurons": lambda: s.prune_neurons("0", [3]),
        "restore_neurons": lambda: s.restore_neurons("0", [0]),
        "prune_below": lambda: s.prune_below("0", 0.01),
        "step": lambda: s.step(),
        "undo": s.undo,
        "redo": s.redo,
        "goto": lambda: s.goto(0),
        "switch_plan": lambda: s.switch_plan("plan 1"),
        "reinitialize": lambda: s.reinitialize(1),
        "apply_allocation": lambda: s.apply_allocation({"0": 0.9}),
        "compensate": lambda: s.prune(0.1, compensate=True),
        "finetune": lambda: s.finetune(1),
        "train": lambda: s.train("during", 0.9, 1),
        "set_data": lambda: s.set_data("demo:digits"),
        "to_device": lambda: s.to_device("cpu"),
        "group": lambda: s.group("x").__enter__(),
    }


@pytest.mark.slow
def test_the_issue_scenario_undo_mid_run_is_refused_and_nothing_goes_stale(mlp, tmp_path):
    # g = s.finetune(epochs=2); next(g) x10; s.undo(); list(g): today the undo "works", the run
    # then re-applies the masks it read at its start: 8,512 restored weights stay 0
    original = _bits(mlp)
    mlp.prune_neurons("0", list(range(16)))
    g = mlp.finetune(epochs=2)
    for _ in range(10):
        next(g)
    assert mlp.job is not None and mlp.job.name == "fine-tune"
    with pytest.raises(SessionBusy, match=r"^fine-tune is running; wait for it or cancel it first$"):
        mlp.undo()
    assert mlp.history.index == 1 and not bool(mlp.neuron_mask("0")[:16].any())
    list(g)
    assert mlp.job is None
    assert mlp.history.labels == ["prune neurons 0, 1, 2, 3, 4, 5, 6, 7 … (+8) of 0", "fine-tune 2 epochs (lr 5e-3)"]
    _zeros_stay_zero(mlp)
    _replays_to_live(mlp, tmp_path)
    mlp.undo()
    mlp.undo()  # now the undo works: every restored weight is its original, bit for bit
    _same(_bits(mlp), original)
    _replays_to_live(mlp, tmp_path)


@pytest.mark.slow
def test_mid_run_neuron_prune_is_refused_and_pruned_weights_stay_exactly_zero(mlp, tmp_path):
    mlp.prune(0.5)
    masks = _masks(mlp)
    g = mlp.finetune(epochs=1)
    for _ in range(5):
        next(g)
    with pytest.raises(SessionBusy):
        mlp.prune_neurons("2", list(range(20)))
    complete(g)
    for name, m in masks.items():
        assert torch.equal(mlp.mask(name), m), name
    _zeros_stay_zero(mlp)
    _replays_to_live(mlp, tmp_path)


def test_every_edit_is_refused_and_reading_is_allowed_while_a_run_holds_the_session(mlp, tmp_path):
    mlp.prune(0.2)
    mlp.undo()  # something to redo, and a plan to switch to
    mlp.prune(0.3)
    before_bits, labels, index = _bits(mlp), list(mlp.history.labels), mlp.history.index
    g = mlp.finetune(epochs=1)
    next(g)
    during = _bits(mlp)
    for name, edit in _edits(mlp).items():
        with pytest.raises(SessionBusy, match="fine-tune is running"):
            edit()
        assert isinstance(SessionBusy("x"), PrunevizError)
        assert mlp.history.labels == labels and mlp.history.index == index, name
        _same(_bits(mlp), during)
    # reading verbs stay allowed
    assert mlp.evaluate().accuracy > 0.5 and mlp.sparsity() > 0
    mlp.scores("0")
    mlp.mask("0")
    mlp.plans()
    mlp.export(tmp_path / "m.pt")
    mlp.rename_plan("plan 1", "first")  # a name, not the model
    g.close()
    assert mlp.job is None
    assert mlp.history.labels[-1] == "fine-tune 1 epoch (lr 5e-3), stopped after 1 steps"
    mlp.undo()
    _same(_bits(mlp), before_bits)
    _replays_to_live(mlp, tmp_path)


@pytest.mark.slow
def test_the_job_is_let_go_when_the_run_ends_is_closed_raises_or_is_collected(mlp):
    seen = []
    mlp.job_changed.connect(lambda job: seen.append(None if job is None else job.name))
    g = mlp.finetune(1)
    assert mlp.job is None  # held from the first next(), not the call
    next(g)
    assert mlp.job.name == "fine-tune"
    g.close()
    assert mlp.job is None
    g = mlp.finetune(1)
    next(g)
    del g
    gc.collect()
    assert mlp.job is None
    with pytest.raises(PrunevizError, match="training loss became"):
        complete(mlp.finetune(1, lr=1e30, optimizer="sgd"))
    assert mlp.job is None
    complete(mlp.train("during", 0.5, 1))
    assert mlp.job is None
    assert seen == ["fine-tune", None, "fine-tune", None, "fine-tune", None, "training schedule 'during'", None]
    mlp.prune(0.1)  # edits work again
    assert mlp.history.labels[-1].startswith("prune 10%")


def test_a_second_run_is_refused_at_the_call_and_at_its_start(mlp):
    g1 = mlp.finetune(1)
    g2 = mlp.train("during", 0.5, 1)  # made before the first started: checked again at its start
    next(g1)
    with pytest.raises(SessionBusy, match="fine-tune is running"):
        mlp.finetune(1)
    with pytest.raises(SessionBusy, match="fine-tune is running"):
        next(g2)
    g1.close()
    assert mlp.job is None


@pytest.mark.slow
def test_a_schedule_holds_the_session_too(mlp, tmp_path):
    g = mlp.train("during", 0.8, 1)
    for _ in range(15):  # past its first pruning steps
        next(g)
    masks = _masks(mlp)
    with pytest.raises(SessionBusy, match=r"training schedule 'during' is running"):
        mlp.restore_weights("0", torch.ones(mlp.layer("0").numel, dtype=torch.bool))
    for name, m in masks.items():
        assert torch.equal(mlp.mask(name), m), name
    complete(g)
    assert abs(mlp.sparsity() - 0.8) < 0.005
    _zeros_stay_zero(mlp)
    _replays_to_live(mlp, tmp_path)


@pytest.mark.slow
def test_the_jobs_own_edits_and_a_nested_run_go_through(mlp, tmp_path):
    # a lesson step: its own prune, a fine-tune inside it, an undo; from another thread: refused
    refused = []

    def other():
        try:
            mlp.prune(0.9)
        except SessionBusy as exc:
            refused.append(str(exc))

    with mlp.running("lesson step"):
        mlp.prune(0.5)
        complete(mlp.finetune(1))
        assert mlp.job.name == "lesson step"
        t = threading.Thread(target=other)
        t.start()
        t.join()
        mlp.undo()
        mlp.redo()
    assert refused == ["lesson step is running; wait for it or cancel it first"]
    assert mlp.job is None and len(mlp.history.labels) == 2
    _zeros_stay_zero(mlp)
    _replays_to_live(mlp, tmp_path)


@pytest.mark.slow
def test_a_run_driven_by_a_worker_thread_refuses_the_main_thread(mlp, tmp_path):
    mlp.prune(0.6)
    started, stop = threading.Event(), threading.Event()

    def worker():
        g = mlp.finetune(50, cancel=stop)
        next(g)
        started.set()
        for _ in g:
            pass

    t = threading.Thread(target=worker)
    t.start()
    assert started.wait(60)
    try:
        with pytest.raises(SessionBusy):
            mlp.undo()
        with pytest.raises(SessionBusy):
            mlp.prune_neurons("0", [0])
    finally:
        stop.set()
        t.join(120)
    assert mlp.job is None and len(mlp.history.labels) == 2
    _zeros_stay_zero(mlp)
    _replays_to_live(mlp, tmp_path)


def test_a_lesson_step_holds_the_session():
    from pruneviz.core import lessons

    run = lessons.LessonRun(lessons.load("fine-tune"))
    s = run.open()
    gen = run.step_iter()
    next(gen)
    assert s.job is not None and s.job.name == "lesson step"
    with pytest.raises(SessionBusy, match="lesson step is running"):
        s.prune(0.5)
    gen.close()
    assert s.job is None
