"""Evaluating an early-epoch model that detects nothing crashed training with a ValueError.

PyTorch-YOLOv3's ``evaluate`` gathered per-image statistics (true-positive flags, scores,
labels) for the detections that survive the confidence threshold, then unpacked their
concatenation into three arrays. After the first epoch of training from scratch, or on a small
custom validation set, no detection clears the threshold, the list is empty and the unpacking
raises ``ValueError: not enough values to unpack``. The fix returns "not measured" when the
whole validation set produced no detection, and the training loop skips the report.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import detection_ap, tolerance_check

CONF_THRES = 0.5
NOT_MEASURED = -1.0


def validation_epochs(seed: int, n_images: int = 6) -> list[list[dict]]:
    """Per epoch, per validation image: ground-truth boxes and the model's scored boxes.
    Epoch 0 is the untrained model (every score below the threshold), epoch 1 a trained one."""
    rng = np.random.default_rng(seed)
    epochs = []
    for low, high in ((0.01, 0.3), (0.2, 0.99)):
        images = []
        for _ in range(n_images):
            xy = rng.uniform(0, 300, (3, 2))
            gt = np.concatenate([xy, xy + rng.uniform(30, 90, (3, 2))], axis=1)
            jitter = rng.normal(0, 12, (5, 4))
            boxes = np.concatenate([gt, gt[:2]]) + jitter
            images.append({"gt": gt, "boxes": boxes, "scores": rng.uniform(low, high, 5)})
        epochs.append(images)
    return epochs


def batch_statistics(image: dict, iou_thres: float = 0.5) -> tuple | None:
    """The repository's per-image statistics of the detections kept by NMS (None when none)."""
    keep = image["scores"] >= CONF_THRES
    boxes, scores = image["boxes"][keep], image["scores"][keep]
    if not len(scores):
        return None
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    detected, tp = set(), np.zeros(len(scores))
    for i, box in enumerate(boxes):
        lt = np.maximum(box[:2], image["gt"][:, :2])
        rb = np.minimum(box[2:], image["gt"][:, 2:])
        inter = np.clip(rb - lt, 0, None).prod(axis=1)
        union = (box[2:] - box[:2]).prod() + (image["gt"][:, 2:] - image["gt"][:, :2]).prod(axis=1) - inter
        iou = inter / union
        best = int(iou.argmax())
        if iou[best] >= iou_thres and best not in detected:
            tp[i] = 1
            detected.add(best)
    return tp, scores, np.zeros(len(scores))


def evaluate(images: list[dict], guard_empty: bool) -> float:
    """test.evaluate: statistics over the set, then AP (VOC all-point); the fix returns
    ``NOT_MEASURED`` when no image produced a detection."""
    sample_metrics = [s for s in (batch_statistics(im) for im in images) if s is not None]
    if guard_empty and len(sample_metrics) == 0:
        return NOT_MEASURED
    true_positives, pred_scores, _ = [np.concatenate(x, 0) for x in list(zip(*sample_metrics))]
    order = np.argsort(-pred_scores)
    tpc = np.cumsum(true_positives[order])
    fpc = np.cumsum(1 - true_positives[order])
    recall = tpc / sum(len(im["gt"]) for im in images)
    precision = tpc / (tpc + fpc)
    mrec, mpre = np.concatenate(([0.0], recall, [1.0])), np.concatenate(([0.0], precision, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def training_reports(epochs: list[list[dict]], guard_empty: bool) -> torch.Tensor:
    """train.py: evaluate after every epoch and record the mAP."""
    return torch.tensor([evaluate(images, guard_empty) for images in epochs], dtype=torch.float64)


@case(
    id="pytorch_yolov3_eval_no_detections",
    title="Evaluation after an epoch without a single detection crashes training (unpacking an empty list)",
    issues=["https://github.com/eriklindernoren/PyTorch-YOLOv3/issues/178"],
    labels={"stage": "training", "manifestation": "basic", "impact": "crash", "root_cause": "low_frequency"},
    reference="per epoch: 'not measured' when no score clears the threshold, else the VOC area-under-envelope "
              "AP of the shared detection-AP evaluator",
    reference_kind="metric",
    defect_class="empty detection set at evaluation",
    mechanism="evaluator",
    evidence={
        "reported": "Training yolov3-tiny on a custom dataset stopped at the end of the first epoch's "
                    "evaluation with a ValueError while unpacking three values from an empty sequence; "
                    "many others on Windows and Linux hit it with small validation sets.",
        "diagnosis": "Participants found that the evaluation step got no detection above the confidence "
                     "threshold from a barely trained model, so the per-image statistics list was empty; "
                     "workarounds skipped the first evaluations or enlarged the validation set.",
        "fix": "Pull request #601 (January 2021, linked near the end of the thread) returns nothing from "
               "evaluate when the whole validation set has no detection and lets train.py skip the "
               "report; a collaborator merged it by hand and closed duplicates pointing here.",
        "model": "Two epochs of scored boxes on six validation images, the first all below the 0.5 "
                 "threshold: the unguarded evaluator raises ValueError, the guarded one reports not "
                 "measured and then the mAP, equal to an independent AP evaluator.",
    },
)
class EvalNoDetections(ReproCase):
    expect_raises = (ValueError,)

    def inputs(self, ctx: CaseContext) -> list[list[dict]]:
        return validation_epochs(ctx.seed)

    def reference(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        values = []
        for images in epochs:
            if not any((im["scores"] >= CONF_THRES).any() for im in images):
                values.append(NOT_MEASURED)
                continue
            values.append(detection_ap([{"boxes": im["boxes"], "scores": im["scores"]} for im in images],
                                       [im["gt"] for im in images], iou=0.5, method="continuous",
                                       conf_thres=CONF_THRES))
        return torch.tensor(values, dtype=torch.float64)

    def buggy(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        return training_reports(epochs, guard_empty=False)

    def fixed(self, ctx: CaseContext, epochs: list[list[dict]]) -> torch.Tensor:
        return training_reports(epochs, guard_empty=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, epochs: list) -> Comparison:
        return tolerance_check(candidate, reference, reference)
