"""Small torch-only versions of the model families users bring (no downloads, a few ms each).

Each family is a factory returning the model in eval mode, seeded, with non-trivial BatchNorm
statistics where it has BatchNorm. ``ZOO`` lists them with their input and the layer the matrix
prunes; the hand-pruned references live next to the checks in ``test_zoo.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def _bn_stats(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def plain_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 4),
    ).eval()


def bn_cnn() -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 4),
    ))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = F.relu(self.bn0(self.stem(x)))
        z = F.relu(self.bn1(self.conv1(y)))
        y = F.relu(y + self.bn2(self.conv2(z)))
        return self.head(y.mean((2, 3)))


def residual() -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(Residual())


class MobileBlock(nn.Module):
    """Expand 1×1 -> depthwise 3×3 -> project 1×1, as in MobileNetV2."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(8, 16, 1)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn2 = nn.BatchNorm2d(16)
        self.project = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu6(self.bn1(self.expand(x)))
        y = F.relu6(self.bn2(self.dw(y)))
        return self.head(self.project(y).mean((2, 3)))


def depthwise() -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(MobileBlock())


class Grouped(nn.Module):
    """A grouped (not depthwise) conv, as in ResNeXt: 8 -> 8 channels in 2 groups."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gconv = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(8, 6, 1)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.gconv(x))
        return self.head(F.relu(self.conv3(x)).mean((2, 3)))


def grouped() -> nn.Module:
    torch.manual_seed(0)
    return Grouped().eval()


class Upsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(F.relu(self.up(F.relu(self.conv(x)))).mean((2, 3)))


def transposed() -> nn.Module:
    torch.manual_seed(0)
    return Upsampler().eval()


class Dense(nn.Module):
    """DenseNet-style: each conv sees the concatenation of everything before it."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv1 = nn.Conv2d(6, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(10, 4, 3, padding=1)
        self.head = nn.Linear(14, 4)

    def forward(self, x):
        a = F.relu(self.conv0(x))
        b = F.relu(self.conv1(a))
        ab = torch.cat([a, b], 1)
        c = F.relu(self.conv2(ab))
        return self.head(torch.cat([ab, c], 1).mean((2, 3)))


def dense() -> nn.Module:
    torch.manual_seed(0)
    return Dense().eval()


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (BERT) or a fused qkv (timm)."""

    def __init__(self, dim: int, heads: int, fused: bool):
        super().__init__()
        self.heads, self.fused = heads, fused
        self.fixed_width = False
        self.head_dim = dim // heads
        if fused:
            self.qkv = nn.Linear(dim, dim * 3)
        else:
            self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        if self.fused:
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q, k, v = (t(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (self.query, self.key, self.value))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        # -1: the width follows the heads (so heads can be removed); fixed_width reshapes to the
        # input width instead, as some attention code does, which no head removal survives
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c if self.fixed_width else -1)
        return self.proj(out)


class ViT(nn.Module):
    """Patch conv, LayerNorm, attention, MLP, pooled head: one transformer block."""

    def __init__(self, fused: bool, dim: int = 16, heads: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 32)
        self.fc2 = nn.Linear(32, dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x))
        x = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return self.head(x.mean(1))


def vit_separate() -> nn.Module:
    torch.manual_seed(0)
    return ViT(fused=False).eval()


def vit_fused() -> nn.Module:
    torch.manual_seed(0)
    return ViT(fused=True).eval()


class MHA(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.embed = nn.Linear(6, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fc = nn.Linear(dim, 12)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(F.relu(self.fc(h)).mean(1))


def mha() -> nn.Module:
    torch.manual_seed(0)
    return MHA().eval()


class TiedLM(nn.Module):
    """Token ids -> embedding -> MLP -> head tied to the embedding (GPT-2 style); logits per token."""

    def __init__(self, vocab: int = 40, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc1 = nn.Linear(dim, 24)
        self.fc2 = nn.Linear(24, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids):
        h = self.embed(ids)
        h = h + self.fc2(F.gelu(self.fc1(h)))
        return self.lm_head(h)


def tied_lm() -> nn.Module:
    torch.manual_seed(0)
    return TiedLM().eval()


class Branching(nn.Module):
    """A forward whose path depends on the data: a trace sees only one branch."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 8)
        self.b2 = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        if h.sum() > 0:
            h = F.relu(self.a(h))
        else:
            h = F.relu(self.b2(F.relu(self.b(h))))
        return self.head(h)


