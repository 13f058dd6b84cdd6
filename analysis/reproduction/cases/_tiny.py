"""Tiny detector-shaped models shared by several cases (seeded, CPU-fast)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Conv → BatchNorm → SiLU, the unit of YOLO-style backbones."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Split(nn.Module):
    """A CSP-like block; ``with_cv2`` is the older layout whose checkpoints name a ``cv2`` conv."""

    def __init__(self, c: int, with_cv2: bool) -> None:
        super().__init__()
        self.cv1 = ConvBlock(c, c)
        if with_cv2:
            self.cv2 = ConvBlock(c, c)
        else:
            self.cv3 = ConvBlock(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        second = self.cv2 if hasattr(self, "cv2") else self.cv3
        return x + second(self.cv1(x))


class Detect(nn.Module):
    """A detection head with anchors as a buffer (saved in checkpoints like the weights)."""

    def __init__(self, c: int, n_classes: int, anchors: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("anchors", anchors.clone().float())
        self.m = nn.Conv2d(c, anchors.shape[0] * (5 + n_classes), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class TinyYolo(nn.Module):
    """Keys look like ``model.<i>.<...>`` as in the YOLO repositories' checkpoints."""

    def __init__(self, n_classes: int, anchors: torch.Tensor, with_cv2: bool = False) -> None:
        super().__init__()
        self.model = nn.Sequential(ConvBlock(3, 8, 2), ConvBlock(8, 8, 2), Split(8, with_cv2),
                                   Detect(8, n_classes, anchors))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


COCO_ANCHORS = torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]])
