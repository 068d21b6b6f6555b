"""Fine-tuning, schedules, regrowth, compensation, re-initialisation: invariants and oracles.

Invariants checked after every step: pruned entries are exactly 0, every parameter equals
``orig * mask``; undo/redo restore every parameter and buffer bit for bit.
"""

import threading

import numpy as np
import pytest
import torch

from pruneviz.core import compensate as comp
from pruneviz.core import persist
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session
from pruneviz.core.schedules import cubic
from pruneviz.core.training import complete


def _bits(s: Session) -> dict[str, torch.Tensor]:
    """Every parameter, buffer and original value as raw bits."""
    out = {f"p:{n}": p.detach().clone() for n, p in s.model.named_parameters()}
    out |= {f"b:{n}": b.clone() for n, b in s.model.named_buffers()}
    out |= {f"o:{n}": t.clone() for n, t in s.masks.orig.items()}
    return {k: (v.view(torch.int32) if v.dtype == torch.float32 else v) for k, v in out.items()}


def _same_bits(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _masks(s: Session) -> dict[str, torch.Tensor]:
    return {layer.name: s.mask(layer.name) for layer in s.layers}


def _check_invariant(s: Session, orig: bool = True) -> None:
    """Pruned weights exactly 0, and every masked parameter == orig * mask (originals are synced
    when a run ends or changes the mask, so mid-run only the zeros are checked: ``orig=False``)."""
    m = s.masks
    for layer in s.layers:
        w = s.weight(layer.name)
        assert bool((w[~s.mask(layer.name)] == 0).all()), layer.name
    for p in m.orig:
        lname = m.weight_layer.get(p)
        mask = m.param_mask(p, m.elem[lname] if lname else None)
        assert bool((m.params[p].detach()[~mask] == 0).all()), p
        if orig:
            assert torch.equal(m.params[p].detach(), m.orig[p] * mask.to(m.orig[p].dtype)), p
    assert not s.model.training


def _drive(gen, check=None):
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if check is not None:
            check(p)


@pytest.fixture
def mlp():
    return Session.open("demo:mlp", data="demo:digits")


# ---------------------------------------------------------------------------------------------
# exact zeros


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_finetune_keeps_pruned_entries_exactly_zero(mlp, optimizer):
    mlp.prune(0.8)
    before = _masks(mlp)
    old = {layer.name: mlp.weight(layer.name) for layer in mlp.layers}
    result = _drive(mlp.finetune(1, optimizer=optimizer), lambda p: _check_invariant(mlp, False))
    _check_invariant(mlp)
    for name, m in _masks(mlp).items():
        assert torch.equal(m, before[name])
        assert not torch.equal(mlp.weight(name)[m], old[name][m])  # the kept weights did train
    assert result.epochs == 1 and result.steps == 45 and result.optimizer == optimizer
    assert mlp.history.labels[-1].startswith("fine-tune 1 epoch (lr ")


@pytest.mark.slow
def test_finetune_cnn_neurons_batchnorm_back_in_eval():
    s = Session.open("demo:cnn", data="demo:digits")
    s.prune(0.3, granularity="neuron")
    bn = [n for n, _ in s.model.named_buffers() if n.endswith("running_mean")]
    stats = {n: b.clone() for n, b in s.model.named_buffers() if n in bn}
    _drive(s.finetune(1, batch_size=128), lambda p: _check_invariant(s, False))
    _check_invariant(s)
    assert all(not torch.equal(b, stats[n]) for n, b in s.model.named_buffers() if n in bn)  # BatchNorm learned
    for layer in s.layers:
        gone = ~s.neuron_mask(layer.name)
        assert bool((s.weight(layer.name)[gone] == 0).all())


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["before", "during", "after", "regrow", "granet"])
def test_every_schedule_keeps_pruned_entries_zero_and_reaches_target(mlp, schedule):
    def check(p):
        if p.step % 7 == 0:
            _check_invariant(mlp, False)

    result = _drive(mlp.train(schedule, 0.8, 1, batch_size=64), check)
    _check_invariant(mlp)
    assert abs(mlp.sparsity() - 0.8) < 0.005
    assert len(result.curve) == 1 and mlp.history.labels == [result.label]


