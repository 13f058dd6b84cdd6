"""Small CNNs in plain torch, and the lab's model file format.

Every activation is its own ``nn.ReLU`` instance and every network ends in
``features(x) -> penultimate vector`` followed by one ``classifier`` Linear layer. The
decomposition hooks those ReLUs (a "unit" is one channel or neuron after a ReLU); the defect
inheritance attack drives ``features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from reeng.errors import ReengError

ARCHS = ("vgg", "resnet")
FORMAT = "reeng-reuse-model"
FORMAT_VERSION = 1


class Network(nn.Module):
    """A feature extractor and a linear classifier."""

    body: nn.Module
    classifier: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class VGG(Network):
    """VGG-style: ``blocks`` conv-BN-ReLU layers per stage, three stages (28 -> 14 -> 7 -> 3), an FC-ReLU layer."""

    def __init__(self, width: int = 16, blocks: int = 1, num_classes: int = 10, hidden: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for stage in range(3):
            cout = width * 2 ** stage
            for _ in range(blocks):
                layers += _conv_bn_relu(cin, cout)
                cin = cout
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Flatten(), nn.Linear(cin * 9, hidden), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(hidden, num_classes)


class BasicBlock(nn.Module):
    """The CIFAR ResNet block: two 3x3 conv-BN, a (1x1 conv-BN) shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(Network):
    """CIFAR-style ResNet: a stem, three stages of ``blocks`` basic blocks (widths w, 2w, 4w), global pooling."""

    def __init__(self, width: int = 16, blocks: int = 1, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = _conv_bn_relu(1, width)
        cin = width
        for stage in range(3):
            cout = width * 2 ** stage
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)


def build(arch: str, width: int = 16, blocks: int = 1, num_classes: int = 10) -> Network:
    if arch == "vgg":
        return VGG(width, blocks, num_classes)
    if arch == "resnet":
        return ResNet(width, blocks, num_classes)
    raise ReengError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")


def save_model(path: Path, model: Network, spec: dict[str, Any], record: dict[str, Any]) -> None:
    """Write ``model`` with its architecture ``spec`` (arch, width, blocks, num_classes) and training record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "spec": spec, "record": record,
                "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def load_model(path: Path) -> tuple[Network, dict[str, Any]]:
    """A model written by :func:`save_model` and its record; anything else is a :class:`ReengError`."""
    if not path.is_file():
        raise ReengError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise ReengError(f"{path}: not a reeng reuse model file (torch cannot read it: {type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ReengError(f"{path}: not a reeng reuse model file (write one with `reeng reuse train-source`)")
    if payload.get("version") != FORMAT_VERSION:
        raise ReengError(f"{path}: reuse model format version {payload.get('version')} is not supported")
    spec = payload["spec"]
    model = build(spec["arch"], spec["width"], spec["blocks"], spec["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError:
        raise ReengError(f"{path}: its weights do not match its architecture {spec}") from None
    return model.eval(), {"spec": spec, **payload.get("record", {})}
