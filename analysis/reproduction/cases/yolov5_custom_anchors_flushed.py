"""Custom anchors silently replaced by the pretrained checkpoint's anchors.

Anchors live in the detection head as a buffer, so they are part of the state dict. Loading
pretrained weights kept every checkpoint entry whose shape matched and loaded with
``strict=False``; the user's anchors (same shape, different values) were overwritten by the COCO
anchors without a message. The fix excludes the anchor buffers from what a checkpoint may set.
"""

from __future__ import annotations

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases._tiny import COCO_ANCHORS, TinyYolo
from analysis.reproduction.comparators import exact_check
from analysis.reproduction.porting import port_state_dict

CUSTOM_ANCHORS = torch.tensor([[4.0, 5.0], [7.0, 9.0], [12.0, 11.0]])


@case(
    id="yolov5_custom_anchors_flushed",
    title="strict=False loading of shape-matched keys overwrites user-configured anchors",
    issues=["https://github.com/ultralytics/yolov5/issues/459"],
    labels={"stage": "modeling", "manifestation": "evolutionary", "impact": "incorrect_functionality",
            "root_cause": "model_weight"},
    reference="the anchors of the user's model configuration",
    mechanism="weight port",
    evidence={
        "reported": "Anchors set in the model yaml were silently replaced by the pretrained checkpoint's "
                    "when fine-tuning (Ubuntu, RTX 2080 Ti); only anchor sets of a different shape survived.",
        "diagnosis": "The checkpoint filter in train.py transfers every tensor whose shape matches, and the "
                     "anchors are saved as buffers of the same shape as the defaults, so they were "
                     "overwritten.",
        "fix": "The maintainer proposed an exclude list containing 'anchor' in the transfer filter (late in "
               "the thread) and opened PR #462 with it.",
        "model": "A tiny YOLO model configured with custom anchors loads an 80-class checkpoint; the "
                 "shape-only filter restores the checkpoint's anchors, the filter excluding anchor keys "
                 "keeps the configured ones.",
    },
    reference_kind="implementation",
    defect_class="silent strict=False loading",
)
class CustomAnchorsFlushed(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        return {"checkpoint": TinyYolo(80, COCO_ANCHORS).state_dict()}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return CUSTOM_ANCHORS

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = TinyYolo(2, CUSTOM_ANCHORS)
        own = model.state_dict()
        kept = {k: v for k, v in inputs["checkpoint"].items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(kept, strict=False)
        return model.model[-1].anchors

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = TinyYolo(2, CUSTOM_ANCHORS)
        fitted, self.report = port_state_dict(inputs["checkpoint"], model.state_dict(), exclude=[r"\.anchors$"])
        model.load_state_dict(fitted, strict=False)
        return model.model[-1].anchors

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = exact_check(candidate, reference, "anchor values")
        if hasattr(self, "report"):
            result.figures["port"] = self.report.to_dict()
        return result