@pytest.mark.slow  # a training run; quick: test_finetune_keeps_pruned_entries_exactly_zero[adam]
def test_snip_prunes_at_init_by_weight_times_gradient(mlp):
    plain = Session.open("demo:mlp", data="demo:digits")
    complete(mlp.train("before", 0.5, 1, method="snip"))
    complete(plain.train("before", 0.5, 1, method="magnitude"))
    assert any(not torch.equal(a, b) for a, b in zip(_masks(mlp).values(), _masks(plain).values()))


def test_cubic_schedule_formula():
    assert cubic(0.0, 0.9, 0, 10) == 0.0
    assert cubic(0.0, 0.9, 10, 10) == pytest.approx(0.9)
    assert cubic(0.0, 0.9, 5, 10) == pytest.approx(0.9 + (0.0 - 0.9) * 0.5**3)


# ---------------------------------------------------------------------------------------------
# undo / redo


def test_undo_of_finetune_is_bit_identical_and_redo_replays():
    s = Session.open("demo:cnn", data="demo:digits")
    s.prune(0.5)
    before = _bits(s)
    complete(s.finetune(1, batch_size=128))
    after = _bits(s)
    assert s.undo().startswith("fine-tune")
    _same_bits(_bits(s), before)
    s.redo()
    _same_bits(_bits(s), after)
    s.undo()
    s.undo()
    _same_bits(_bits(s), _bits(Session.open("demo:cnn", data="demo:digits")))


@pytest.mark.slow  # a training schedule; quick: test_undo_of_finetune_is_bit_identical_and_redo_replays
def test_undo_of_a_schedule_with_regrowth_is_bit_identical(mlp):
    before = _bits(mlp)
    complete(mlp.train("regrow", 0.7, 1))
    after = _bits(mlp)
    mlp.undo()
    _same_bits(_bits(mlp), before)
    assert mlp.sparsity() == 0.0
    mlp.redo()
    _same_bits(_bits(mlp), after)


@pytest.mark.slow  # a training run
def test_finetune_undo_memory_is_four_bytes_per_parameter_and_offloads(mlp):
    mlp.prune(0.9)
    flips_bytes = mlp.memory()["history"]
    complete(mlp.finetune(1))
    trained = sum(p.numel() for p in mlp.model.parameters())
    per_param = (mlp.memory()["history"] - flips_bytes) / trained
    assert per_param <= 4.0
    mlp.weights_budget_bytes = 0  # everything past now goes to disk
    before = _bits(mlp)
    complete(mlp.finetune(1))
    after = _bits(mlp)
    mem = mlp.memory()
    assert mem["history_disk"] > 0 and mem["history"] - flips_bytes == per_param * trained
    mlp.undo()
    _same_bits(_bits(mlp), before)
    mlp.redo()
    _same_bits(_bits(mlp), after)


def test_cancel_keeps_completed_steps_as_one_undo_step(mlp):
    cancel = threading.Event()
    mlp.prune(0.5)
    before = _bits(mlp)
    gen = mlp.finetune(3, cancel=cancel)
    for p in gen:
        if p.step == 5:
            cancel.set()
    assert "stopped after 5 steps" in mlp.history.labels[-1]
    mid = _bits(mlp)
    assert any(not torch.equal(mid[k], before[k]) for k in mid)
    mlp.undo()
    _same_bits(_bits(mlp), before)


def test_closing_the_generator_records_one_step(mlp):
    gen = mlp.finetune(2)
    for p in gen:
        if p.step == 3:
            break
    gen.close()
    assert len(mlp.history.labels) == 1 and "stopped after 3 steps" in mlp.history.labels[0]


@pytest.mark.slow  # two training runs; quick: test_undo_of_finetune_is_bit_identical_and_redo_replays
def test_deterministic_under_seed():
    runs = []
    for _ in range(2):
        s = Session.open("demo:mlp", data="demo:digits", seed=3)
        complete(s.train("regrow", 0.6, 1))
        runs.append(_bits(s))
    _same_bits(*runs)


