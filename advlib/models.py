"""Models by name. Every model takes inputs in [0,1]; any normalisation lives inside it.

MNIST (1x28x28):
  ``mnist_cnn``  the classic PyTorch MNIST example (conv32 3x3, conv64 3x3, max-pool, dropout .25, fc128, dropout .5, fc10)
  ``fast_cnn``   fast_adversarial's MNIST CNN (conv16 4x4/2, conv32 4x4/2, fc100, fc10)
  ``small_cnn``  TRADES' SmallCNN (conv32, conv32, pool, conv64, conv64, pool, fc200, fc200, fc10)
CIFAR-10 (3x32x32), with CIFAR stems (3x3 first convolution, no max-pool), as in the official repos:
  ``resnet18``, ``preact_resnet18``, ``mobilenet_v2``, ``wrn34_10``
  ``cifar_cnn``  a small CPU-sized network (four conv layers), for the cpu profile
  ``resnet8``    a narrow 8-layer pre-activation ResNet, also CPU-sized
  ``airbench_s``, ``airbench_m``, ``airbench_l``  airbench-style nets (Jordan 2024: a 2x2 stem, then
                 three groups conv-pool-BN-GELU-conv-BN-GELU) of widths 32/64/64 (0.15M parameters),
                 64/128/128 (0.6M) and 96/192/192 (1.3M): the cpu profile's CIFAR-10 models
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as _data


class Normalize(nn.Module):
    """(x - mean) / std inside the model, so attacks see [0,1] inputs."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


# --------------------------------------------------------------------------- MNIST


class MnistCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout1(torch.flatten(x, 1))
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def fast_cnn(num_classes=10, width=1):
    """fast_adversarial's MNIST model; ``width`` multiplies the channel and hidden sizes."""
    c1, c2, h = 16 * width, 32 * width, 100 * width
    return nn.Sequential(
        nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, h), nn.ReLU(), nn.Linear(h, num_classes),
    )


class SmallCNN(nn.Module):
    """TRADES' MNIST SmallCNN."""

    def __init__(self, num_classes=10, drop=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(drop),
            nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- CIFAR-10


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a CIFAR stem (as in the TRADES/RSLAD repos)."""

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64):
        super().__init__()
        self.inp = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layers = nn.Sequential(*[self._make(width * 2 ** i, n, 1 if i == 0 else 2)
                                      for i, n in enumerate(num_blocks)])
        self.linear = nn.Linear(width * 2 ** (len(num_blocks) - 1), num_classes)

    def _make(self, planes, n, stride):
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(BasicBlock(self.inp, planes, s))
            self.inp = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class PreActBlock(nn.Module):
    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or inp != planes:
            self.shortcut = nn.Conv2d(inp, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class PreActResNet(nn.Module):
    """PreActResNet (fast_adversarial's CIFAR model)."""

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64):
        super().__init__()
        self.inp = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        layers = []
        for i, n in enumerate(num_blocks):
            planes = width * 2 ** i
            for s in [1 if i == 0 else 2] + [1] * (n - 1):
                layers.append(PreActBlock(self.inp, planes, s))
                self.inp = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(self.inp)
        self.linear = nn.Linear(self.inp, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, expansion, stride):
        super().__init__()
        self.stride = stride
        planes = expansion * inp
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = None
        if stride == 1 and inp != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, bias=False), nn.BatchNorm2d(out))
        self.identity = stride == 1 and inp == out

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1(x)))
        o = F.relu(self.bn2(self.conv2(o)))
        o = self.bn3(self.conv3(o))
        if self.stride == 1:
            o = o + (x if self.identity else self.shortcut(x))
        return o


