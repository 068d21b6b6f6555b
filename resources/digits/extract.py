"""One-off extraction of the demo data set. Run once; the result is committed.

    python resources/digits/extract.py

Reads the UCI optical-recognition-of-handwritten-digits data (8x8, 1,797 samples) as shipped
by scikit-learn (``sklearn.datasets.load_digits``), draws a fixed, stratified 20 % held-out
split, and writes ``digits.npz`` next to this file:

* ``x``        uint8 [1797, 64], pixel counts 0..16 (row-major 8x8)
* ``y``        uint8 [1797], class 0..9
* ``test_idx`` int64 [360], sorted indices of the held-out samples

Only this script imports scikit-learn; nothing in pruneviz does at run time.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 20250101
TEST_FRACTION = 0.2


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    bunch = load_digits()
    data = np.asarray(bunch.data)
    target = np.asarray(bunch.target)
    assert data.shape == (1797, 64), data.shape
    assert data.min() >= 0 and data.max() <= 16
    assert np.array_equal(data, np.round(data))
    x = data.astype(np.uint8)
    y = target.astype(np.uint8)

    idx = np.arange(len(y))
    _, test_idx = train_test_split(
        idx, test_size=TEST_FRACTION, stratify=y, random_state=SEED, shuffle=True
    )
    test_idx = np.sort(test_idx).astype(np.int64)

    out = here / "digits.npz"
    np.savez_compressed(out, x=x, y=y, test_idx=test_idx)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    print(f"x {x.shape} {x.dtype}, y {y.shape} {y.dtype}, test_idx {test_idx.shape} {test_idx.dtype}")
    print(f"test class counts: {np.bincount(y[test_idx], minlength=10).tolist()}")
    print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
