"""Engine edge cases found in review: models the fast paths must not get wrong."""

import threading

import pytest
import torch
import torch.nn as nn

from pruneviz.core import evaluate as ev
from pruneviz.core import persist
from pruneviz.core.data import EvalData
from pruneviz.core.errors import PrunevizError, TrustRequired
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session
from tests.core import models


def session(model, in_shape=(12,), classes=5, n=200, batch=64):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, *in_shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    s = Session(LoadedModel(model.eval(), "t", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu")
    s.batch_size = batch
    return s, x, y


def same(a, b):
    return (a.correct, a.loss, a.per_class) == (b.correct, b.loss, b.per_class)


class Shifted(nn.Sequential):
    def forward(self, x):  # an override the child-by-child fast path must not skip
        return super().forward(x * 3 + 1)


def test_sequential_subclass_with_its_own_forward_is_not_cut_child_by_child():
    torch.manual_seed(0)
    s, x, y = session(Shifted(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)))
    assert not ev.cacheable(s.model)  # its own forward: the traced graph, not the children
    r = s.evaluate()
    with torch.no_grad():
        assert r.correct == int((s.model(x).argmax(1) == y).sum())
    s.prune_weights("2", [1, 7])
    inc, full = s.evaluate(), s.evaluate(incremental=False)
    assert inc.start > 0 and same(inc, full)


def test_a_module_used_twice_is_not_cut_short():
    torch.manual_seed(0)
    shared = nn.Linear(12, 12)
    s, x, y = session(nn.Sequential(shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(12, 5)))
    assert not ev.cacheable(s.model)
    with torch.no_grad():
        assert s.evaluate().correct == int((s.model(x).argmax(1) == y).sum())
    s.prune_weights("4", [3])  # after both uses: starts late
    inc, full = s.evaluate(), s.evaluate(incremental=False)
    assert inc.start > 0 and same(inc, full)
    s.prune_weights("0", [3])  # its first use changes: from the input, though the second use is later
    inc, full = s.evaluate(), s.evaluate(incremental=False)
    assert inc.start == 0 and same(inc, full)


def test_nested_in_place_op_does_not_corrupt_the_cache():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Sequential(nn.LeakyReLU(0.5, inplace=True), nn.Linear(16, 16)), nn.ReLU(), nn.Linear(16, 5))
    s, _, _ = session(model)
    s.evaluate()
    for idx in ([0, 1, 2], [5], [9, 10]):
        s.prune_weights("1.1", idx)
        inc, full = s.evaluate(), s.evaluate(incremental=False)
        assert inc.start > 0 and same(inc, full)


def test_changing_the_batch_size_drops_the_cache():
    s, _, _ = session(models.mlp(), n=300, batch=256)
    s.evaluate()
    s.batch_size = 200
    s.prune_weights("4", [1])
    assert same(s.evaluate(), s.evaluate(incremental=False))


def test_depthwise_conv_neuron_masks_its_own_filter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    s, _, _ = session(model, (3, 8, 8))
    s.prune_neurons("2", [3])
    assert not bool(s.mask("2")[3].any()) and s.sparsity("2") == 1 / 8
    assert float(s.model[2].bias.detach()[3]) == 0.0
    # pruning the producer takes the depthwise channel with it
    s.prune_neurons("0", [5])
    assert not bool(s.neuron_mask("2")[5]) and not bool(s.mask("2")[5].any())


def test_channels_feeding_groupnorm_are_refused():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    s, _, _ = session(model, (3, 8, 8))
    with pytest.raises(PrunevizError, match="GroupNorm"):
        s.prune_neurons("0", [1])
    s.prune(0.5)  # weight pruning still works


def test_coupled_channels_count_once_and_no_layer_is_emptied():
    s, _, _ = session(models.resnet(), (3, 8, 8), 6)
    s.prune(0.25, scope="layer", granularity="neuron")
    for name in ("stem", "conv1", "conv2"):
        assert int((~s.neuron_mask(name)).sum()) == 2, name  # 25% of 8, not 50%
    s.undo()
    s.prune(1.0, scope="global", granularity="neuron")
    for name in ("stem", "conv1", "conv2"):
        assert bool(s.neuron_mask(name).any()), name
    s.undo()
    for _ in range(30):
        if s.step() is None:
            break
    for name in ("stem", "conv1", "conv2"):
        assert bool(s.neuron_mask(name).any()), name


