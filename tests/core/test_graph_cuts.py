"""The cuts of a captured graph (pruneviz.core.graph_cuts): of two cuts with no parameter read
between them only the later one is kept, and every edit still finds a valid cut as late as
before (the latest cut at or before the earliest node reading its parameters)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from pruneviz.core import graph_cuts

from . import zoo


class ConvReluConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_the_cut_before_a_relu_is_dropped_for_the_one_after_it():
    graph = graph_cuts.capture(ConvReluConv())
    assert [graph.nodes[p - 1].name for p in sorted(graph.cuts)] == ["relu", "b"]


@pytest.mark.parametrize("name", ["residual", "dense", "vit_fused", "conv1d"])
def test_consecutive_cuts_have_a_parameter_read_between_them_and_no_edit_loses_its_cut(name, monkeypatch):
    family = next(f for f in zoo.ZOO if f.name == name)
    model = family.factory()
    graph = graph_cuts.capture(model)
    kept = sorted(graph.cuts)
    reads = set(graph.reads.values())
    assert all(any(p <= r < q for r in reads) for p, q in zip(kept, kept[1:]))
    monkeypatch.setattr(graph_cuts, "_drop_redundant_cuts", lambda graph: None)
    everything = sorted(graph_cuts.capture(model).cuts)
    assert set(kept) < set(everything)
    for module, _ in model.named_modules():
        if module:  # the latest valid cut for an edit of it is the same with or without the others
            pos = graph.position([module])
            assert max((p for p in kept if p <= pos), default=0) == max((p for p in everything if p <= pos), default=0)