def test_reinitialize_keeps_masks_and_undoes(mlp):
    mlp.prune(0.5)
    masks, before = _masks(mlp), _bits(mlp)
    label = mlp.reinitialize(7)
    assert label == "re-initialise (seed 7)"
    _check_invariant(mlp)
    assert all(torch.equal(a, b) for a, b in zip(masks.values(), _masks(mlp).values()))
    assert mlp.evaluate().accuracy < 0.3  # a fresh network guesses
    mlp.undo()
    _same_bits(_bits(mlp), before)


# ---------------------------------------------------------------------------------------------
# recovery figures (README)


README_SEEDS = range(5)  #: the README's training figures are means over `--seed` 0-4


def _oneshot(seed: int, epochs: int) -> float:
    s = Session.open("demo:mlp", data="demo:digits", device="cpu", seed=seed)
    s.prune(0.9, scope="layer")
    assert s.evaluate().accuracy < 0.5
    result = complete(s.finetune(epochs))
    assert s.evaluate().accuracy == result.curve[-1]["accuracy"]
    return result.curve[-1]["accuracy"]


def _gradual(seed: int, epochs: int) -> float:
    s = Session.open("demo:mlp", data="demo:digits", device="cpu", seed=seed)
    result = complete(s.train("during", 0.9, epochs))
    assert abs(s.sparsity() - 0.9) < 0.005
    return result.curve[-1]["accuracy"]


@pytest.mark.slow
def test_readme_training_figures_on_the_mean_of_five_seeds():
    """The README's figures over seeds 0-4: 90 % + 3 epochs of fine-tuning and gradual to 90 % in
    3 epochs both reach 0.93 on the mean (0.9600 and 0.9472); Zhu & Gupta's claim at the budget
    where it holds: one-shot leads at 3 epochs, gradual at 6 (0.9667 vs 0.9761)."""
    oneshot3 = [_oneshot(sd, 3) for sd in README_SEEDS]
    assert np.mean(oneshot3) >= 0.93 and np.mean(oneshot3) == pytest.approx(0.9600, abs=0.005)
    gradual3 = [_gradual(sd, 3) for sd in README_SEEDS]
    assert np.mean(gradual3) >= 0.93 and np.mean(gradual3) == pytest.approx(0.9472, abs=0.005)
    assert np.mean(oneshot3) > np.mean(gradual3)
    gradual6 = [_gradual(sd, 6) for sd in README_SEEDS]
    oneshot6 = [_oneshot(sd, 6) for sd in README_SEEDS]
    assert np.mean(gradual6) > np.mean(oneshot6)


def test_regrow_keeps_sparsity_and_changes_the_mask(mlp):
    seen = []
    start = {}

    def check(p):
        seen.append(p.sparsity)
        if not start and p.step == 1:
            start.update(_masks(mlp))

    complete_gen = mlp.train("regrow", 0.8, 2)
    _drive(complete_gen, check)
    assert seen and all(abs(s - 0.8) <= 0.005 for s in seen)
    changed = sum(int((a != b).sum()) for a, b in zip(start.values(), _masks(mlp).values()))
    assert changed > 0  # connections were dropped and regrown


# ---------------------------------------------------------------------------------------------
# compensation


def _inputs(s: Session, name: str, x: torch.Tensor) -> torch.Tensor:
    got = []
    h = dict(s.model.named_modules())[name].register_forward_hook(lambda m, i, o: got.append(i[0].detach()))
    with torch.no_grad():
        s.model(x)
    h.remove()
    return torch.cat(got)


def test_compensation_lowers_every_layers_reconstruction_error():
    plain = Session.open("demo:mlp", data="demo:digits")
    dense = {layer.name: plain.weight(layer.name) for layer in plain.layers}
    plain.prune(0.7)
    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.7, compensate=True)
    x = comp.calibration_inputs(s, None)
    for layer in s.layers:
        assert torch.equal(s.mask(layer.name), plain.mask(layer.name))  # the same mask
        X = _inputs(s, layer.name, x)  # inputs from the compensated layers before it
        target = X @ dense[layer.name].T
        err_plain = (target - X @ plain.weight(layer.name).T).norm()
        err_comp = (target - X @ s.weight(layer.name).T).norm()
        assert err_comp < err_plain, layer.name
    assert s.evaluate().accuracy >= plain.evaluate().accuracy
    _check_invariant(s)


