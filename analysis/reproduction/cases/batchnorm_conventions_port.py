"""BatchNorm epsilon and momentum conventions lost when porting TF/Keras weights to PyTorch.

Keras' BatchNormalization defaults to ε = 1e-3 and momentum 0.99 (weight of the old moving
average); PyTorch's BatchNorm2d defaults to ε = 1e-5 and its momentum is the weight of the new
batch (0.1). A port that loads the weights but keeps PyTorch's ε, or copies 0.99 into PyTorch's
momentum, computes different features from a channel with a small moving variance, and after
one fine-tuning step its running statistics are dominated by a single batch. The reproduced
models lose accuracy against the reference with "the same weights". The fix: ε = 1e-3 and
momentum = 1 − 0.99.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases._localized import localize_into, with_localization
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.porting import load_ported

TF_EPS, TF_MOMENTUM = 1e-3, 0.99


class KerasBatchNorm(nn.Module):
    """BatchNorm written from Keras' definition (moving = m·moving + (1 − m)·batch)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            n = x.numel() / x.shape[1]
            with torch.no_grad():
                self.running_mean.mul_(TF_MOMENTUM).add_((1 - TF_MOMENTUM) * mean)
                # Bessel-corrected like PyTorch, so that only the ε and momentum conventions differ
                self.running_var.mul_(TF_MOMENTUM).add_((1 - TF_MOMENTUM) * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, -1, 1, 1)
        return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + TF_EPS) * self.weight.view(shape) + \
            self.bias.view(shape)


def make_net(norm: type[nn.Module] | None = None, **bn: float) -> nn.Sequential:
    def norm_layer(c: int) -> nn.Module:
        return norm(c) if norm is not None else nn.BatchNorm2d(c, **bn)

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("bn1", norm_layer(8)), ("act1", nn.ReLU()),
        ("conv2", nn.Conv2d(8, 8, 3, padding=1)), ("bn2", norm_layer(8)), ("act2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, 5))]))


@case(
    id="batchnorm_conventions_port",
    title="Ported BatchNorm keeps PyTorch's ε and misreads Keras' momentum",
    issues=["https://github.com/eriklindernoren/PyTorch-YOLOv3/issues/75"],
    labels={"stage": "modeling", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "model_weight"},
    reference="the network with BatchNorm written from Keras' definition, same weights",
    reference_kind="implementation",
    defect_class="framework conventions in weight ports (BatchNorm ε, momentum)",
)
class BatchNormConventions(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        reference = make_net(KerasBatchNorm)
        with torch.no_grad():
            for m in reference.modules():
                if isinstance(m, KerasBatchNorm):
                    m.running_mean.normal_(0, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.running_var[:3] = torch.tensor([2e-4, 5e-4, 1e-3])  # nearly dead channels, as trained nets have
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
        return {"reference": reference, "batch": torch.randn(16, 3, 12, 12), "x": torch.randn(4, 3, 12, 12)}

    def _after_finetune_step(self, model: nn.Module, inputs: dict, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        model = model.to(dtype).train()
        with torch.no_grad():
            model(inputs["batch"].to(dtype))
            return model.eval()(inputs["x"].to(dtype))

    def _port(self, inputs: dict, **bn: float) -> nn.Module:
        model = make_net(**bn)
        load_ported(model, inputs["reference"].state_dict(), allow=[r"num_batches_tracked$"])
        return model

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._after_finetune_step(copy.deepcopy(inputs["reference"]), inputs)

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._after_finetune_step(copy.deepcopy(inputs["reference"]), inputs, torch.float64)

    def _run(self, ctx: CaseContext, inputs: dict, name: str, **bn: float) -> torch.Tensor:
        model, reference = self._port(inputs, **bn), copy.deepcopy(inputs["reference"])
        out = self._after_finetune_step(model, inputs)
        self._after_finetune_step(reference, inputs)
        self.found = localize_into(ctx, name, reference, model, inputs["x"])
        return out

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._run(ctx, inputs, "buggy", momentum=TF_MOMENTUM)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._run(ctx, inputs, "fixed", eps=TF_EPS, momentum=1 - TF_MOMENTUM)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return with_localization(tolerance_check(candidate, reference, self.reference64(ctx, inputs)),
                                 getattr(self, "found", None))
