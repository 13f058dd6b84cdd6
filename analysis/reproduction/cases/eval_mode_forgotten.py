"""Evaluation run without ``model.eval()``: dropout stays on and BatchNorm uses batch statistics.

A reimplementation's test script loads the trained weights and predicts while the model is
still in training mode. Dropout keeps dropping activations and BatchNorm normalises with the
statistics of the test batch instead of the running averages learned in training, so the
outputs depend on the batch they sit in and the reported accuracy falls short of the
original's. The fix switches the model to evaluation mode before inference.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import accuracy, tolerance_check


def make_net() -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(3, 16, 3, padding=1)), ("bn", nn.BatchNorm2d(16)), ("act", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("drop", nn.Dropout(0.5)),
        ("fc", nn.Linear(16, 10))]))


def predict(model: nn.Module, x: torch.Tensor, eval_mode: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    model = copy.deepcopy(model).to(dtype)
    model.train(not eval_mode)
    with torch.no_grad():
        return model(x.to(dtype))


@case(
    id="eval_mode_forgotten",
    title="Inference in training mode: dropout on, BatchNorm with test-batch statistics",
    issues=["https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/336"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "training_configuration"},
    reference="the trained model's evaluation-mode predictions",
    reference_kind="recorded",
    defect_class="evaluation mode (dropout, BatchNorm statistics)",
)
class EvalModeForgotten(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        model = make_net()
        with torch.no_grad():  # what training leaves behind: learned running statistics
            model.bn.running_mean.normal_(0, 0.3)
            model.bn.running_var.uniform_(0.5, 1.5)
        return {"model": model, "x": torch.randn(8, 3, 16, 16) * 2 + 0.5}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return predict(inputs["model"], inputs["x"], eval_mode=True)

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return predict(inputs["model"], inputs["x"], eval_mode=True, dtype=torch.float64)

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return predict(inputs["model"], inputs["x"], eval_mode=False)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return predict(inputs["model"], inputs["x"], eval_mode=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = tolerance_check(candidate, reference, self.reference64(ctx, inputs))
        # the predictions a user reads: agreement of the top-1 class with the reference's
        result.figures["top1_agreement"] = accuracy(candidate, reference.argmax(dim=-1))
        return result