def branching() -> nn.Module:
    torch.manual_seed(0)
    return Branching().eval()


class Conv1D(nn.Module):
    """Hugging Face's Conv1D layout without transformers: ``y = x @ W + b``, ``W`` of shape [in, out]."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


class Conv1DMLP(nn.Module):
    """A GPT-2-style MLP block of Conv1D layers inside a residual."""

    def __init__(self):
        super().__init__()
        self.fc_in = nn.Linear(12, 16)
        self.c_fc = Conv1D(24, 16)
        self.c_proj = Conv1D(16, 24)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc_in(x)
        h = h + self.c_proj(F.gelu(self.c_fc(h)))
        return self.head(h)


def conv1d_mlp() -> nn.Module:
    torch.manual_seed(0)
    return Conv1DMLP().eval()


@dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor


class OutputObject(nn.Module):
    """Returns an output object with ``.logits`` (as Hugging Face models do)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        return Output(logits=self.fc2(h), hidden=h)


def output_object() -> nn.Module:
    torch.manual_seed(0)
    return OutputObject().eval()


@dataclass(frozen=True)
class Family:
    name: str
    factory: object
    input_shape: tuple[int, ...]
    #: the layer whose neurons the matrix prunes (and the neurons)
    layer: str
    neurons: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    vocab: int = 0


ZOO = [
    Family("plain_cnn", plain_cnn, (3, 8, 8), "0", (1, 5)),
    Family("bn_cnn", bn_cnn, (3, 8, 8), "3", (0, 6)),
    Family("residual", residual, (3, 8, 8), "conv1", (2, 3)),
    Family("residual_add", residual, (3, 8, 8), "stem", (1, 4)),
    Family("depthwise", depthwise, (3, 8, 8), "expand", (3, 9)),
    Family("grouped", grouped, (3, 8, 8), "gconv", (1, 6)),
    Family("grouped_feeder", grouped, (3, 8, 8), "conv1", (2, 5)),
    Family("transposed", transposed, (3, 4, 4), "conv", (1, 5)),
    Family("dense", dense, (3, 8, 8), "conv1", (1, 2)),
    Family("vit_separate", vit_separate, (3, 8, 8), "fc1", (3, 17)),
    Family("vit_fused", vit_fused, (3, 8, 8), "fc1", (3, 17)),
    Family("mha", mha, (5, 6), "fc", (0, 7)),
    Family("tied_lm", tied_lm, (6,), "fc1", (4, 11), torch.long, 40),
    Family("branching", branching, (12,), "fc1", (2, 9)),
    Family("output_object", output_object, (12,), "fc1", (0, 3)),
    Family("conv1d", conv1d_mlp, (5, 12), "c_fc", (2, 19)),
]


def inputs(family: Family, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if family.dtype == torch.long:
        return torch.randint(0, family.vocab, (n, *family.input_shape), generator=g)
    return torch.randn(n, *family.input_shape, generator=g)


# ------------------------------------------------ deeper families (incremental evaluation)
class BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 convs with BatchNorm and an identity (or 1×1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """ResNet-18's shape for 32×32 inputs (CIFAR stem; four stages of two basic blocks), as
    torchvision writes it: a forward of its own, not a Sequential. ``width``: the first stage's
    channels (64 in ResNet-18; smaller keeps tests and CPU benchmarks quick)."""

    def __init__(self, width: int = 64, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        cin, stages = width, []
        for k, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**k
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(width: int = 64, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(ResNet18(width, classes))


class Block(nn.Module):
    """A pre-norm transformer block: attention and an MLP, each inside a residual."""

    def __init__(self, dim: int, heads: int, fused: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DeepViT(nn.Module):
    """ViT's shape: patch embedding, a class token and positions, ``depth`` blocks, a head."""

    def __init__(self, depth: int = 6, dim: int = 64, heads: int = 4, patch: int = 4, size: int = 32, classes: int = 10, fused: bool = True):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, fused) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit6(dim: int = 64, size: int = 32, fused: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return DeepViT(6, dim, size=size, fused=fused).eval()
