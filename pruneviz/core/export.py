"""Writing pruned models: state_dict, safetensors, pt2, onnx, and a JSON report.

Every file is written atomically: to a temporary file in the same folder, flushed, then renamed
over the target, so a failed write leaves the old file intact.

``shrink`` removes pruned neurons physically with Torch-Pruning (the same dependency groups that
drove the masks), so the written model has fewer parameters and gives the masked model's outputs.
Output layers keep their (zeroed) rows: removing them would change the number of classes.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from .errors import PrunevizError
from .files import atomic_path, check_target, new_file_mode  # noqa: F401 - the one atomic writer; re-exported for callers
from .jsonout import finite, write_json  # noqa: F401 - the one NaN-to-null JSON writer
from .outputs import logits

FORMATS = ("state_dict", "safetensors", "pt2", "onnx")


def shrink_model(model: nn.Module, example_input: torch.Tensor, pruned: dict[str, torch.Tensor], keep: set[str] = frozenset(), kept_zero: dict[str, int] | None = None) -> nn.Module:
    """A copy of ``model`` with the listed output channels removed (``pruned``: layer -> bool [out],
    True = pruned). Coupled channels go with them; layers in ``keep`` are left whole. Pruned
    channels that stay as zeros (see :mod:`pruneviz.core.shrink`) are counted into ``kept_zero``."""
    from .shrink import shrink_model as shrink

    out, zeros = shrink(model, example_input, pruned, keep)
    if kept_zero is not None:
        kept_zero.update(zeros)
    return out


@contextmanager
def _quiet():
    """torch.export prints the partial graph of a model it cannot capture to stderr: keep it for
    the error we raise, not for the user's terminal."""
    import contextlib
    import io

    from .model_io import quiet_torch

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), quiet_torch():
        yield


#: loggers the ONNX exporter writes through: torch._logging gives them a handler on the stderr
#: of the moment they were made, so redirecting ``sys.stderr`` does not reach them
_ONNX_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


@contextmanager
def _quiet_onnx():
    """The ONNX exporter's warnings and log lines ("torchvision is not installed. Skipping
    torchvision::nms", deprecations) are about torch's internals, not the user's model: hidden,
    as the README says; its errors still become ours."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in _ONNX_LOGGERS]
    saved = [(lg.propagate, lg.handlers, lg.level) for lg in loggers]
    for lg in loggers:
        lg.propagate = False
        lg.handlers = [logging.NullHandler()]
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, (propagate, handlers, level) in zip(loggers, saved):
            lg.propagate, lg.handlers = propagate, handlers
            lg.setLevel(level)


def _check_same_outputs(masked: nn.Module, shrunk: nn.Module, session) -> None:
    """The shrunk model must compute what the masked one does; refuse to write it otherwise."""
    # 8 samples: enough to see a wrong shrink (any removed channel that mattered changes every
    # output), and a ResNet-50 at 224×224 does not spend a minute on the check
    probe = session.data.x[:8] if session.data is not None else _example_batch(session)
    with torch.inference_mode():
        a, b = logits(masked(probe.cpu())), logits(shrunk(probe.cpu()))
    if a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=0):
        diff = (a - b).abs().max().item() if a.shape == b.shape else float("inf")
        raise PrunevizError(f"the shrunk model's outputs differ from the masked model's (max {diff:.3g})", hint="no_shrink")


def _example_batch(session) -> torch.Tensor:
    example = session.example_input()
    if example is None:
        raise PrunevizError("this export needs an example input", hint="example_input")
    return example[:1].repeat(2, *([1] * (example.dim() - 1))).cpu()


def logits_only(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model`` itself when it returns a tensor; else a shallow copy (same parameters, same names)
    whose forward returns only the logits, which torch.export and ONNX can capture."""
    with torch.inference_mode():
        out = model(example)
    if isinstance(out, torch.Tensor):
        return model
    wrapped = copy.copy(model)
    forward = type(model).forward

    def logits_forward(x):  # one named argument: torch.export matches dynamic_shapes to it
        return logits(forward(wrapped, x))

    wrapped.forward = logits_forward
    return wrapped