def test_baseline_of_replaced_data_is_not_kept():
    s, x, y = session(models.mlp(), n=300, batch=50)
    gen = s.baseline_iter(threading.Event())
    next(gen)
    s.set_data(EvalData(x=x[:50], y=y[:50], spec="small"))
    list(gen)
    assert s.baseline().samples == 50


def test_journal_records_of_the_wrong_shape_are_clean_errors(tmp_path):
    s, _, _ = session(models.mlp())
    head = '{"format": "pruneviz-session", "version": 1, "model": "t"}\n'
    bad = [
        '{"op": "push", "flips": [7]}',
        '{"op": "push", "flips": [{"store": "elem", "layer": "0", "dtype": "int32", "idx": "AQAAAAEAAAA="}]}',  # [1, 1]
        '[1, 2]',
        '{"op": "jump"}',
    ]
    for i, rec in enumerate(bad):
        path = tmp_path / f"b{i}.pvz"
        path.write_text(head + rec + "\n")
        with pytest.raises(PrunevizError):
            _, records = persist.read_journal(path)
            persist.replay(s, records)
    for i, text in enumerate(['{"format": "pruneviz-session", "version": "2", "model": "t"}', '{"format": "pruneviz-session", "version": 1}', '{"format": "pruneviz-session", "version": 1, "model": "t", "seed": "x"}']):
        path = tmp_path / f"h{i}.pvz"
        path.write_text(text + "\n")
        with pytest.raises(PrunevizError):
            persist.read_journal(path)


def test_session_file_naming_factories_needs_trust(tmp_path):
    path = tmp_path / "evil.pvz"
    path.write_text('{"format": "pruneviz-session", "version": 1, "model": "demo:mlp", "data": "this:s"}\n')
    import sys

    before = "this" in sys.modules
    with pytest.raises(TrustRequired) as info:
        persist.load_session(path)
    assert info.value.imports == ["this:s"]
    assert ("this" in sys.modules) == before  # nothing was imported


def test_shrink_refuses_to_write_a_model_that_differs(tmp_path, monkeypatch):
    from pruneviz.core import export

    s, _, _ = session(models.cnn_seq(), (3, 8, 8), 4)
    s.prune_neurons("3", [1, 2])
    real = export.shrink_model

    def broken(*args, **kwargs):
        m = real(*args, **kwargs)
        with torch.no_grad():
            m[-1].bias += 1.0  # a shrink that changed the function
        return m

    monkeypatch.setattr(export, "shrink_model", broken)
    out = tmp_path / "m.pt2"
    with pytest.raises(PrunevizError, match="differ"):
        s.export(out, format="pt2", shrink=True)
    assert not out.exists()


@pytest.mark.slow  # prune, shrink, export and reload through the CLI
def test_shrunk_report_accuracy_is_the_written_models(tmp_path):
    s, x, y = session(models.cnn_seq(), (3, 8, 8), 4)
    s.prune(0.3, granularity="neuron")
    rep = s.export(tmp_path / "m.pt2", format="pt2", shrink=True)
    shrunk = torch.export.load(str(tmp_path / "m.pt2")).module()
    with torch.no_grad():
        assert rep["accuracy_after"] == int((shrunk(x).argmax(1) == y).sum()) / len(y)


def test_session_holds_its_evaluation_part_instead_of_inheriting_it():
    from pruneviz.core.session_eval import Evaluation

    s = Session.open("demo:mlp", data="demo:digits", device="cpu")
    assert Session.__mro__ == (Session, object)
    part = s.evaluation
    assert isinstance(part, Evaluation) and part.session is s
    assert part.evaluate().accuracy == s.evaluate().accuracy
    assert part.baseline_result is None
    s.baseline()
    assert part.baseline_result is not None and part.tensors is not None
    s.set_data("demo:digits")  # new data: the baseline and the tensors of the old data are gone
    assert part.baseline_result is None and part.tensors is None and part.generation == 1
