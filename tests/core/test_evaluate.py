"""Evaluation: against a plain torch loop, incremental == full, progress, cancel."""

import threading

import pytest
import torch
import torch.nn.functional as F

from pruneviz.core import evaluate as ev
from tests.core import models
from tests.core.test_pruning_oracles import make


def _plain(model, x, y):
    with torch.no_grad():
        out = model(x)
    return int((out.argmax(1) == y).sum()), F.cross_entropy(out, y).item()


def test_matches_plain_torch_loop():
    s, _, x, y = make(models.cnn_seq, (3, 8, 8), 4, n=300)
    s.batch_size = 64
    s.prune(0.5, scope="global")
    r = s.evaluate()
    correct, loss = _plain(s.model, x, y)
    assert r.samples == 300 and r.correct == correct and r.accuracy == correct / 300 and abs(r.loss - loss) < 1e-5
    for c in range(4):
        sel = y == c
        with torch.no_grad():
            expect = int((s.model(x[sel]).argmax(1) == c).sum()) / int(sel.sum())
        assert r.per_class[c] == expect


def test_incremental_equals_full_and_starts_late():
    s, _, _, _ = make(models.cnn_seq, (3, 8, 8), 4, n=300)
    s.batch_size = 64
    s.evaluate()  # fills the cache
    s.prune_neurons("8", [1, 2])  # a late layer
    inc = s.evaluate()
    full = s.evaluate(incremental=False)
    assert inc.start == 8 and full.start == 0
    assert (inc.accuracy, inc.loss, inc.per_class, inc.correct) == (full.accuracy, full.loss, full.per_class, full.correct)
    s.prune_neurons("0", [0])  # an early layer: everything after it is recomputed
    inc = s.evaluate()
    full = s.evaluate(incremental=False)
    assert inc.start == 0 and (inc.accuracy, inc.loss) == (full.accuracy, full.loss)
    s.undo()
    s.undo()
    assert s.evaluate().accuracy == s.baseline().accuracy


def test_progress_estimates_and_cancel():
    s, _, _, _ = make(models.mlp, (12,), 5, n=1000)
    s.batch_size = 100
    items = list(s.evaluate_iter())
    progress = [i for i in items if isinstance(i, ev.Progress)]
    # a small first batch gives a quick first estimate, then full batches
    assert [p.done for p in progress] == [32, 132, 232, 332, 432, 532, 632, 732, 832, 932, 1000]
    assert isinstance(items[-1], ev.EvalResult)
    assert all(p.low <= p.accuracy <= p.high for p in progress)
    assert progress[-1].accuracy == items[-1].accuracy
    cancel = threading.Event()
    gen = s.evaluate_iter(cancel=cancel)
    next(gen)
    cancel.set()
    assert all(not isinstance(i, ev.EvalResult) for i in gen)


def test_wilson_interval():
    lo, hi = ev.wilson(90, 100)
    assert abs(lo - 0.8256) < 1e-3 and abs(hi - 0.9448) < 1e-3
    assert ev.wilson(0, 0) == (0.0, 1.0)


