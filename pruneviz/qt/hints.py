"""How the app words the hints of core errors (:data:`pruneviz.core.errors.HINTS`): by menu and
dialog, where the command line names a flag (:data:`pruneviz.cli_common.CLI_HINTS`)."""

from __future__ import annotations

from pruneviz.core.errors import PrunevizError

__all__ = ["APP_HINTS", "error_text", "no_neurons_text"]

APP_HINTS = {
    "data": "open evaluation data with File > Open data…",
    "calib_data": "open data with File > Open data… (the analyses calibrate on the training data where known, else on that data)",
    "train_data": "name the training data in the Fine-tune… or Train… dialog (Prune menu)",
    "example_input": "open evaluation data with File > Open data…",
    "arch": "open the weights again and name the function that builds the model when asked",
    "trust": "open it again and answer Yes when asked whether you trust its source",
    "no_shrink": "export again and answer No to removing pruned neurons physically",
    "allow_divergence": "try a lower learning rate, or tick 'keep going if the loss runs away' in the dialog",
    "device": "evaluate on the CPU (start the app without a device choice)",
    "batch_size": "open less evaluation data with File > Open data…",
    "format": "export again as a state_dict (.pt) with File > Export…",
    "separate_calib": "open the model with its training data known (demo models know theirs), or calibrate from the command line or Python",
    "evaluator": "start the app again to evaluate on local (a Ray instance on this machine) or ray://HOST:PORT (a cluster)",
    "layers": "choose layers from the layer list",
}


def error_text(exc: BaseException) -> str:
    """What a dialog says for ``exc``: a core error with its hint in the app's words."""
    return exc.worded(APP_HINTS) if isinstance(exc, PrunevizError) else str(exc)


def no_neurons_text(session) -> str | None:
    """Why neuron pruning is not available in ``session``, with what to do in the app's words
    (None when it is or may be)."""
    why = session.coupling_error
    hint = session.coupler.hint
    return f"{why}: {APP_HINTS[hint]}" if why and hint in APP_HINTS else why
