"""A checkout from before the fix of #178: the first COCO evaluation crashes on an empty list.

Shortly after the guard for "no detections at all" landed (PR #601 for issue #178), a user
training on COCO from an older copy of PyTorch-YOLOv3 hit the same ``ValueError: not enough
values to unpack`` at the end of the first epoch: the barely trained model produced no box above the
confidence threshold and the per-image statistics were
empty (the reporter's printed values were all zero, where earlier runs had shown about 1e-10).
A collaborator answered that the error is fixed on master; updating the checkout (the
guarded ``evaluate``) is the fix. This case reuses the evaluator of the #178 case and feeds it
the reporter's situation: one evaluation of a model whose confidences are all near zero.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases.pytorch_yolov3_eval_no_detections import NOT_MEASURED, training_reports
from analysis.reproduction.comparators import exact_check


def first_epoch_on_coco(seed: int, n_images: int = 8) -> list[list[dict]]:
    """One evaluation after epoch 0: ground truth and boxes whose scores are all about 1e-10."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        xy = rng.uniform(0, 600, (4, 2))
        gt = np.concatenate([xy, xy + rng.uniform(10, 80, (4, 2))], axis=1)
        boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (4, 2))], axis=1)
        images.append({"gt": gt, "boxes": boxes, "scores": rng.uniform(1e-11, 1e-9, 4)})
    return [images]


@case(
    id="pytorch_yolov3_eval_stale_checkout",
    title="An out-of-date checkout still crashes when the first COCO evaluation finds no detection",
    issues=["https://github.com/eriklindernoren/PyTorch-YOLOv3/issues/620"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash",
            "root_cause": "training_data_quality"},
    reference="the guarded evaluator's outcome for a set without any detection, as recorded: not measured",
    reference_kind="recorded",
    defect_class="empty detection set at evaluation (unpatched copy)",
    mechanism="evaluator",
    evidence={
        "reported": "Training on COCO on Windows, the evaluation after the first epoch raised ValueError while "
                    "unpacking the concatenated statistics; the reporter's printed values were all zero "
                    "where a few days earlier they had been around 1e-10.",
        "diagnosis": "A collaborator noted the predictions came back empty; another explained that the "
                     "reporter ran an older version, the ValueError having already been fixed on master.",
        "fix": "The collaborator's reply (fourth comment, the same day) points to master, where the guard from "
               "PR #601 (the fix of #178, opened three weeks earlier and merged days before) returns nothing for a validation "
               "set without detections; updating the checkout fixes it.",
        "model": "One evaluation of eight images whose boxes all score about 1e-10: the unguarded evaluator "
                 "of the older checkout raises ValueError; the updated one reports the set as not measured, "
                 "which is the recorded outcome.",
    },
)
class EvalStaleCheckout(ReproCase):
    expect_raises = (ValueError,)

    def inputs(self, ctx: CaseContext) -> list[list[dict]]:
        return first_epoch_on_coco(ctx.seed)

    def reference(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        return torch.tensor([NOT_MEASURED], dtype=torch.float64)

    def buggy(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        return training_reports(epochs, guard_empty=False)

    def fixed(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        return training_reports(epochs, guard_empty=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, epochs: list) -> Comparison:
        return exact_check(candidate, reference, "evaluation reports")