@pytest.mark.slow  # compensation of every layer; quick: test_undo_of_finetune_is_bit_identical_and_redo_replays
def test_compensation_undo_is_bit_identical_and_restore_brings_originals_back():
    s = Session.open("demo:cnn", data="demo:digits")
    before = _bits(s)
    s.prune(0.5, compensate=True)
    after = _bits(s)
    assert s.history.labels == ["prune 50% weights in 5 layers by magnitude, compensated"]
    s.undo()
    _same_bits(_bits(s), before)
    s.redo()
    _same_bits(_bits(s), after)


def test_compensation_refuses_a_layer_whose_hessian_does_not_fit(mlp):
    before = _bits(mlp)
    with pytest.raises(PrunevizError, match=r"cannot compensate .*Hessian needs .* but only .* is free"):
        comp.prune(mlp, 0.5, "layer", "magnitude", None, limit=1000)
    _same_bits(_bits(mlp), before)
    assert mlp.history.labels == []
    with pytest.raises(PrunevizError, match="use it with weight or N:M pruning"):
        mlp.prune(0.5, granularity="neuron", compensate=True)


# ---------------------------------------------------------------------------------------------
# persistence


def test_session_file_and_autosave_replay_fine_tuning(mlp, tmp_path):
    auto = persist.Autosave(mlp, tmp_path / "auto")
    mlp.prune(0.8)
    complete(mlp.finetune(1))
    mlp.prune(0.1, compensate=True)
    mlp.undo()
    want = _bits(mlp)
    persist.save_session(mlp, tmp_path / "s.pvz")
    for path in (tmp_path / "s.pvz", auto.path):
        back = persist.load_session(path)
        _same_bits(_bits(back), want)
        assert back.history.labels == mlp.history.labels and back.history.index == mlp.history.index
        back.redo()
        mlp.redo()
        _same_bits(_bits(back), _bits(mlp))
        mlp.undo()
    auto.close()


def test_a_journal_with_weights_of_another_model_is_refused(mlp, tmp_path):
    auto = persist.Autosave(mlp, tmp_path / "auto")
    complete(mlp.finetune(1))
    auto.close(keep=True)  # a journal: a saved session file edited so would fail its checksum first
    text = auto.path.read_text().replace('"model": "demo:mlp"', '"model": "demo:cnn"')
    (tmp_path / "t.pvz").write_text(text)
    with pytest.raises(PrunevizError, match="does not fit this model"):
        persist.load_session(tmp_path / "t.pvz")


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kw,match", [
    ({"lr": 0}, "learning rate must be a finite number above 0"),
    ({"lr": -1e-3}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"),
    ({"lr": float("inf")}, "learning rate"),
    ({"epochs": 0}, "epochs must be a whole number of at least 1"),
    ({"optimizer": "lbfgs"}, "unknown optimizer"),
    ({"batch_size": 0}, "batch size"),
])
def test_bad_settings_are_refused_at_the_call(mlp, kw, match):
    with pytest.raises(PrunevizError, match=match):
        mlp.finetune(**kw)
    assert mlp.history.labels == []


def test_training_data_that_does_not_fit_is_refused(mlp, tmp_path):
    f = tmp_path / "wrong.npz"
    np.savez(f, x=np.zeros((10, 7), np.float32), y=np.zeros(10, np.int64))
    with pytest.raises(PrunevizError, match="does not fit the model"):
        mlp.finetune(1, data=str(f))
    s = Session.open("demo:mlp")
    s.spec = "model.pt"  # not a demo: no default training data
    with pytest.raises(PrunevizError, match="training needs data") as exc:
        s.finetune(1)
    assert exc.value.hint_key == "train_data"


