"""Small real models for tests (also used as --arch factories: tests.core.models:NAME)."""

import torch
import torch.nn as nn


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


class ResBlockNet(nn.Module):
    """Conv + BatchNorm + a residual addition + a Linear head: coupling through an add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 4 * 4, 6)

    def forward(self, x):
        y = torch.relu(self.bn0(self.stem(x)))
        z = torch.relu(self.bn1(self.conv1(y)))
        z = self.bn2(self.conv2(z))
        y = torch.relu(y + z)
        y = nn.functional.avg_pool2d(y, 2)
        return self.head(torch.flatten(y, 1))


def resnet() -> nn.Module:
    torch.manual_seed(0)
    m = ResBlockNet()
    # non-trivial running statistics so BatchNorm shift matters
    for bn in (m.bn0, m.bn1, m.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return m.eval()


def cnn_seq() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(12 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 4),
    )
    for mod in m:
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    return m.eval()


def raises() -> nn.Module:
    raise RuntimeError("factory failure on purpose")
