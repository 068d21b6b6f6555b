"""``torch.save`` files: weights-only loading, what a pickle would import, trusted pickles."""

from __future__ import annotations

import io
import os
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch
from .archives import MAX_MODEL_BYTES, check_torch_zip
from .common import LoadedModel, load_error, name_list, quiet_torch, trust_required, reason
from .state_dicts import build_from_arch, find_state_dict



# ---------------------------------------------------------------------------------------------
# Pickles: what would they import?


def _allowed_pickle_globals() -> set[str]:
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except Exception:
        return set()


_PICKLE_STRING_OPS = {
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
}  # fmt: skip


def _static_pickle_globals(stream: io.BufferedIOBase, max_pickles: int = 8) -> set[str]:
    """``module.name`` globals named in consecutive pickles, read with pickletools (no execution).

    Tracks strings through the memo so protocol-4+ ``STACK_GLOBAL`` is resolved too. A damaged
    pickle ends the scan but keeps what was found before the damage.
    """
    found: set[str] = set()
    with warnings.catch_warnings():  # pickletools warns on odd STRING escapes
        warnings.simplefilter("ignore")
        for _ in range(max_pickles):
            strings: list[str] = []
            memo: dict[int, str] = {}
            memo_size = 0
            top_is_string = False
            ops = 0
            try:
                for opcode, arg, _pos in pickletools.genops(stream):
                    ops += 1
                    name = opcode.name
                    pushed = False
                    if name in ("GLOBAL", "INST"):
                        module, _, qualname = str(arg).partition(" ")
                        found.add(f"{module}.{qualname}")
                    elif name == "STACK_GLOBAL":
                        if len(strings) >= 2:
                            found.add(f"{strings[-2]}.{strings[-1]}")
                    elif name in _PICKLE_STRING_OPS:
                        strings.append(str(arg))
                        pushed = True
                    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                        index = memo_size if name == "MEMOIZE" else int(arg)
                        memo_size = max(memo_size, index + 1)
                        if top_is_string:
                            memo[index] = strings[-1]
                        pushed = top_is_string  # the stack top is unchanged
                    elif name in ("GET", "BINGET", "LONG_BINGET") and int(arg) in memo:
                        strings.append(memo[int(arg)])
                        pushed = True
                    top_is_string = pushed
            except Exception:
                break
            if not ops:
                break
    return found


_MAX_PICKLE_BYTES = 256 * 1024**2


def _inner_data_pkl(data: bytes) -> bytes | None:
    """The ``data.pkl`` of a zip-format ``torch.save`` file, else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.filename.endswith("/data.pkl") or info.filename == "data.pkl":
                    if info.file_size > _MAX_PICKLE_BYTES:  # bounded before inflating
                        return None
                    return archive.read(info)
    except Exception:
        return None
    return None


def imports_in_bytes(data: bytes) -> list[str]:
    inner = _inner_data_pkl(data)
    found = _static_pickle_globals(io.BytesIO(inner if inner is not None else data))
    return sorted(found - _allowed_pickle_globals())


def pickle_imports(path: str | os.PathLike) -> list[str]:
    """The ``module.name`` globals a ``torch.save``'d pickle would import, found without running it.

    Uses ``torch.serialization.get_unsafe_globals_in_checkpoint`` (which disassembles the pickle);
    for files it cannot read (old non-zip format, plain pickles, newer pickle protocols) falls back
    to a static pickletools scan. Globals PyTorch's weights-only unpickler allows are left out.
    Returns a sorted list; [] when nothing can be found or the file is unreadable.
    """
    try:
        with quiet_torch():
            found = torch.serialization.get_unsafe_globals_in_checkpoint(os.fspath(path))
        return sorted(set(found))
    except Exception:
        pass
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            if head.startswith(b"PK"):
                return imports_in_bytes(handle.read())
            return sorted(_static_pickle_globals(handle) - _allowed_pickle_globals())
    except Exception:
        return []


def open_torch_file(spec: str, path: Path, arch: str | None, trust: bool, max_bytes: int = MAX_MODEL_BYTES) -> LoadedModel:
    check_torch_zip(spec, path, max_bytes, "a model")  # bounded before torch.load inflates anything
    try:
        with quiet_torch():
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        imports = pickle_imports(path)
        if not imports:
            raise load_error(f"{spec} is not a PyTorch file or is damaged ({reason(exc)})") from exc
        if not trust:
            raise trust_required(
                f"{spec} is a pickled model; opening it runs code from it "
                f"(it imports {name_list(imports)})",
                imports=imports,
            ) from exc
        return _open_trusted_pickle(spec, path, arch)
    if isinstance(obj, torch.nn.Module):  # only possible for classes someone allow-listed
        return LoadedModel(obj.cpu().eval(), spec, "pickle", None, None, True)
    sd = find_state_dict(obj)
    if sd is None:
        raise load_error(f"{spec} holds a {type(obj).__name__}, not a model or a state_dict of tensors")
    return build_from_arch(spec, sd, arch, "state_dict")


def _open_trusted_pickle(spec: str, path: Path, arch: str | None) -> LoadedModel:
    try:
        with quiet_torch():
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    except (Exception, SystemExit) as exc:
        raise load_error(f"loading the pickled model {spec} failed: {type(exc).__name__}: {reason(exc)}") from exc
    if isinstance(obj, torch.nn.Module):
        try:
            return LoadedModel(obj.cpu().eval(), spec, "pickle", None, None, True)
        except Exception as exc:
            raise load_error(f"cannot move the model in {spec} to the CPU: {reason(exc)}") from exc
    sd = find_state_dict(obj)
    if sd is None:
        raise load_error(f"{spec} holds a {type(obj).__name__}, not a torch.nn.Module or a state_dict")
    return build_from_arch(spec, sd, arch, "state_dict")