def write_model(model: nn.Module, path, format: str, example: torch.Tensor | None) -> None:
    """Write ``model`` (on CPU) to ``path`` in ``format``. Programs (pt2, onnx) of a model that
    returns an output object or a tuple return its logits only."""
    if format not in FORMATS:
        raise PrunevizError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if format in ("pt2", "onnx") and example is not None:
        model = logits_only(model, example)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        if format == "state_dict":
            torch.save(state, tmp)
        elif format == "safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        elif format == "pt2":
            if example is None:
                raise PrunevizError("pt2 export needs an example input", hint="example_input")
            fixed = getattr(model, "fixed_batch", None)
            if fixed is not None:  # a program that runs only at its own batch size stays one
                model = copy.copy(model)
                model.__dict__.pop("forward", None)
                example = example[:1].repeat(fixed, *([1] * (example.dim() - 1)))
            dynamic = ({0: torch.export.Dim("batch")},) if fixed is None else None
            try:
                with _quiet():
                    program = torch.export.export(model, (example,), dynamic_shapes=dynamic)
            except Exception as exc:
                raise PrunevizError(f"torch.export could not capture the model ({str(exc).splitlines()[0]})", hint="format") from exc
            torch.export.save(program, tmp)
        else:  # onnx
            import importlib.util

            if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
                raise PrunevizError("ONNX export needs the onnx extra: pip install 'pruneviz[onnx]'")
            if example is None:
                raise PrunevizError("onnx export needs an example input", hint="example_input")
            batch = torch.export.Dim("batch")
            try:
                with _quiet_onnx():
                    torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["logits"], dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
            except Exception as exc:
                raise PrunevizError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc


def report(session, shrunk_params: int | None = None, accuracy_after=None) -> dict:
    """The JSON report of a session: what was pruned, how much, and what it cost."""
    spec = session.last_prune
    out = {
        "model": session.spec,
        "arch": session.arch,
        "data": session.data.spec if session.data is not None else None,
        "method": spec.method if spec else None,
        "scope": spec.scope if spec else None,
        "granularity": spec.granularity if spec else None,
        "amount": spec.amount if spec else None,
        "steps": session.history.labels[: session.history.index],
        "layers": [layer.to_json(session.sparsity(layer.name)) for layer in session.layers],
        "sparsity": session.sparsity(),
        "params_before": session.original_params,
        "params_after": session.params_remaining() if shrunk_params is None else shrunk_params,
        "shrunk": shrunk_params is not None,
        "calibration": session.calibration_info(),  # what scores and analyses were computed on
    }
    if spec is not None and spec.detail:
        out["allocation"] = spec.detail
    from . import units

    # which layers follow an N:M pattern (the registered ones and the last prune's); the 2:4 ones
    # are timed against dense on a CUDA device, "not measured" elsewhere
    out["conforms"] = units.conformance(session, spec.granularity if spec else None)
    if out["conforms"].get("2:4"):
        from .nm_speed import measure

        out["semi_structured"] = measure(session)
    if session.data is not None:
        before = session.baseline()
        after = accuracy_after or session.evaluate()
        out["accuracy_before"] = before.accuracy
        out["accuracy_after"] = after.accuracy
        out["loss_before"] = before.loss
        out["loss_after"] = after.loss
    return out


