"""Fuzz the command line in-process: every argument vector ends in exit 0 or exit 2, nothing else.

Argument vectors mix valid subcommands, options and values (demo models, demo data, small real
files made once per module) with mutations: unknown options, missing values, numbers such as
'nan', '-0', '1e309', '0.5.5', huge integers, empty strings, unicode, globs that match nothing,
missing output folders, ``--out`` naming a folder, formats that do not fit, ``--shrink`` with
weight granularity, dropped / duplicated / swapped tokens. For each case:

* ``main(argv)`` returns (no exception escapes) 0 or 2, never 1 (internal error);
* on 2, stderr is exactly one line ``pruneviz: error: …``; no ``Traceback`` anywhere;
* on failure the working folder is byte-for-byte as before (no output, no half-written file,
  the pre-existing ``existing.pt`` intact); in every case no temporary file is left behind.

Hypothesis runs derandomized with fixed example counts. ``gui`` and ``--debug`` are never
generated (the first opens a window, the second re-raises by design), nor ``demo train`` of a real model (minutes, and it may write the
shipped weights).
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneviz.cli import main

pytestmark = pytest.mark.slow  # a fuzzer (minutes); the quick loop's refusal tests are test_cli.py, test_cli_edges.py and test_bad_models.py

EXAMPLES = {  # about a minute in all on a laptop CPU
    "prune": 900,
    "inspect-eval": 500,
    "score-loop": 500,
    "demo-misc": 150,
    "tokens": 350,
}

ARCH = "tests.core.models:mlp"  # Linear(12, 20) ... Linear(16, 5)


def fuzz_settings(kind: str):
    return settings(
        max_examples=EXAMPLES[kind],
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )


# ---------------------------------------------------------------------------------------------
# Files made once per module (absolute paths, outside the per-case working folder)

F: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_corpus")
    rng = np.random.default_rng(0)
    from tests.core import models

    def npz(name, **arrays):
        path = root / name
        np.savez(path, **arrays)
        F[name] = str(path)

    npz("d64.npz", x=rng.random((20, 64), dtype=np.float32), y=np.arange(20) % 10)
    npz("d12.npz", x=rng.random((20, 12), dtype=np.float32), y=np.arange(20) % 5)
    npz("labels99.npz", x=rng.random((20, 64), dtype=np.float32), y=np.full(20, 99))
    npz("negative.npz", x=rng.random((20, 64), dtype=np.float32), y=-np.ones(20, dtype=np.int64))
    npz("empty.npz", x=np.zeros((0, 64), np.float32), y=np.zeros(0, np.int64))
    npz("nan.npz", x=np.full((4, 64), np.nan, np.float32), y=np.zeros(4, np.int64))
    npz("floaty.npz", x=rng.random((4, 64), dtype=np.float32), y=np.zeros(4, np.float32))
    model = models.mlp()
    torch.save(model.state_dict(), root / "sd.pt")
    F["sd.pt"] = str(root / "sd.pt")
    import safetensors.torch

    safetensors.torch.save_file(model.state_dict(), root / "sd.safetensors")
    F["sd.safetensors"] = str(root / "sd.safetensors")
    torch.save(model, root / "whole.pt")
    F["whole.pt"] = str(root / "whole.pt")
    program = torch.export.export(model, (torch.zeros(2, 12),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(program, str(root / "m.pt2"))
    F["m.pt2"] = str(root / "m.pt2")
    for suffix in (".pt", ".npz", ".safetensors", ".pt2", ".bin"):
        path = root / f"junk{suffix}"
        path.write_bytes(rng.bytes(300))
        F[f"junk{suffix}"] = str(path)
    before = _digest(root)
    yield F
    assert _digest(root) == before, "a fuzz case changed a corpus file"


def _digest(root) -> dict[str, str]:
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), root) + "/"] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha1(fh.read()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------------
# Value pools: mostly valid, then each kind of bad

weird_text = st.one_of(
    st.sampled_from(["", " ", "-", "--", "nan", "-0", "1e309", "0.5.5", "ünï€ødé", "\u202e", "a\nb", "\x00", "\udcff", "*", "[", "~", "%s", "{}", "..", "/"]),
    st.text(max_size=8),
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy, percent_good: int = 88) -> st.SearchStrategy:
    """``good`` about ``percent_good``% of the time, else ``bad`` (one_of would pick 50/50)."""
    return st.integers(0, 99).flatmap(lambda n: good if n < percent_good else bad)


fraction_text = mostly(
    st.one_of(st.floats(0, 1).map(repr), st.sampled_from(["0", "1", "0.5", "0.3", "-0", "-0.0", " 0.5 ", "٠.٥", "0.25"])),
    st.one_of(
        st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-1e-309", "0.5.5", "", "1_0", "0x1p-1", "1.0000001", "-0.1", "2", "½", "0,5"]),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
    ),
)
int_text = mostly(
    st.one_of(st.integers(0, 8).map(str), st.sampled_from(["2147483647", "4294967295", "٣", " 7 ", "1_0"])),
    st.one_of(
        st.integers(-(2**80), 2**80).map(str),
        st.sampled_from(["", "nan", "1e3", "0x10", "9" * 5000, "-1", "-0", "2147483648", "4294967296", "18446744073709551616", "1.5"]),
    ),
    80,
)

GOOD_MODELS = ["demo:mlp"] * 5 + ["demo:cnn", "sd.pt", "sd.safetensors", "m.pt2", "whole.pt"]
BAD_MODELS = ["junk.pt", "junk.safetensors", "junk.pt2", "junk.bin", "d64.npz", "demo:nope", "demo:", "missing.pt", "sub", "existing.pt", "mlp", ""]


def model_spec():
    return mostly(st.sampled_from(GOOD_MODELS), st.one_of(st.sampled_from(BAD_MODELS), weird_text), 90).map(lambda m: F.get(m, m))


arch_spec = mostly(
    st.just(ARCH),
    st.sampled_from(["tests.core.models:raises", "tests.core.models:resnet", "tests.core.models:nope", "no_such_module_xyz:f", "not a spec", "", "math:pi", "json:dumps", "tests.core.models"]),
    80,
)


def data_spec(fits: str):
    good = ["demo:digits", F["d64.npz"]] if fits == "demo" else [F["d12.npz"]]
    bad = [F["d12.npz"] if fits == "demo" else F["d64.npz"], "demo:nope", "missing.npz", F["junk.npz"], F["junk.pt"], "", "tests.core.models:mlp", "tests.core.models:raises",
           F["labels99.npz"], F["negative.npz"], F["empty.npz"], F["nan.npz"], F["floaty.npz"], "sub", "existing.pt"]
    return mostly(st.sampled_from(good), st.one_of(st.sampled_from(bad), weird_text), 85)


GOOD_OUTS = {"state_dict": ["out.pt", "out.pth", "sub/out.pt", "existing.pt", "ü€.pt", "out"], "safetensors": ["out.safetensors"], "pt2": ["out.pt2", "sub/m.pt2"], "onnx": ["out.onnx"]}
BAD_OUTS = ["out.npz", "sub", "sub/", ".", "missing/out.pt", "", "a\x00b.pt", "x" * 300 + ".pt", "\udcff.pt", "out.safetensors", "out.pt2", "out.pt"]


def out_path(fmt: str = "state_dict"):
    return mostly(st.sampled_from(GOOD_OUTS[fmt] if fmt in GOOD_OUTS else ["out.pt"]), st.one_of(st.sampled_from(BAD_OUTS), weird_text), 85)


methods = mostly(st.sampled_from(["magnitude"] * 4 + ["random", "taylor", "obd", "wanda", "activation", "apoz"]), st.sampled_from(["", "MAGNITUDE", "mägnitude", "l1"]))
granularity = mostly(st.sampled_from(["weight", "neuron"]), st.sampled_from(["neurons", "", "channel"]))
layers_glob = mostly(st.sampled_from(["0", "2", "0,2", "*", "[0-2]", "0,0", "4"]), st.one_of(st.sampled_from(["zz*", "[", "", ",", "**", "[!0-9]", "features.*", "2,zz"]), weird_text), 80)
device = mostly(st.sampled_from(["cpu", "auto"]), st.sampled_from(["cuda", "mps", "tpu", ""]), 75)


def options(draw, pool: dict[str, st.SearchStrategy], required: dict[str, st.SearchStrategy] = {}) -> list[str]:
    """Required options (usually present) plus a random subset of optional ones, shuffled."""
    tokens: list[list[str]] = []
    for name, values in required.items():
        if draw(st.integers(0, 29)) != 17:  # 1 in 30: leave a required option out (not 0: hypothesis favours it)
            tokens.append([name, draw(values)])
    for name in draw(st.lists(st.sampled_from(sorted(pool)), max_size=4, unique=True)):
        values = pool[name]
        tokens.append([name] if values is None else [name, draw(values)])
    order = draw(st.permutations(range(len(tokens)))) if tokens else []
    return [t for i in order for t in tokens[i]]


def model_part(draw) -> tuple[list[str], str]:
    spec = draw(model_spec())
    argv = [spec]
    fits = "demo" if spec.startswith("demo:") else "small"
    # rare choices are a middle value: derandomized hypothesis draws 0 (and the maximum) often
    if spec in (F["sd.pt"], F["sd.safetensors"]):
        if draw(st.integers(0, 19)) != 7:
            argv += ["--arch", draw(arch_spec)]
    elif draw(st.integers(0, 19)) == 7:
        argv += ["--arch", draw(arch_spec)]
    if spec == F["whole.pt"] and draw(st.integers(0, 5)) != 3:
        argv.append("--trust")
    elif draw(st.integers(0, 19)) == 7:
        argv.append("--trust")
    if draw(st.integers(0, 3)) == 2:
        argv += ["--device", draw(device)]
    return argv, fits


def mutate(draw, argv: list[str]) -> list[str]:
    """Usually none, else 1-2 token-level mutations; the subcommand (argv[0]) is never touched."""
    argv = list(argv)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 0, 1, 1, 2]))):
        kind = draw(st.sampled_from(["drop", "dup", "swap", "unknown", "insert", "truncate", "replace"]))
        at = draw(st.integers(1, max(1, len(argv))))
        if kind == "drop" and len(argv) > 1:
            del argv[min(at, len(argv) - 1)]
        elif kind == "dup" and len(argv) > 1:
            i = min(at, len(argv) - 1)
            argv.insert(i, argv[i])
        elif kind == "swap" and len(argv) > 2:
            i, j = min(at, len(argv) - 1), draw(st.integers(1, len(argv) - 1))
            argv[i], argv[j] = argv[j], argv[i]
        elif kind == "unknown":
            argv.insert(at, draw(st.sampled_from(["--bogus", "--amount", "-x", "--out", "--", "--json", "--data", "--help", "--version", "--seed", "-h"])))
        elif kind == "insert":
            argv.insert(at, draw(weird_text))
        elif kind == "truncate" and len(argv) > 1:
            del argv[-1]
        elif kind == "replace" and len(argv) > 1:
            argv[min(at, len(argv) - 1)] = draw(weird_text)
    return argv


@st.composite
def prune_argv(draw):
    head, fits = model_part(draw)
    data = data_spec(fits)
    fmt = draw(mostly(st.sampled_from(["state_dict"] * 3 + ["safetensors", "pt2", "onnx"]), st.sampled_from(["bogus", "", "torchscript"]), 92))
    gran = draw(granularity)
    optional = {
        "--scope": mostly(st.sampled_from(["layer", "global"]), st.sampled_from(["all", ""])), "--method": methods, "--layers": layers_glob, "--data": data,
        "--report": mostly(st.sampled_from(["r.json", "sub/r.json", "report"]), st.sampled_from(["out.pt", "missing/r.json", "sub", "", "existing.pt", "."]), 80),
        "--seed": int_text,
    }
    if draw(st.integers(0, 4)) == 2:
        optional["--shrink"] = None
    argv = ["prune", *head, "--granularity", gran]
    if fmt != "state_dict" or draw(st.booleans()):
        argv += ["--format", fmt]
    if gran == "neuron" and draw(st.integers(0, 3)) != 2:
        argv += ["--data", draw(data)]
    argv += options(draw, optional, {"--amount": fraction_text, "--out": out_path(fmt)})
    return mutate(draw, argv)


@st.composite
def inspect_eval_argv(draw):
    head, fits = model_part(draw)
    if draw(st.booleans()):
        argv = ["inspect", *head] + options(draw, {"--json": None})
    else:
        argv = ["eval", *head] + options(draw, {"--batch-size": int_text, "--json": None}, {"--data": data_spec(fits)})
    return mutate(draw, argv)


@st.composite
def score_loop_argv(draw):
    head, fits = model_part(draw)
    data = data_spec(fits)
    if draw(st.booleans()):
        argv = ["score", *head] + options(
            draw, {"--granularity": granularity, "--data": data, "--seed": int_text}, {"--method": methods, "--out": mostly(st.sampled_from(["s.npz", "sub/s.npz"]), out_path())}
        )
        return mutate(draw, argv)
    argv = ["loop", *head] + options(
        draw,
        {"--method": methods, "--layers": layers_glob, "--min-accuracy": fraction_text, "--target-sparsity": fraction_text, "--out": out_path(), "--seed": int_text, "--max-steps": int_text},
        {"--data": data},
    )
    argv = mutate(draw, argv)
    # keep every case cheap: a full loop is ~200 steps; the last --max-steps wins
    if draw(st.integers(0, 4)) != 2:
        argv += ["--max-steps", str(draw(st.integers(0, 3)))]
    else:
        argv += ["--max-steps", "1000000000", "--target-sparsity", "0.02"]
    return argv


@st.composite
def demo_misc_argv(draw):
    choice = draw(st.integers(0, 6))
    if choice == 0:
        argv = ["demo", "list"]
    elif choice == 1:
        argv = ["demo", "export", draw(st.sampled_from(["mlp", "nope", "", "cnn "])), draw(st.sampled_from(["exp", "sub", "sub/exp", "existing.pt", "", "missing/deep/exp", "\x00"]))]
    elif choice == 2:  # never a real model name: training takes minutes and may write the shipped file
        argv = ["demo", "train", draw(st.sampled_from(["nope", "", "MLP", "mlp/", "../mlp"]))] + options(draw, {"--out": out_path(), "--seed": int_text})
    elif choice == 3:
        argv = ["demo"] + draw(st.lists(weird_text, max_size=2))
    elif choice == 4:
        argv = [draw(st.sampled_from(["--version", "--help", "-h", "frobnicate", "inspect", "prune", "score", "eval", "loop"])), draw(st.sampled_from(["--help", "-h", "--version", "demo:mlp", ""]))]
    elif choice == 5:
        argv = [draw(st.sampled_from(["frobnicate", "", "-x", "--bogus", "INSPECT", "ïnspect"]))]
    else:
        argv = ["inspect", "demo:mlp", "--json", "--", draw(weird_text)]
    return mutate(draw, argv)


TOKENS = [
    "demo:mlp", "demo:cnn", "demo:digits", "--amount", "0.5", "--out", "out.pt", "--data", "--arch", ARCH, "--method", "magnitude", "neuron", "--granularity",
    "--scope", "global", "--layers", "0", "--format", "pt2", "--shrink", "--report", "r.json", "--seed", "--batch-size", "--json", "--trust", "--device", "cpu",
    "--min-accuracy", "--target-sparsity", "-1", "nan", "", "sub", "missing/out.pt", "--bogus", "-", "--", "=", "--amount=0.3", "--out=", "--seed=-1", "--data=demo:digits",
    "--out=out.pt", "--amount", "0.5", "--data", "demo:digits",
]  # fmt: skip


@st.composite
def token_argv(draw):
    """Any order of option names and values after a subcommand: argparse's corners."""
    cmd = draw(st.sampled_from(["inspect", "eval", "score", "prune", "loop"]))
    rest = draw(st.lists(mostly(st.sampled_from(TOKENS), weird_text, 85), max_size=10))
    argv = [cmd, *rest]
    if cmd == "loop":
        argv += ["--max-steps", "2"]
    return argv


