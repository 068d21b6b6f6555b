"""Saved session files carry a checksum and counts: cut short or altered, they are refused.

Also: journals are read in sequence, deltas inflate only to the size their tensor has, JSON depth
is bounded (no RecursionError), and crash-left temporary files are cleaned at the next write.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pruneviz.core import bounded, persist
from pruneviz.core.errors import PrunevizError
from pruneviz.core.session import Session


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    s = Session.open("demo:mlp", device="cpu")
    s.prune(0.3)
    s.prune_neurons("0", [3, 7, 11])
    s.reinitialize(seed=1)  # a step with a weight delta
    s.prune_weights("4", [1, 2, 3])
    s.undo()  # a step to redo
    path = tmp_path_factory.mktemp("saved") / "s.pvz"
    persist.save_session(s, path)
    return s, path


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_untouched_file_opens_identical(saved):
    s, path = saved
    back = persist.load_session(path, device="cpu")
    assert persist.state_checksum(back) == persist.state_checksum(s)
    assert back.history.labels == s.history.labels and back.history.index == s.history.index
    head, records = persist.read_journal(path)
    assert head["kind"] == "session" and [r["n"] for r in records] == list(range(1, len(records) + 1))


def test_a_file_cut_short_anywhere_is_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends = [sum(len(x) + 1 for x in lines[: k + 1]) for k in range(len(lines) - 2)]  # after each full line but the last
    cuts = sorted({*ends, *(len(data) * k // 9 for k in range(1, 9)), len(data) - 1, len(data) - 2})
    for cut in cuts:
        p = _write(tmp_path, f"cut{cut}.pvz", data[:cut])
        with pytest.raises(PrunevizError, match="incomplete|damaged") as info:
            persist.load_session(p, device="cpu")
        assert "\n" not in str(info.value)


def _flip_inside(data: bytes, key: bytes) -> bytes:
    """``data`` with one bit flipped in the middle of the first base64 string after ``key``."""
    start = data.index(key)
    start = data.index(b'"', data.index(b":", start + len(key)) + 1) + 1
    end = data.index(b'"', start)
    assert end - start > 8
    i = (start + end) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.parametrize("key", [b'"bits"', b'"idx"'], ids=["weight delta", "mask diff"])
def test_a_flipped_bit_is_refused(saved, tmp_path, key):
    _, path = saved
    p = _write(tmp_path, "flip.pvz", _flip_inside(path.read_bytes(), key))
    with pytest.raises(PrunevizError, match="checksum"):
        persist.load_session(p, device="cpu")


def test_a_version_digit_altered_does_not_pass_as_an_old_unchecked_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes().replace(b'"version": 3', b'"version": 2', 1)
    with pytest.raises(PrunevizError, match="damaged"):
        persist.read_journal(_write(tmp_path, "v.pvz", data))


def test_old_format_files_open_with_a_warning(saved, tmp_path):
    s, path = saved
    head, records = persist.read_journal(path)
    head = {k: v for k, v in head.items() if k != "kind"} | {"version": 2}
    old = [json.dumps(head)] + [json.dumps({k: v for k, v in r.items() if k not in ("n", "at")}) for r in records]
    p = _write(tmp_path, "old.pvz", ("\n".join(old) + "\n").encode())
    notes = []
    back = persist.load_session(p, device="cpu", on_warning=notes.append)
    assert persist.state_checksum(back) == persist.state_checksum(s)
    assert len(notes) == 1 and "without a checksum" in notes[0]
    with pytest.warns(UserWarning, match="without a checksum"):
        persist.load_session(p, device="cpu")


def test_journal_records_out_of_sequence_are_refused_and_a_torn_last_line_dropped(tmp_path):
    s = Session.open("demo:mlp", device="cpu")
    auto = persist.Autosave(s, tmp_path)
    s.prune(0.2)
    s.prune_neurons("2", [1])
    auto.close(keep=True)
    lines = auto.path.read_bytes().split(b"\n")
    swapped = b"\n".join([lines[0], lines[2], lines[1], *lines[3:]])
    with pytest.raises(PrunevizError, match="sequence"):
        persist.read_journal(_write(tmp_path, "swapped.pvz", swapped))
    torn = auto.path.read_bytes() + b'{"n": 3, "op": "pu'
    _, records = persist.read_journal(_write(tmp_path, "torn.pvz", torn))
    assert [r["n"] for r in records] == [1, 2]


@pytest.mark.parametrize("line", ["[" * 100_000, '{"n": 1, "op": "push", "at": 1, "label": ' + "[" * 500 + "]" * 500 + ', "flips": []}'], ids=["deep", "nested label"])
def test_deeply_nested_json_is_a_one_line_error(tmp_path, line):
    head = json.dumps({"format": "pruneviz-session", "version": 2, "model": "demo:mlp"})  # older files are read too
    p = _write(tmp_path, "deep.pvz", (head + "\n" + line + "\n").encode())
    with pytest.raises(PrunevizError, match="nested deeper") as info:
        persist.read_journal(p)
    assert isinstance(info.value, PrunevizError) and "\n" not in str(info.value)


def test_inflate_stops_at_the_declared_size():
    import zlib

    data = zlib.compress(b"\0" * 1_000_000)
    assert bounded.inflate(data, 1_000_000) == b"\0" * 1_000_000
    with pytest.raises(ValueError, match="inflates past"):
        bounded.inflate(data, 999_999)
    with pytest.raises(ValueError, match="incomplete"):
        bounded.inflate(data[:-8], 1_000_000)


BOMB = textwrap.dedent(
    """
    import base64, json, resource, sys, zlib
    from pruneviz.core import persist
    from pruneviz.core.deltas import bits, targets
    from pruneviz.core.errors import PrunevizError
    from pruneviz.core.session import Session

    s = Session.open("demo:mlp", device="cpu")
    (kind, name), t = next((k, v) for k, v in targets(s).items() if k[0] == "orig")
    z, zero, out = zlib.compressobj(9), bytes(16 << 20), []
    for _ in range(64):  # 1 GiB of zeros, deflated to about a megabyte
        out.append(z.compress(zero))
    out.append(z.flush())
    part = {"kind": kind, "name": name, "dtype": str(bits(t).dtype).split(".")[-1], "shape": list(t.shape), "bits": base64.b64encode(b"".join(out)).decode()}
    head = {"format": "pruneviz-session", "version": 2, "model": "demo:mlp"}  # a format-2 journal: no checksum to forge
    rec = {"op": "push", "label": "bomb", "flips": [], "weights": [part]}
    with open(sys.argv[1], "w") as fh:
        fh.write(json.dumps(head) + "\\n" + json.dumps(rec) + "\\n")
    del out, zero, part, rec
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        _, records = persist.read_journal(sys.argv[1])
        persist.replay(s, records)
        error = None
    except PrunevizError as exc:
        error = str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grew_mb": (peak - base) / 1024, "error": error}))  # ru_maxrss: KiB on Linux
    """
)


@pytest.mark.slow
def test_a_delta_bomb_is_refused_before_its_memory_is_spent(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", BOMB, str(tmp_path / "bomb.pvz")], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["grew_mb"] < 300, result
    assert result["error"] and "inflates past" in result["error"]


def test_crash_left_temp_files_are_cleaned_at_the_next_write(saved, tmp_path):
    s, _ = saved
    target = tmp_path / "s.pvz"
    dead = tmp_path / ".s.4194999-abcdefgh.tmp.pvz"  # past the kernel's largest pid: no such process
    legacy_old = tmp_path / ".s.k3j4h5g6.tmp.pvz"  # written by an older pruneviz, hours ago
    legacy_new = tmp_path / ".s.q1w2e3r4.tmp.pvz"  # maybe a write in flight: too recent to touch
    live = tmp_path / f".s.{os.getpid()}-zxcvbnmq.tmp.pvz"  # ours, in flight
    other = tmp_path / ".t.4194999-abcdefgh.tmp.pvz"  # another target's
    for p in (dead, legacy_old, legacy_new, live, other):
        p.write_text("partial")
    os.utime(legacy_old, (1, 1))
    persist.save_session(s, target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([target.name, legacy_new.name, live.name, other.name])
