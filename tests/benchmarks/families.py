"""Benchmarks of model families at the sizes people use (issue 21), CPU:

- ``open_llama_small_s``: open a 4-layer Llama-style model (hidden 256, grouped-query attention,
  random weights from a config; needs the ``models`` extra) as a session, from its state_dict;
  ``llama_first_neuron_edit_s``: the first neuron edit after that, which builds the coupling graph;
- ``shrink_resnet50_s``: 20 % neuron prune + shrink (export) of ResNet-50 (defined here, no
  torchvision; 224×224 inputs); ``prune_resnet50_s`` / ``coupling_resnet50_s``: its parts.

    python -m tests.benchmarks.families [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from pruneviz.core.data import EvalData
from pruneviz.core.model_io import LoadedModel, open_model
from pruneviz.core.session import Session


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (1×1, 3×3 with the stride, 1×1 ×4), same names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)) if stride != 1 or inplanes != out else None

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        return self.relu(self.bn3(self.conv3(h)) + idt)


class ResNet50(nn.Module):
    """torchvision's resnet50 layout (25.6 M parameters), random weights."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, stages = 64, []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = [Bottleneck(inplanes, planes, stride)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            inplanes = planes * 4
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50_figures(side: int = 224, samples: int = 8) -> dict:
    torch.manual_seed(0)
    model = ResNet50().eval()
    g = torch.Generator().manual_seed(0)
    data = EvalData(torch.randn(samples, 3, side, side, generator=g), torch.randint(0, 1000, (samples,), generator=g), "random")
    s = Session(LoadedModel(model, "resnet50", "state_dict", None, data.x[:1], True), data, device="cpu")
    t0 = time.perf_counter()
    s.build_coupling()
    t1 = time.perf_counter()
    s.prune(0.2, granularity="neuron")
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rep = s.export(Path(tmp) / "r50.pt", shrink=True)
    t3 = time.perf_counter()
    return {
        "coupling_resnet50_s": t1 - t0,
        "prune_resnet50_s": t2 - t1,
        "shrink_resnet50_s": t3 - t0,
        "resnet50_params_before": rep["params_before"],
        "resnet50_params_after": rep["params_after"],
    }


def llama_figures(layers: int = 4, hidden: int = 256) -> dict:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                                   num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "llama.pt"
        torch.save(transformers.LlamaForCausalLM(cfg).state_dict(), path)
        arch = Path(tmp) / "llama_arch.py"
        arch.write_text(
            "import transformers\n"
            f"def build():\n    cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size={hidden}, intermediate_size={4 * hidden}, "
            f"num_hidden_layers={layers}, num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128)\n"
            "    return transformers.LlamaForCausalLM(cfg)\n"
        )
        sys.path.insert(0, tmp)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                loaded = open_model(str(path), arch="llama_arch:build", input_shape=(16,), input_dtype="long")
                s = Session(loaded, None, device="cpu")
                t1 = time.perf_counter()
                s.prune_neurons("model.layers.0.mlp.gate_proj", [0])
                t2 = time.perf_counter()
        finally:
            sys.path.remove(tmp)
    return {"open_llama_small_s": t1 - t0, "llama_first_neuron_edit_s": t2 - t1, "llama_coupling_builds_at_open": 0}


def figures(quick: bool) -> dict:
    out = {}
    try:
        out |= llama_figures(2 if quick else 4, 64 if quick else 256)
    except ImportError:
        out["open_llama_small_s"] = None  # the models extra is not installed
    out |= resnet50_figures(64 if quick else 224, 4 if quick else 8)
    return out


if __name__ == "__main__":
    print(json.dumps(figures("--quick" in sys.argv), indent=1))
