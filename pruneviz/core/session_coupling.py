"""The coupling part of a :class:`~pruneviz.core.session.Session`: whether neuron (structured)
pruning is offered, and the coupling graph (what pruning a neuron zeroes), built on the first
neuron or head edit, never at open (a session that prunes weights never pays for it).

States: ``"pending"`` (not built, not known to fail), ``"built"``, ``"none"`` (``error`` says why).
Building installs the graph into the session's :class:`~pruneviz.core.editable.EditableModel`.
"""

from __future__ import annotations

from .errors import PrunevizError
from .groups import build_coupling
from .inventory import with_outputs


class Coupling:
    """The coupling graph of one session and the state of building it."""

    def __init__(self, session):
        self.session = session
        self.graph: dict | None = None  #: per layer, a LayerCoupling, once built
        self.state = "pending"
        self.error: str | None = None  #: why neuron pruning is not available
        self.hint: str | None = None  #: what the user can give to make it available (a hint key)
        #: how many times the coupling was built (0 after open; tests check opening stays cheap)
        self.builds = 0
        loaded = session.loaded
        if not loaded.structured_ok:
            self.refuse(f"{loaded.source} models are opaque programs: only weight pruning is possible (open a state_dict with the function that builds its model for neuron pruning)")
        elif session.example_input() is None:
            self.refuse("neuron pruning needs an example input", hint="example_input")

    def refuse(self, why: str, hint: str | None = None) -> None:
        self.state, self.error, self.hint = "none", why, hint

    def example_found(self) -> None:
        """New data brought an example input: a coupling refused for want of one is pending again."""
        s = self.session
        if self.state == "none" and s.loaded.structured_ok and s.example_input() is not None:
            self.state, self.error, self.hint = "pending", None, None

    @property
    def available(self) -> bool:
        return self.state != "none"

    def get(self) -> dict | None:
        """The graph, built now when still pending."""
        if self.state == "pending":
            self.build()
        return self.graph

    def build(self, progress=None, time_limit: float | None = None) -> bool:
        """See :meth:`Session.build_coupling`."""
        from . import groups

        s = self.session
        with s.lock:
            if self.state != "pending":
                return self.graph is not None
            # installing it masks biases and coupled channels: a write, refused while a run holds
            # the session (the run would re-apply values the new masks no longer know)
            s.check_writable()
            example = s.example_input()
            # a batch of 2: with batch 1 the autograd trace of in-place ops loses layers
            example = example[:1].repeat(2, *([1] * (example.dim() - 1)))
            self.builds += 1
            editable = s.editable
            try:
                graph = build_coupling(editable.model, example.to(s.device), [layer.name for layer in editable.layers], groups.TIME_LIMIT_S if time_limit is None else time_limit, progress)
            except PrunevizError as exc:
                self.refuse(str(exc))
                return False
            outputs = {n for n, c in graph.items() if c.is_output}
            editable.install_coupling(graph, with_outputs(editable.layers, outputs))
            self.graph, self.state = graph, "built"
            return True
