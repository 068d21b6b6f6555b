"""The layer browser on a big model: grouped by module hierarchy, filterable, shortened names
with full names in tooltips, keyboard navigation emitting ``layerSelected``; flat names unchanged."""

from __future__ import annotations

from PySide6.QtCore import Qt

from pruneviz.qt.layer_tree import module_tree, name_matches
from tests.qt.big_models import resnet18_session
from tests.qt.conftest import open_demo


def _tree(qtbot, session):
    from pruneviz.qt.app import make_app
    from pruneviz.qt.layer_tree import LayerTree

    make_app()
    t = LayerTree()
    qtbot.addWidget(t)
    t.set_session(session)
    t.resize(520, 600)
    t.show()
    return t


def _visible_leaves(t):
    return [n for n, it in t.items.items() if not it.isHidden() and all(not p.isHidden() for p in _parents(it))]


def _parents(it):
    p = it.parent()
    while p is not None:
        yield p
        p = p.parent()


def test_module_tree_groups_and_collapses_single_child_chains():
    nodes = module_tree(["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer2.0.downsample.0", "layer2.0.conv1", "fc"])
    labels = [(label, full) for label, full, _ in nodes]
    assert labels == [("conv1", "conv1"), ("layer1", "layer1"), ("layer2.0", "layer2.0"), ("fc", "fc")]
    layer1 = nodes[1][2]
    assert [(lab, full) for lab, full, _ in layer1] == [("0", "layer1.0"), ("1.conv1", "layer1.1.conv1")]
    l20 = nodes[2][2]
    assert [(lab, full, kids) for lab, full, kids in l20] == [("downsample.0", "layer2.0.downsample.0", None), ("conv1", "layer2.0.conv1", None)]
    # a layer that is also a module prefix keeps both
    both = module_tree(["a", "a.b", "a.c"])
    assert [full for _, full, _ in both] == ["a", "a"] and both[0][2] is None and len(both[1][2]) == 2


def test_name_matches_substring_and_glob():
    assert name_matches("conv", "layer1.0.Conv1")
    assert not name_matches("fc", "layer1.0.conv1")
    assert name_matches("layer3*conv2", "layer3.1.conv2")
    assert not name_matches("layer3*conv2", "layer3.1.conv1")
    assert name_matches("  ", "anything")


def test_resnet18_shaped_model_is_a_tree(qtbot, tmp_path):
    s = resnet18_session()
    t = _tree(qtbot, s)
    assert set(t.items) == {layer.name for layer in s.layers}  # every layer has exactly one row
    assert t.tree.rootIsDecorated()
    top = [t.tree.topLevelItem(i).text(0) for i in range(t.tree.topLevelItemCount())]
    assert top[:5] == ["conv1", "layer1", "layer2", "layer3", "layer4"] and top[-1].startswith("fc")
    it = t.items["layer2.0.downsample.0"]
    assert it.text(0) == "downsample.0"  # shortened; the chain is one row
    assert it.parent() is t.groups["layer2.0"] and t.groups["layer2.0"].parent() is t.groups["layer2"]
    assert it.toolTip(0).startswith("layer2.0.downsample.0:")  # full name in the tooltip
    # a group sums its layers' params
    g = t.groups["layer1"]
    assert g.text(3) == f"{sum(layer.params for layer in s.layers if layer.name.startswith('layer1.')):,}"
    # the name column fits: no row needs more than a short label
    assert max(len(i.text(0)) for i in t.items.values()) < len("layer2.0.downsample.0")
    assert t.grab().save(str(tmp_path / "tree.png"))


def test_group_sparsity_is_params_weighted(qtbot):
    from pruneviz.qt.layer_tree import FRACTION

    s = resnet18_session()
    t = _tree(qtbot, s)
    s.prune(0.5, scope="layer", layers=["layer1.0.conv1"])
    t.refresh(["layer1.0.conv1"])
    names = [layer.name for layer in s.layers if layer.name.startswith("layer1.")]
    want = sum(s.sparsity(n) * s.layer(n).params for n in names) / sum(s.layer(n).params for n in names)
    assert 0 < want < 0.5
    assert abs(t.groups["layer1"].data(4, FRACTION) - want) < 1e-9
    assert t.groups["layer1"].text(4) == f"{want:.1%}"
    assert t.groups["layer2"].data(4, FRACTION) == 0.0


