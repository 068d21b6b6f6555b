"""The training split demo:digits-train and the same-data check."""

import numpy as np
import torch

from pruneviz.core import demo
from pruneviz.core.data import open_data, same_source


def test_training_split_is_the_rest_of_the_digits():
    test = open_data("demo:digits")
    train = open_data("demo:digits-train")
    x_all, y_all = demo.load_digits("all")
    assert len(train) + len(test) == len(y_all) == 1797
    assert len(train) == 1437
    # every sample is in exactly one split: compare rows as bytes (the digits have duplicates, so count)
    rows = lambda x: sorted(bytes(r) for r in (x.numpy() * 16).astype(np.uint8))  # noqa: E731
    assert sorted(rows(train.x) + rows(test.x)) == rows(x_all)
    assert torch.equal(torch.sort(torch.cat([train.y, test.y]))[0], torch.sort(y_all)[0])
    assert f"({len(train)} samples" in demo.DATA_NAMES["digits-train"]


def test_same_source_sees_links_and_relative_paths(tmp_path, monkeypatch):
    assert same_source("demo:digits", "demo:digits")
    assert not same_source("demo:digits", "demo:digits-train")
    assert not same_source(None, "demo:digits")
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((2, 64), np.float32), y=np.zeros(2, np.int64))
    (tmp_path / "link.npz").symlink_to(f)
    monkeypatch.chdir(tmp_path)
    assert same_source("d.npz", str(tmp_path / "link.npz"))
    other = tmp_path / "e.npz"
    np.savez(other, x=np.zeros((2, 64), np.float32), y=np.zeros(2, np.int64))
    assert not same_source(str(f), str(other))
