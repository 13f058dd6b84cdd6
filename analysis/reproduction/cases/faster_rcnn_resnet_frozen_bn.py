"""A ResNet ported into Faster R-CNN normalises with the statistics of each one-image batch.

Caffe splits batch normalisation into a BatchNorm layer (mean/variance only) followed by a Scale
layer (learned scale and shift). Porting the ImageNet ResNet into a Faster R-CNN training net, the
BatchNorm layers were left computing batch statistics, but Faster R-CNN trains on one image per
batch: the activations are normalised with one image's statistics instead of the ImageNet ones
the pretrained weights expect. The fixed form follows the ResNet paper as a participant quoted
it in the thread: keep the BN statistics fixed during fine-tuning (global statistics), so the
layers act as constant affine maps. The thread's own advice, lr_mult 0 for BatchNorm and Scale,
stops the solver from changing their parameters but not, by itself, Caffe's BatchNorm from
normalising with batch statistics in training; the thread confirms no fix.

The reference folds each BatchNorm + Scale pair into the preceding convolution's weights and bias
(the "merged" form, with no normalisation layer at all).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.localize import localize_models

C = 16


class Scale(nn.Module):
    """Caffe's Scale layer with bias: per-channel y = gamma * x + beta."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class CaffeBottleneck(nn.Module):
    """conv → BatchNorm (no affine) → Scale → ReLU, twice, plus the identity shortcut."""

    def __init__(self, frozen_bn: bool) -> None:
        super().__init__()
        self.frozen_bn = frozen_bn
        self.conv1, self.conv2 = nn.Conv2d(C, C, 3, 1, 1, bias=False), nn.Conv2d(C, C, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(C, affine=False), nn.BatchNorm2d(C, affine=False)
        self.scale1, self.scale2 = Scale(C), Scale(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for bn in (self.bn1, self.bn2):
            bn.train(self.training and not self.frozen_bn)  # use_global_stats when frozen
        out = torch.relu(self.scale1(self.bn1(self.conv1(x))))
        return torch.relu(self.scale2(self.bn2(self.conv2(out))) + x)


def pretrained(seed: int) -> CaffeBottleneck:
    """ImageNet-like weights and BN statistics (seeded)."""
    g = torch.Generator().manual_seed(seed)
    net = CaffeBottleneck(frozen_bn=False)
    with torch.no_grad():
        for conv in (net.conv1, net.conv2):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.1)
        for bn, sc in ((net.bn1, net.scale1), (net.bn2, net.scale2)):
            bn.running_mean.copy_(torch.randn(C, generator=g) * 0.2)
            bn.running_var.copy_(torch.rand(C, generator=g) + 0.5)
            sc.gamma.copy_(torch.rand(C, generator=g) + 0.5)
            sc.beta.copy_(torch.randn(C, generator=g) * 0.1)
    return net


def merged(net: CaffeBottleneck) -> nn.Module:
    """BatchNorm + Scale folded into each convolution (weights and a bias), written separately."""

    def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d, sc: Scale) -> nn.Conv2d:
        k = sc.gamma / torch.sqrt(bn.running_var + bn.eps)
        out = nn.Conv2d(C, C, 3, 1, 1, bias=True).double()
        with torch.no_grad():
            out.weight.copy_(conv.weight.double() * k.double().view(-1, 1, 1, 1))
            out.bias.copy_((sc.beta - bn.running_mean * k).double())
        return out

    c1, c2 = fold(net.conv1, net.bn1, net.scale1), fold(net.conv2, net.bn2, net.scale2)
    return lambda x: torch.relu(c2(torch.relu(c1(x))) + x)


def finetune_net(pretrained_net: CaffeBottleneck, frozen_bn: bool) -> CaffeBottleneck:
    """The block as the detection net trains it (training mode, one-image batches)."""
    net = copy.deepcopy(pretrained_net)
    net.frozen_bn = frozen_bn
    return net.train()


@case(
    id="faster_rcnn_resnet_frozen_bn",
    title="ResNet in Faster R-CNN normalises with one-image batch statistics instead of frozen BN",
    issues=["https://github.com/rbgirshick/py-faster-rcnn/issues/62"],
    labels={"stage": "modeling", "manifestation": "evolutionary", "impact": "lower_accuracy",
            "root_cause": "network_structure"},
    reference="the block with BatchNorm and Scale merged into its convolutions (no normalisation layer)",
    reference_kind="implementation",
    defect_class="batch statistics vs frozen statistics after porting",
    mechanism="weight port",
    evidence={
        "reported": "The thread gathers attempts to put the ImageNet ResNet Caffe models into "
                    "py-faster-rcnn; participants asked how its BatchNorm and Scale layers should be "
                    "treated when fine-tuning for detection.",
        "diagnosis": "A participant advised that the BatchNorm and Scale layers must not change their "
                     "learned statistics during training; another quoted the ResNet paper: the BN "
                     "statistics are computed on ImageNet and then fixed during detection fine-tuning, "
                     "turning the layers into constant affine maps.",
        "fix": "No code fix is confirmed in the thread. Its advice early on is lr_mult 0 for the BatchNorm "
               "and Scale layers; the participant quoting the paper doubted that lr_mult is what matters, "
               "and a later participant reported fine-tuning a modified ResNet prototxt. The fixed form "
               "follows the paper as quoted there (BN fixed: global statistics), not the lr_mult advice.",
        "model": "A Caffe-style bottleneck (BatchNorm without affine, then Scale) runs the training "
                 "forward pass on one image: with batch statistics its output deviates from the "
                 "merged reference, with frozen global statistics it matches it.",
    },
)
class ResnetFrozenBn(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        return {"image": torch.randn(1, C, 12, 12, generator=torch.Generator().manual_seed(ctx.seed + 1)),
                "pretrained": pretrained(ctx.seed)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self.reference64(ctx, inputs).float()

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return merged(inputs["pretrained"])(inputs["image"].double())

    def _forward(self, ctx: CaseContext, inputs: dict, form: str) -> torch.Tensor:
        net = finetune_net(inputs["pretrained"], frozen_bn=form == "fixed")
        # diagnosis only (not the verdict): which layer first departs from the pretrained
        # network's inference behaviour, layer by layer
        self.localized = localize_models(copy.deepcopy(inputs["pretrained"]).eval(), net, inputs["image"])
        path = ctx.figure_path(f"localization_{form}.png")
        if path is not None:
            self.localized.plot(path)
        with torch.no_grad():
            return net(inputs["image"])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._forward(ctx, inputs, "buggy")

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._forward(ctx, inputs, "fixed")

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = tolerance_check(candidate, reference, self.reference64(ctx, inputs))
        result.figures["culprit"] = self.localized.culprit
        return result