# ---------------------------------------------------------------------------------------------
# Oracle


def _reset(work) -> None:
    """Empty the working folder (it is the cwd: keep the folder itself) and lay out the fixtures."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in list(work.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (work / "sub").mkdir()
    (work / "existing.pt").write_bytes(b"old bytes that must survive a failed write\x00\xff")


def check(kind: str, argv: list[str], work, capsys) -> None:
    _reset(work)
    before = _digest(work)
    capsys.readouterr()
    try:
        code = main(list(argv))
    except BaseException as exc:  # noqa: BLE001 - the point of the test
        out, err = capsys.readouterr()
        raise AssertionError(f"main({argv!r}) raised {type(exc).__name__}: {exc}\nstderr: {err}") from exc
    out, err = capsys.readouterr()
    after = _digest(work)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), f"main({argv!r}) returned {code}: {err}"
    leftovers = [p for p in after if ".tmp" in p and os.path.basename(p.rstrip("/")).startswith(".")]
    assert not leftovers, (argv, leftovers)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pruneviz: error: ") and err.endswith("\n"), (argv, err)
        assert len(lines[0]) > len("pruneviz: error: ") + 5, (argv, err)
        assert after == before, f"main({argv!r}) failed but changed files: {set(after.items()) ^ set(before.items())}"


@pytest.fixture
def work(tmp_path, monkeypatch):
    folder = tmp_path / "w"
    _reset(folder)
    monkeypatch.chdir(folder)
    # cases chdir nowhere else; load_factory may append this folder to sys.path once
    yield folder


@fuzz_settings("prune")
@given(argv=prune_argv())
def test_fuzz_cli_prune(work, capsys, argv):
    check("prune", argv, work, capsys)


@fuzz_settings("inspect-eval")
@given(argv=inspect_eval_argv())
def test_fuzz_cli_inspect_eval(work, capsys, argv):
    check("inspect-eval", argv, work, capsys)


@fuzz_settings("score-loop")
@given(argv=score_loop_argv())
def test_fuzz_cli_score_loop(work, capsys, argv):
    check("score-loop", argv, work, capsys)


@fuzz_settings("demo-misc")
@given(argv=demo_misc_argv())
def test_fuzz_cli_demo_and_misc(work, capsys, argv):
    check("demo-misc", argv, work, capsys)


@fuzz_settings("tokens")
@given(argv=token_argv())
def test_fuzz_cli_token_soup(work, capsys, argv):
    check("tokens", argv, work, capsys)