def test_nan_loss_stops_restores_and_says_so(mlp):
    mlp.prune(0.5)
    before = _bits(mlp)
    with pytest.raises(PrunevizError, match=r"training loss became (nan|inf).*back as it was"):
        complete(mlp.finetune(1, lr=1e30, optimizer="sgd"))
    _same_bits(_bits(mlp), before)
    assert mlp.history.labels == ["prune 50% weights in 0, 2, 4 by magnitude"]


@pytest.mark.slow  # a training run
def test_training_on_the_evaluation_data_warns(mlp):
    result = complete(mlp.finetune(1, data="demo:digits"))
    assert result.warnings and "also the evaluation data" in result.warnings[0]
    assert "also the evaluation data" in mlp.notices[-1]
    assert not complete(mlp.finetune(1)).warnings


def test_schedule_settings_are_checked(mlp):
    for kw, match in [({"schedule": "sometimes"}, "unknown schedule"), ({"target_sparsity": 1.0}, "target sparsity"), ({"method": "taylor"}, "unknown method")]:
        args = {"schedule": "during", "target_sparsity": 0.5, "epochs": 1} | kw
        with pytest.raises(PrunevizError, match=match):
            mlp.train(**args)
    mlp.prune(0.6)
    with pytest.raises(PrunevizError, match="already 60.0% sparse"):
        mlp.train("before", 0.5, 1)


@pytest.mark.slow
def test_readme_training_example(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "finetune" in b)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    s = ns["s"]
    assert s.history.labels == [
        "prune 90% weights in 0, 2, 4 by magnitude",
        "train regrow to 90% (magnitude, 2 epochs, lr 5e-3)",
        "prune 10% weights in 0, 2, 4 by magnitude, compensated",
        "re-initialise (seed 1)",
    ]
    assert [p["epoch"] for p in ns["result"].curve] == [1, 2]


def test_regrown_connections_start_at_zero_and_drop_the_smallest(mlp):
    from pruneviz.core.training import Run, training_data

    mlp.prune(0.8)
    run = Run(mlp, training_data(mlp, None)[0], 1e-3, "adam", 64, None)
    before = _masks(mlp)
    w_before = {layer.name: mlp.weight(layer.name) for layer in mlp.layers}
    torch.nn.functional.cross_entropy(mlp.model(run.x[:64]), run.y[:64]).backward()
    grads = {layer.name: mlp.masks.params[layer.weight].grad.clone() for layer in mlp.layers}
    run.regrow(0.2)
    for layer in mlp.layers:
        n = layer.name
        grown = ~before[n] & mlp.mask(n)
        dropped = before[n] & ~mlp.mask(n)
        assert int(grown.sum()) == int(dropped.sum()) > 0  # constant sparsity
        assert bool((mlp.weight(n)[grown] == 0).all()) and bool((mlp.weight(n, original=True)[grown] == 0).all())
        # dropped: the smallest magnitudes of what was kept; grown: the largest gradients of what was pruned
        kept_mag = w_before[n][before[n] & ~dropped].abs()
        assert w_before[n][dropped].abs().max() <= kept_mag.min()
        g = grads[n].abs()
        assert g[grown].min() >= g[~before[n] & ~grown].max()
    mlp.model.zero_grad(set_to_none=True)


@pytest.mark.slow  # a training run
def test_baseline_is_the_loaded_model_also_when_first_asked_after_fine_tuning():
    """The baseline (Accuracy dock, CLI) is the model as loaded: first computed after a
    fine-tune step it was the fine-tuned dense model (0.9917 instead of 0.9972 on demo:cnn)."""
    fresh = Session.open("demo:mlp", data="demo:digits", device="cpu").baseline()
    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    s.prune(0.6, scope="global")
    complete(s.finetune(epochs=1, lr=5e-3))
    before = _bits(s)
    base = s.baseline()
    _same_bits(before, _bits(s))  # measured on a copy: the session is untouched
    assert (base.correct, base.loss) == (fresh.correct, fresh.loss)
    dense = s.original_model()  # the fine-tuned values with the masks off: another model
    assert any(not torch.equal(a, b) for a, b in zip(dense.parameters(), Session.open("demo:mlp").model.parameters()))