def check_shrinkable(session, layers: set[str]) -> None:
    """Refuse, before any work, a shrink that would write a model that is not the masked one."""
    from .groups import shared_params, untraced_layers

    untraced = untraced_layers(session.coupling)
    if untraced and layers:
        shown = ", ".join(untraced[:4]) + (f" and {len(untraced) - 4} more" if len(untraced) > 4 else "")
        raise PrunevizError(
            f"cannot shrink: the traced forward pass does not reach {shown} (data-dependent control flow, "
            "or unused layers), so a shrunk model might not run on other inputs", hint="no_shrink"
        )
    for name in sorted(layers):
        reason = session.coupling[name].no_shrink
        if reason:
            raise PrunevizError(f"cannot shrink {name}: {reason}")
    shared = shared_params(session.model)
    for name in sorted(layers):
        for e in session.coupling[name].effects:
            if e.param in shared:
                raise PrunevizError(
                    f"cannot shrink {name}: its channels reach {e.param}, which is tied to "
                    f"{' and '.join(shared[e.param])} (shared weights)", hint="no_shrink"
                )


def build_shrunk(session, masked: nn.Module | None = None, example: torch.Tensor | None = None) -> tuple[nn.Module, dict[str, int]]:
    """The session's model with pruned neurons and heads physically removed (on the CPU), and the
    channels a grouped conv had to keep as zeros. Refuses (PrunevizError) what cannot be shrunk
    exactly. ``masked``: a CPU copy of the live model to shrink (made here when None)."""
    from . import attention_heads as ah

    if masked is None:
        with session.lock:
            masked = copy.deepcopy(session.model).cpu().eval()
    if example is None:
        example = _example_batch(session)
    heads = ah.pruned_heads(session)
    ah.check_head_shrink(session, heads)
    if session.coupling is None and not heads:
        raise PrunevizError(f"removing pruned neurons physically needs neuron pruning, which this model does not support: {session.coupling_error}", hint="no_shrink")
    model = masked
    kept_zero: dict[str, int] = {}
    if session.coupling is not None:
        pruned = {layer.name: ~session.neuron_mask(layer.name) for layer in session.layers}
        keep = {layer.name for layer in session.layers if layer.is_output}
        check_shrinkable(session, {n for n, m in pruned.items() if bool(m.any()) and n not in keep})
        model = shrink_model(masked, example, pruned, keep, kept_zero)
    if heads:  # whole attention heads go after the neurons (their indices do not move)
        model = ah.shrink_heads(model if model is not masked else copy.deepcopy(masked), ah.find_heads(session), heads, example)
    return model, kept_zero


def export_session(session, path, format: str = "state_dict", shrink: bool = False, report_path=None) -> dict:
    """Write the session's model to ``path``; see :meth:`pruneviz.core.session.Session.export`."""
    if format not in FORMATS:
        raise PrunevizError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    check_target(path)
    if report_path:
        check_target(report_path)
        if Path(report_path).resolve() == Path(path).resolve():
            raise PrunevizError("the report and the model would be the same file: give the report its own name, e.g. report.json")
    needs_example = format in ("pt2", "onnx") or shrink
    example = _example_batch(session) if needs_example else None
    with session.lock:
        model = copy.deepcopy(session.model).cpu().eval()
    shrunk_params = None
    after = None
    kept_zero: dict[str, int] = {}
    if shrink:
        masked = model
        model, kept_zero = build_shrunk(session, masked, example)
        shrunk_params = sum(p.numel() for p in model.parameters())
        _check_same_outputs(masked, model, session)
        if session.data is not None:  # the report's accuracy is the written model's own
            from . import evaluate as ev

            x, y = session.eval_tensors()
            after = ev.run(ev.evaluate_iter(model.to(x.device), x, y, session.batch_size, None, session.data.num_classes, extra=session.eval_extra()))
            model = model.cpu()
    rep = report(session, shrunk_params, after)
    from .cost import compare_latency, session_macs

    rep["params_file"] = sum(p.numel() for p in model.parameters())
    rep["params_nonzero"] = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    rep.update(session_macs(session, model if shrink else None))
    if shrink:
        rep["latency"] = compare_latency(session, model)
    if shrink and kept_zero:
        rep["kept_as_zeros"] = kept_zero  # pruned channels a grouped conv could not lose evenly
    rep["format"] = format
    rep["path"] = str(path)
    write_model(model, path, format, example)
    if report_path:
        write_json(report_path, rep)
    return rep
