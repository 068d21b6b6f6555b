"""The zoo checks on torchvision and timm models (random weights, no downloads).

Skipped unless torchvision (and, for the ViT, timm) import next to this torch: they must be built
for the same torch version (README "Real models").
"""

import copy

import pytest
import torch

from pruneviz.core import export
from pruneviz.core.errors import PrunevizError
from pruneviz.core.model_io import LoadedModel
from pruneviz.core.session import Session

torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (or not built for this torch)")

pytestmark = pytest.mark.slow

SIZE = 64  # small images keep the CPU time down; every family here accepts them


def vision(name):
    torch.manual_seed(0)
    if name == "vit_tiny":
        timm = pytest.importorskip("timm", reason="timm is not installed")
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, num_classes=10).eval()
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so masked shifts matter
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def images(n, seed):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11_bn", "densenet121", "vit_tiny"])
def test_real_vision_models_mask_shrink_and_undo_exactly(name):
    model = vision(name)
    orig = copy.deepcopy(model)
    s = Session(LoadedModel(model, name, "state_dict", None, images(1, 0), True), None, device="cpu")
    # weight pruning: the mask of every layer equals torch's l1_unstructured
    s.prune(0.3)
    import torch.nn.utils.prune as tprune

    for layer in s.layers:
        w = dict(orig.named_parameters())[layer.weight].detach()
        oracle = tprune.L1Unstructured(0.3).compute_mask(w, torch.ones_like(w)).bool()
        got = s.mask(layer.name)
        differ = got ^ oracle  # only weights tied at the threshold may be chosen differently
        assert int(got.sum()) == int(oracle.sum()), layer.name
        if bool(differ.any()):
            assert bool((w.abs()[differ] == w.abs()[~oracle].max()).all()), layer.name
    s.undo()
    # neuron pruning of what can be pruned; shrink equals masked on fresh inputs, or refuses cleanly
    s.prune(0.2, granularity="neuron", scope="global")
    pruned = {n.name: ~s.neuron_mask(n.name) for n in s.layers}
    keep = {n.name for n in s.layers if n.is_output}
    try:
        export.check_shrinkable(s, {n for n, m in pruned.items() if bool(m.any()) and n not in keep})
    except PrunevizError as exc:
        assert name == "vit_tiny" and "attention heads" in str(exc), str(exc)
    else:
        shrunk = export.shrink_model(s.model, images(2, 0), pruned, keep)
        assert sum(p.numel() for p in shrunk.parameters()) < sum(p.numel() for p in orig.parameters())
        with torch.no_grad():
            x = images(3, 5)
            torch.testing.assert_close(shrunk(x), s.model(x), rtol=0, atol=1e-4)
    s.undo()
    for (n, p), (_, q) in zip(s.model.named_parameters(), orig.named_parameters()):
        assert torch.equal(p, q), n
