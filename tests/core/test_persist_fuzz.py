"""Mutated session files and journals: each opens or is refused with one line, nothing else.

Seeded (the same inputs every run): bytes flipped, inserted, deleted, lines swapped or dropped,
files cut short, in a saved session file (format 3, with its checksum) and in an autosave journal
(numbered records, no checksum). A saved file that was changed at all must be refused; a journal
may open when the change was harmless (a letter of a label), and then it must replay whole.
"""

import random

import pytest

from pruneviz.core import persist
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session

N = 300  # inputs per kind of file (README: Safety)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    i = rng.randrange(len(data))
    if kind == 0:
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if kind == 1:
        return data[:i] + bytes([rng.randrange(256)]) + data[i:]
    if kind == 2:
        return data[:i] + data[i + rng.randint(1, 16) :]
    if kind == 3:
        return data[:i]
    lines = data.split(b"\n")
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    if kind == 4:
        lines[a], lines[b] = lines[b], lines[a]
    else:
        del lines[a]
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, folder / "auto")
    s.prune(0.2)
    s.prune_neurons("0", [2, 5])
    s.reinitialize(seed=3)
    s.undo()
    s.prune_weights("4", [1, 2])  # a second plan
    auto.close(keep=True)
    persist.save_session(s, folder / "s.pvz")
    return folder, (folder / "s.pvz").read_bytes(), auto.path.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["session", "journal"])
def test_mutated_files_open_or_are_refused_in_one_line(files, which):
    folder, session_bytes, journal_bytes = files
    original = session_bytes if which == "session" else journal_bytes
    rng = random.Random(f"pvz-{which}")
    refused = opened = 0
    for k in range(N):
        data = _mutate(original, rng)
        path = folder / f"m-{which}-{k}.pvz"
        path.write_bytes(data)
        try:
            persist.load_session(path, device="cpu", on_warning=lambda note: None)
        except PrunevizError as exc:
            assert "\n" not in str(exc)
            refused += 1
        else:
            assert which == "journal" or data == original, f"a changed session file opened (input {k})"
            opened += 1
        path.unlink()
    assert refused + opened == N and refused > N // 2
