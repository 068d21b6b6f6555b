"""No module of pruneviz is over ~400 lines: past that a file wants splitting by concept (the
house style). The files still waiting for their split are listed in :data:`ALLOWLIST` with the
length they had when listed; each may only shrink, and leaves the list once it fits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pruneviz"

#: the most lines a module may have
LIMIT = 400

#: files still being split (path from the repository root -> lines when listed): one may not
#: grow past its count, and one that fits the limit must leave the list
ALLOWLIST: dict[str, int] = {
}


def lines(path: Path) -> int:
    """Lines in ``path`` as ``wc -l`` counts them for a file ending in a newline."""
    return len(path.read_text(encoding="utf-8").splitlines())


def size_problems(root: Path, package: Path, allowlist: dict[str, int], limit: int = LIMIT) -> list[str]:
    """One line per rule broken: a module over ``limit`` that is not listed, a listed one that
    grew past its count, a listed one that now fits (take it off the list), a listed one that
    is gone."""
    problems = []
    sizes = {path.relative_to(root).as_posix(): lines(path) for path in sorted(package.rglob("*.py"))}
    for name, n in sizes.items():
        if name in allowlist:
            if n > allowlist[name]:
                problems.append(f"{name} has {n} lines, more than the {allowlist[name]} it had when listed: split it, do not grow it")
            elif n <= limit:
                problems.append(f"{name} has {n} lines, within the limit of {limit}: take it off ALLOWLIST")
        elif n > limit:
            problems.append(f"{name} has {n} lines, over the limit of {limit}: split it by concept")
    problems += [f"{name} is listed in ALLOWLIST but does not exist: take it off" for name in sorted(set(allowlist) - set(sizes))]
    return problems


def test_the_check_catches_each_rule(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "small.py").write_text("x = 1\n" * 10)
    (package / "big.py").write_text("x = 1\n" * 11)
    (package / "sub" / "listed.py").write_text("x = 1\n" * 20)
    (package / "sub" / "shrunk.py").write_text("x = 1\n" * 5)
    allowlist = {"pkg/sub/listed.py": 19, "pkg/sub/shrunk.py": 30, "pkg/gone.py": 50}
    problems = size_problems(tmp_path, package, allowlist, limit=10)
    assert problems == [
        "pkg/big.py has 11 lines, over the limit of 10: split it by concept",
        "pkg/sub/listed.py has 20 lines, more than the 19 it had when listed: split it, do not grow it",
        "pkg/sub/shrunk.py has 5 lines, within the limit of 10: take it off ALLOWLIST",
        "pkg/gone.py is listed in ALLOWLIST but does not exist: take it off",
    ]
    # at its recorded count, a listed file passes; at the limit, an unlisted one does
    assert size_problems(tmp_path, package, {"pkg/sub/listed.py": 20}, limit=11) == []


def test_no_module_over_the_limit():
    assert len(list(PACKAGE.rglob("*.py"))) > 50  # the walk found the package
    problems = size_problems(REPO, PACKAGE, ALLOWLIST)
    assert not problems, "module sizes: " + "; ".join(problems)