def test_incremental_is_exact_with_inplace_activations():
    import torch.nn as nn

    from pruneviz.core.data import EvalData
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(inplace=True), nn.Linear(32, 32), nn.ReLU(inplace=True), nn.Linear(32, 5)).eval()
    x, y = torch.randn(200, 12), torch.randint(0, 5, (200,))
    s = Session(LoadedModel(model, "t", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu")
    s.batch_size = 64
    s.evaluate()
    for layer, idx in (("4", [1]), ("2", [3, 4]), ("4", [0])):
        s.prune_neurons(layer, idx)
        inc, full = s.evaluate(), s.evaluate(incremental=False)
        assert inc.start > 0
        assert (inc.correct, inc.loss) == (full.correct, full.loss)


class _OOMAbove(torch.nn.Module):
    """Raises out-of-memory for batches larger than ``limit``: fault injection for the fallback."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner = inner
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return self.inner(x)


def test_out_of_memory_retries_with_smaller_batches():
    import torch.nn as nn

    from pruneviz.core.data import EvalData
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    inner = models.mlp()
    x, y = torch.randn(300, 12), torch.randint(0, 5, (300,))
    model = nn.Sequential(_OOMAbove(inner, 40))
    s = Session(LoadedModel(model, "t", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu")
    s.batch_size = 256
    r = s.evaluate()
    assert s.batch_size == 32 and len(s.notices) == 3 and "batch size 32" in s.notices[-1]
    with torch.no_grad():
        expect = int((inner(x).argmax(1) == y).sum())
    assert r.correct == expect and r.samples == 300
    s.model[0].limit = 0  # nothing fits, even one sample: a clean error on the CPU
    import pytest

    from pruneviz.core.errors import PrunevizError

    with pytest.raises(PrunevizError, match="out of memory"):
        s.evaluate()


def test_to_device_keeps_masks_consistent():
    s, _, _, _ = make(models.resnet, (3, 8, 8), 6)
    s.prune_neurons("stem", [1])
    before = s.evaluate()
    s.to_device("cpu")
    s.prune_neurons("conv1", [2])
    s.undo()
    assert s.evaluate().correct == before.correct


def test_mixed_precision_and_channels_last_are_flagged_and_close():
    s, _, _, _ = make(models.cnn_seq, (3, 8, 8), 4, n=200)
    exact = s.evaluate()
    assert exact.precision == "fp32"
    s.set_precision(amp=True, channels_last=True)
    s.prune_neurons("3", [1])
    s.undo()
    approx = s.evaluate()
    assert approx.precision in ("amp-bf16", "amp-fp16")
    assert abs(approx.accuracy - exact.accuracy) <= 0.05 and abs(approx.loss - exact.loss) < 0.1
    s.set_precision(False, False)
    again = s.evaluate()
    assert (again.correct, again.loss, again.precision) == (exact.correct, exact.loss, "fp32")


@pytest.mark.slow  # evaluations of several zoo models; quick: test_incremental_equals_full_and_starts_late
def test_cached_inputs_are_copied_unless_the_child_leaves_them_alone():
    """A cached activation is fed without a copy only to a module that cannot write it; after
    incremental evaluations the cache still holds exactly what a full pass computes."""
    import torch.nn as nn

    from pruneviz.core.data import EvalData
    from pruneviz.core.model_io import LoadedModel
    from pruneviz.core.session import Session

    class MyConv(nn.Conv2d):  # a subclass may override forward: copied
        pass

    hooked = nn.Linear(4, 4)
    hooked.register_forward_pre_hook(lambda m, args: args[0].mul_(2))
    assert ev.leaves_input_alone(nn.Conv2d(1, 2, 3)) and ev.leaves_input_alone(nn.BatchNorm2d(2)) and ev.leaves_input_alone(nn.Linear(2, 2))
    for m in (nn.ReLU(inplace=True), nn.ReLU(), nn.Flatten(), nn.Dropout(), nn.Identity(), MyConv(1, 2, 3), hooked):
        assert not ev.leaves_input_alone(m), m

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(144, 16), nn.ReLU(inplace=True), nn.Linear(16, 3),
    ).eval()
    x, y = torch.randn(150, 36), torch.randint(0, 3, (150,))
    s = Session(LoadedModel(model, "t", "state_dict", None, x[:1], True), EvalData(x=x, y=y, spec="t"), device="cpu")
    s.batch_size = 64
    s.evaluate()
    for layer, idx in (("4", [1]), ("7", [3, 4]), ("9", [0]), ("1", [2])):
        s.prune_neurons(layer, idx)
        inc, full = s.evaluate(), s.evaluate(incremental=False)
        assert (inc.correct, inc.loss) == (full.correct, full.loss)
        # every cached point equals the same child input computed from scratch
        xs, _ = s.eval_tensors()  # in evaluation order
        assert s.cache.points
        with torch.inference_mode():
            for k, tensors in s.cache.points.items():
                for (i, j), t in zip(s.cache.bounds, tensors):
                    h = xs[i:j]
                    for child in list(model.children())[:k]:
                        h = child(h)
                    assert torch.equal(t, h), (layer, k)
