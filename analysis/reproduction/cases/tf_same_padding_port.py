"""TensorFlow "SAME" padding ported as symmetric padding.

For a stride-2 convolution on an even-sized input, TensorFlow's SAME padding pads one pixel at
the bottom/right only, while a PyTorch port with ``padding=k//2`` pads one pixel on every side.
Output shapes agree, so ported weights load and run, but every stride-2 layer samples a grid
shifted by one pixel and accuracy drops (the EfficientNet and other TF-to-PyTorch ports fixed
this with an explicit asymmetric pad). Layer localization names the first stride-2 conv.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases._localized import localize_into, with_localization
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.porting import load_ported


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's SAME rule: total pad from the input size, extra pixel
    at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0)


def make_net(conv: type[nn.Conv2d], symmetric: bool) -> nn.Sequential:
    pad = {"padding": 1} if symmetric else {}
    return nn.Sequential(OrderedDict([
        ("stem", conv(3, 8, 3, 1, **pad)), ("act1", nn.ReLU()),
        ("down", conv(8, 16, 3, 2, **pad)), ("act2", nn.ReLU()),
        ("down2", conv(16, 16, 3, 2, **pad)), ("act3", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, 10))]))


def make_fixed_net() -> nn.Sequential:
    """The port as fixed: an explicit bottom/right zero pad before each stride-2 conv."""
    def down(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(c_in, c_out, 3, 2))

    return nn.Sequential(OrderedDict([
        ("stem", nn.Conv2d(3, 8, 3, 1, 1)), ("act1", nn.ReLU()), ("down", down(8, 16)), ("act2", nn.ReLU()),
        ("down2", down(16, 16)), ("act3", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, 10))]))


# the fixed port wraps each stride-2 conv with its pad: weights and layers are renamed by rule
KEY_RULES = [(r"^(down2?)\.", r"\1.1.")]
LAYER_MAP = {"stem": "stem", "act1": "act1", "down": "down.1", "act2": "act2", "down2": "down2.1",
             "act3": "act3", "pool": "pool", "flat": "flat", "fc": "fc"}


@case(
    id="tf_same_padding_port",
    title="TF SAME padding ported as symmetric padding shifts every stride-2 convolution",
    issues=["https://github.com/rbgirshick/py-faster-rcnn/issues/62"],
    labels={"stage": "modeling", "manifestation": "evolutionary", "impact": "lower_accuracy",
            "root_cause": "network_structure"},
    reference="the network with TensorFlow's SAME padding rule, same weights",
    reference_kind="implementation",
    defect_class="padding semantics across frameworks",
)
class TfSamePadding(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        return {"reference": make_net(Conv2dSame, symmetric=False), "x": torch.randn(4, 3, 32, 32)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return inputs["reference"](inputs["x"])

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return copy.deepcopy(inputs["reference"]).double()(inputs["x"].double())

    def _port(self, ctx: CaseContext, inputs: dict, name: str, model: nn.Module, rules: list | None = None,
              mapping: dict[str, str] | None = None) -> torch.Tensor:
        load_ported(model, inputs["reference"].state_dict(), rules=rules or [])
        self.found = localize_into(ctx, name, inputs["reference"], model, inputs["x"], mapping=mapping)
        with torch.no_grad():
            return model(inputs["x"])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._port(ctx, inputs, "buggy", make_net(nn.Conv2d, symmetric=True))

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._port(ctx, inputs, "fixed", make_fixed_net(), KEY_RULES, LAYER_MAP)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return with_localization(tolerance_check(candidate, reference, self.reference64(ctx, inputs)),
                                 getattr(self, "found", None))