class MobileNetV2(nn.Module):
    """MobileNetV2 for CIFAR-10 (stride 1 in the stem and in the second stage), as in the RSLAD repo."""

    # (expansion, out_planes, num_blocks, stride)
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        layers, inp = [], 32
        for e, o, n, s in self.CFG:
            for st in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(inp, o, e, st))
                inp = o
        self.layers = nn.Sequential(*layers)
        self.conv2 = nn.Conv2d(320, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    def __init__(self, inp, out, stride, drop=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.drop = drop
        self.equal = inp == out
        self.shortcut = None if self.equal else nn.Conv2d(inp, out, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        sc = x if self.equal else self.shortcut(o)
        o = self.conv1(o)
        o = F.relu(self.bn2(o))
        if self.drop > 0:
            o = F.dropout(o, p=self.drop, training=self.training)
        return self.conv2(o) + sc


class WideResNet(nn.Module):
    """WideResNet-depth-widen (TRADES uses WRN-34-10)."""

    def __init__(self, depth=34, widen=10, num_classes=10, drop=0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n+4")
        n = (depth - 4) // 6
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        blocks, inp = [], ch[0]
        for i, stride in enumerate((1, 2, 2)):
            for j in range(n):
                blocks.append(WideBlock(inp, ch[i + 1], stride if j == 0 else 1, drop))
                inp = ch[i + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def cifar_cnn(num_classes=10):
    """A CPU-sized CIFAR-10 CNN (about 0.3M parameters) for the cpu profile."""
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(
        *block(3, 32), *block(32, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.MaxPool2d(2),
        *block(128, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )


class ConvGroup(nn.Module):
    """conv 3x3, max-pool 2, BN, GELU, conv 3x3, BN, GELU (one airbench group)."""

    def __init__(self, inp: int, out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(out)

    def forward(self, x):
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """An airbench-style CIFAR-10 net (after Keller Jordan's airbench, 2024): a 2x2 convolution
    stem to 24 channels (learnt here, not whitened), three :class:`ConvGroup` s of the given widths
    (31 -> 15 -> 7 -> 3 pixels), a global max-pool and a linear layer. Fast on a CPU because most of
    its work happens at 16x16 pixels and below."""

    def __init__(self, widths: Sequence[int] = (32, 64, 64), num_classes: int = 10, stem: int = 24):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 2, padding=0, bias=False), nn.BatchNorm2d(stem), nn.GELU())
        chans = [stem, *widths]
        self.groups = nn.Sequential(*[ConvGroup(a, b) for a, b in zip(chans, chans[1:])])
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.groups(self.stem(x))
        return self.fc(F.adaptive_max_pool2d(x, 1).flatten(1))


# --------------------------------------------------------------------------- registry

MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    "mnist_cnn": ("mnist", MnistCNN),
    "fast_cnn": ("mnist", fast_cnn),
    "fast_cnn_wide": ("mnist", lambda num_classes=10: fast_cnn(num_classes, width=2)),
    "small_cnn": ("mnist", SmallCNN),
    "resnet18": ("cifar10", lambda num_classes=10: ResNet((2, 2, 2, 2), num_classes)),
    "preact_resnet18": ("cifar10", lambda num_classes=10: PreActResNet((2, 2, 2, 2), num_classes)),
    "mobilenet_v2": ("cifar10", MobileNetV2),
    "wrn34_10": ("cifar10", lambda num_classes=10: WideResNet(34, 10, num_classes)),
    "cifar_cnn": ("cifar10", cifar_cnn),
    "resnet8": ("cifar10", lambda num_classes=10: PreActResNet((1, 1, 1), num_classes, width=16)),
    "airbench_s": ("cifar10", lambda num_classes=10: AirbenchNet((32, 64, 64), num_classes)),
    "airbench_m": ("cifar10", lambda num_classes=10: AirbenchNet((64, 128, 128), num_classes)),
    "airbench_l": ("cifar10", lambda num_classes=10: AirbenchNet((96, 192, 192), num_classes)),
}


class Classifier(nn.Module):
    """A registered network behind an optional input normalisation. ``name`` travels with checkpoints."""

    def __init__(self, name: str, net: nn.Module, normalize: Optional[nn.Module] = None):
        super().__init__()
        self.name = name
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(self.normalize(x))


def list_models(dataset: Optional[str] = None) -> list[str]:
    return [k for k, (ds, _) in MODELS.items() if dataset is None or ds == dataset]


def model_dataset(name: str) -> str:
    return MODELS[name][0]


def get_model(name: str, num_classes: int = 10, normalize: bool = False) -> Classifier:
    """Build a registered model. ``normalize=True`` puts the data set's mean/std inside the model
    (fast_adversarial style); the default follows TRADES/RSLAD, which feed [0,1] inputs directly."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {', '.join(MODELS)}")
    ds, ctor = MODELS[name]
    norm = Normalize(*_data.mean_std(ds)) if normalize else None
    return Classifier(name, ctor(num_classes=num_classes), norm)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
