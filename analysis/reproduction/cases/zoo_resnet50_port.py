"""Porting torchvision ResNet-50 weights into timm's ResNet-50 from a DataParallel checkpoint.

A checkpoint saved from a ``DataParallel``-wrapped model prefixes every key with ``module.``;
loading it strictly into a plain model raises (missing and unexpected keys), and loading it with
``strict=False`` "works" while leaving every layer at its random initialisation. The fix maps
keys by rule (strip ``module.``), checks shapes, and loads with a complete report; the ported
timm model then matches the torchvision reference output. Needs torchvision and timm (present
on the GPU machines, not installable on the CPU ones).
"""

from __future__ import annotations

import copy

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.porting import load_ported


@case(
    id="zoo_resnet50_port",
    title="DataParallel 'module.' keys: strict load crashes, rule-mapped port matches torchvision",
    issues=["https://github.com/qubvel/segmentation_models/issues/153"],
    labels={"stage": "modeling", "manifestation": "basic", "impact": "crash", "root_cause": "model_weight"},
    reference="torchvision resnet50 with seeded random weights",
    reference_kind="implementation",
    requires=("torchvision", "timm"),
    defect_class="weight port between model zoos",
)
class ZooResnet50Port(ReproCase):
    expect_raises = (RuntimeError,)

    def inputs(self, ctx: CaseContext) -> dict:
        import torchvision

        torch.manual_seed(ctx.seed)
        reference = torchvision.models.resnet50(weights=None).eval().to(ctx.device)
        checkpoint = {f"module.{k}": v for k, v in reference.state_dict().items()}
        return {"reference": reference, "checkpoint": checkpoint, "x": torch.randn(2, 3, 64, 64, device=ctx.device)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return inputs["reference"](inputs["x"]).cpu()

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return copy.deepcopy(inputs["reference"]).double()(inputs["x"].double()).cpu()

    def _timm(self, ctx: CaseContext) -> torch.nn.Module:
        import timm

        return timm.create_model("resnet50", pretrained=False).eval().to(ctx.device)

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = self._timm(ctx)
        model.load_state_dict(inputs["checkpoint"])
        with torch.no_grad():
            return model(inputs["x"]).cpu()

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = self._timm(ctx)
        self.report = load_ported(model, inputs["checkpoint"], rules=[(r"^module\.", "")])
        with torch.no_grad():
            return model(inputs["x"]).cpu()

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = tolerance_check(candidate, reference, self.reference64(ctx, inputs))
        if hasattr(self, "report"):
            result.figures["port"] = self.report.to_dict()
        return result