def test_filter_keeps_matches_and_their_groups(qtbot):
    s = resnet18_session()
    t = _tree(qtbot, s)
    t.filter.setText("downsample")
    assert sorted(_visible_leaves(t)) == ["layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]
    assert not t.groups["layer2"].isHidden() and t.groups["layer1"].isHidden()
    assert t.groups["layer2"].isExpanded() and t.groups["layer2.0"].isExpanded()
    t.filter.setText("layer3*conv2")
    assert sorted(_visible_leaves(t)) == ["layer3.0.conv2", "layer3.1.conv2"]
    t.filter.setText("no such layer")
    assert _visible_leaves(t) == []
    t.filter.clear()
    assert len(_visible_leaves(t)) == len(s.layers)


def test_keyboard_navigation_emits_layer_selected(qtbot):
    s = resnet18_session()
    t = _tree(qtbot, s)
    got: list[str] = []
    t.layerSelected.connect(got.append)
    t.select("conv1")
    assert got == ["conv1"]
    t.tree.setFocus()
    qtbot.keyClick(t.tree, Qt.Key.Key_Down)  # onto the layer1 group row: no layer selected
    assert t.current() is None and got == ["conv1"]
    qtbot.keyClick(t.tree, Qt.Key.Key_Down)  # layer1 > 0
    qtbot.keyClick(t.tree, Qt.Key.Key_Down)  # layer1 > 0 > conv1
    assert got[-1] == "layer1.0.conv1" and t.current() == "layer1.0.conv1"
    # collapse a group from the keyboard, then select a layer hidden in it: it is shown again
    t.select("layer4.1.conv2")
    assert got[-1] == "layer4.1.conv2"
    t.groups["layer4"].setExpanded(False)
    t.filter.setText("fc")
    t.select("layer4.1.conv2")
    assert t.filter.text() == "" and t.groups["layer4"].isExpanded() and t.current() == "layer4.1.conv2"


def test_flat_names_look_as_before(qtbot):
    s = open_demo("cnn")
    t = _tree(qtbot, s)
    assert not t.groups and not t.tree.rootIsDecorated()
    rows = [t.tree.topLevelItem(i) for i in range(t.tree.topLevelItemCount())]
    assert [r.data(0, Qt.ItemDataRole.UserRole) for r in rows] == [layer.name for layer in s.layers]
    assert [r.text(0) for r in rows] == [layer.name + (" (out)" if layer.is_output else "") for layer in s.layers]


def test_columns_fold_to_fit_a_narrow_list(qtbot):
    from pruneviz.qt.layer_tree import COLUMNS

    s = resnet18_session()
    t = _tree(qtbot, s)
    t.resize(340, 500)
    qtbot.waitUntil(lambda: t.tree.viewport().width() < 340 and t.tree.isColumnHidden(COLUMNS.index("Kind")))
    hidden = [c for c in COLUMNS if t.tree.isColumnHidden(COLUMNS.index(c))]
    assert hidden and "Kind" in hidden and "Layer" not in hidden and "Sparsity" not in hidden
    assert t.tree.horizontalScrollBar().maximum() == 0  # no column runs out of sight
    assert "params" in t.items["layer1.0.conv1"].toolTip(0)  # what is folded is in the tooltip
    t.resize(1000, 500)
    qtbot.waitUntil(lambda: not any(t.tree.isColumnHidden(c) for c in range(len(COLUMNS))))
    # a column hidden by someone else (presentation mode) stays hidden through a resize
    t.tree.setColumnHidden(COLUMNS.index("Params"), True)
    t.resize(340, 500)
    qtbot.waitUntil(lambda: t.tree.isColumnHidden(COLUMNS.index("Kind")))
    t.resize(1000, 500)
    qtbot.waitUntil(lambda: not t.tree.isColumnHidden(COLUMNS.index("Kind")))
    assert t.tree.isColumnHidden(COLUMNS.index("Params"))
