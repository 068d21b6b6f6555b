"""open_data / check_fits: every data form, every bad shape, one-line errors, nothing unpickled."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest
import torch

from pruneviz.core.data import EvalData, check_fits, open_data
from pruneviz.core.errors import PrunevizError

FACTORIES = textwrap.dedent(
    """
    import os
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

    X = torch.arange(30 * 64, dtype=torch.float32).reshape(30, 64) / 1000
    Y = torch.arange(30) % 10


    def tensor_dataset():
        return TensorDataset(X, Y)


    def loader():
        return DataLoader(TensorDataset(X, Y), batch_size=7, shuffle=False)


    class Pairs(Dataset):
        def __len__(self):
            return 30

        def __getitem__(self, i):
            return X[i].numpy(), int(Y[i])


    def numpy_pairs():
        return Pairs()


    def plain_list():
        return [(X[i], Y[i]) for i in range(30)]


    class Stream(IterableDataset):
        def __iter__(self):
            for i in range(30):
                yield X[i], Y[i]


    def stream():
        return Stream()


    class Forever(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros(64), 0


    def forever():
        return Forever()


    def empty():
        return TensorDataset(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))


    def empty_loader():
        return DataLoader(empty(), batch_size=4)


    def dicts():
        return [{"x": X[i], "y": Y[i]} for i in range(3)]


    class Broken(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 4:
                raise KeyError("sample 4 is corrupt")
            return X[i], Y[i]


    def broken():
        return Broken()


    def ragged():
        return [(torch.zeros(64), 0), (torch.zeros(63), 1)]


    def float_labels():
        return [(torch.zeros(64), 0.5), (torch.zeros(64), 1.5)]


    def not_data():
        return 3.5


    class Evil:
        def __init__(self, path):
            self.path = path

        def __reduce__(self):
            return (os.makedirs, (self.path,))
    """
)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    name = f"pv_data_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def refused(spec, **kwargs) -> str:
    with pytest.raises(PrunevizError) as exc:
        open_data(spec, **kwargs)
    return one_line(exc)


class Linear10(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.fc = torch.nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(x)


# ---------------------------------------------------------------------------------------------
# Forms that open


def test_demo_digits():
    data = open_data("demo:digits")
    assert isinstance(data, EvalData)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert data.x.shape[1:] == (64,) and len(data) == data.x.shape[0] > 0
    assert data.num_classes == 10
    check_fits(Linear10(), data)


def test_unknown_demo_data():
    assert "demo:digits" in refused("demo:mnist")


def test_npz(tmp_path):
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((12, 8, 8))  # float64 becomes float32
    y = np.arange(12, dtype=np.uint8) % 4
    np.savez_compressed(path, x=x, y=y)
    data = open_data(str(path))
    assert data.x.dtype == torch.float32 and data.x.shape == (12, 8, 8)
    assert data.y.dtype == torch.int64 and data.num_classes == 4 and len(data) == 12
    assert torch.allclose(data.x, torch.from_numpy(x).float())


def test_npz_column_labels_are_flattened(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((5, 3), np.float32), y=np.arange(5).reshape(5, 1))
    assert open_data(str(path)).y.shape == (5,)


def test_pt(tmp_path):
    path = tmp_path / "d.pt"
    x = torch.randn(9, 64)
    torch.save({"x": x, "y": torch.arange(9) % 3}, path)
    data = open_data(str(path))
    assert torch.equal(data.x, x) and data.num_classes == 3


@pytest.mark.parametrize("factory", ["tensor_dataset", "loader", "numpy_pairs", "plain_list", "stream"])
def test_factories(factories, factory):
    data = open_data(f"{factories}:{factory}")
    module = __import__(factories)
    assert data.x.shape == (30, 64) and data.x.dtype == torch.float32
    assert torch.allclose(data.x, module.X) and torch.equal(data.y, module.Y)
    check_fits(Linear10(), data)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_and_directory(tmp_path):
    assert "does not exist" in refused(str(tmp_path / "none.npz"))
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    assert "directory" in refused(str(folder))


def test_unaccepted_forms(tmp_path):
    message = refused("just-some-words")
    assert "demo:digits" in message and ".npz" in message and "package.module:function" in message
    other = tmp_path / "d.csv"
    other.write_text("1,2\n")
    assert "expected demo:digits" in refused(str(other))


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"PK\x03\x04garbage"])
def test_broken_files(tmp_path, content):
    for suffix in (".npz", ".pt"):
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(content)
        refused(str(path))


def npz(tmp_path, **arrays):
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.npz"
    np.savez(path, **arrays)
    return str(path)


def test_npz_missing_arrays(tmp_path):
    assert "it has inputs, labels" in refused(npz(tmp_path, inputs=np.zeros((2, 3)), labels=np.zeros(2)))


@pytest.mark.parametrize(
    "x, y, fragment",
    [
        (np.zeros(5), np.zeros(5, int), "expected a sample axis"),
        (np.zeros((5, 3)), np.zeros((5, 2), int), "one integer per sample"),
        (np.zeros((5, 3)), np.zeros(4, int), "x has 5 samples but y has 4"),
        (np.zeros((5, 3)), np.zeros(5, np.float32), "expected integer class indices"),
        (np.zeros((5, 3)), np.zeros(5, bool), "expected integer class indices"),
        (np.zeros((5, 3)), np.array([0, 1, -1, 2, 0]), "labels must be class indices >= 0"),
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), np.zeros(2, int), "NaN or infinite values (first in sample 1)"),
        (np.zeros((0, 3)), np.zeros(0, int), "holds no samples"),
        (np.array([["a", "b"]]), np.zeros(1, int), "not numeric"),
        (np.zeros((2, 3), np.complex64), np.zeros(2, int), "not numeric"),
    ],
)
def test_npz_bad_contents(tmp_path, x, y, fragment):
    assert fragment in refused(npz(tmp_path, x=x, y=y))


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    assert "Python objects" in refused(npz(tmp_path, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2, int)))


def test_npz_over_the_size_limit(tmp_path):
    path = npz(tmp_path, x=np.zeros((100, 64), np.float32), y=np.zeros(100, int))
    assert "limit" in refused(path, max_bytes=1000)


def test_pt_bad_contents(tmp_path):
    path = tmp_path / "d.pt"
    torch.save(torch.zeros(3), path)
    assert "expected a dict with tensors x and y" in refused(str(path))
    torch.save({"inputs": torch.zeros(3, 2), "y": torch.zeros(3)}, path)
    assert "it has inputs, y" in refused(str(path))
    torch.save({"x": torch.zeros(3, 2), "y": torch.tensor([0.0, 1.0, 2.0])}, path)
    assert "expected integer class indices" in refused(str(path))


def test_pt_data_is_never_unpickled(tmp_path, factories):
    marker = tmp_path / "code_ran"
    path = tmp_path / "d.pt"
    evil = __import__(factories).Evil(str(marker))
    torch.save({"x": torch.zeros(3, 2), "y": torch.zeros(3, dtype=torch.long), "extra": evil}, path)
    message = refused(str(path))
    assert "os.makedirs" in message and "never unpickled" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "factory, fragment",
    [
        ("empty", "is empty"),
        ("empty_loader", "is empty"),
        ("dicts", "expected an (input, label) pair"),
        ("broken", "reading sample 4"),
        ("ragged", "do not combine"),
        ("float_labels", "expected integer class indices"),
        ("not_data", "returned a float"),
        ("nope", "no attribute nope"),
    ],
)
def test_bad_factories(factories, factory, fragment):
    assert fragment in refused(f"{factories}:{factory}")


def test_endless_dataset_stops_at_the_limit(factories):
    assert "limit" in refused(f"{factories}:forever", max_bytes=100_000)


def test_factory_module_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "PYTHONPATH" in refused("pv_no_such_data_module:load")


# ---------------------------------------------------------------------------------------------
# check_fits


def data_of(x, y) -> EvalData:
    return EvalData(torch.as_tensor(x), torch.as_tensor(y), "test")


def fit_error(model, data) -> str:
    with pytest.raises(PrunevizError) as exc:
        check_fits(model, data)
    return one_line(exc)


def test_fits():
    check_fits(Linear10().eval(), data_of(torch.zeros(4, 64), torch.tensor([0, 9, 3, 1])))


def test_wrong_input_shape():
    message = fit_error(Linear10(), data_of(torch.zeros(4, 63), torch.zeros(4, dtype=torch.long)))
    assert message.startswith("data of shape [63] does not fit the model: ")


def test_labels_out_of_range():
    message = fit_error(Linear10(), data_of(torch.zeros(4, 64), torch.tensor([0, 12, 3, 1])))
    assert message == "labels go up to 12 but the model has 10 outputs"


def test_output_not_logits():
    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.sum()

    class Pair(torch.nn.Module):  # a tuple is read by its first element: here not a tensor
        def forward(self, x):
            return "scores", x

    data = data_of(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))
    assert "expected logits of shape [2, classes]" in fit_error(Flat(), data)
    assert "returns a tuple" in fit_error(Pair(), data)


def test_empty_data():
    assert "no samples" in fit_error(Linear10(), data_of(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long)))


def test_model_with_fixed_batch_of_one():
    class OneAtATime(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] != 1:
                raise RuntimeError("Guard failed: x.size()[0] == 1")
            return torch.zeros(1, 10)

    message = fit_error(OneAtATime(), data_of(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long)))
    assert "one sample at a time" in message and "dynamic_shapes" in message
