"""The repository's own mAP differs from the COCO API's on the same predictions.

The thread compares the mAP printed by the repository's test script with the COCO evaluator's
on the same detections. Two evaluator settings explain such gaps: the test script ran with a
confidence threshold of 0.3 (visible in its printed arguments), which discards low-score
detections and truncates the precision-recall curve, and the two use different AP integrations
(area under the curve vs COCO's 101 recall points). Here both evaluators score one set of
seeded detections at IoU 0.5; with the threshold lowered to 0.001, as for mAP evaluation, the
repository's number agrees with the COCO-style one within the small integration difference.
"""

from __future__ import annotations

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import detection_ap, metric_check

INTEGRATION_TOLERANCE = 0.01


def synthetic_detections(seed: int, n_images: int = 60) -> tuple[list[dict], list[np.ndarray]]:
    """Ground truth boxes; detections = jittered true boxes (scores spread over [0.05, 1]) plus
    low-score false positives, like a detector's raw output before thresholding."""
    rng = np.random.default_rng(seed)
    detections, truth = [], []
    for _ in range(n_images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        gt = np.hstack([xy, xy + rng.uniform(20, 120, (n, 2))])
        found = rng.random(n) < 0.9
        boxes = gt[found] + rng.normal(0, 4, (int(found.sum()), 4))
        scores = rng.beta(2.0, 2.0, len(boxes)) * 0.95 + 0.05
        n_fp = int(rng.integers(0, 4))
        fp_xy = rng.uniform(0, 300, (n_fp, 2))
        boxes = np.vstack([boxes, np.hstack([fp_xy, fp_xy + 40])])
        scores = np.concatenate([scores, rng.uniform(0.01, 0.4, n_fp)])
        detections.append({"boxes": boxes, "scores": scores})
        truth.append(gt)
    return detections, truth


@case(
    id="yolov3_map_vs_cocoapi",
    title="Repository mAP at conf_thres 0.3 vs COCO-style mAP on the same predictions",
    issues=["https://github.com/ultralytics/yolov3/issues/171"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "hyperparameters"},
    reference="COCO-style AP@0.5 (101-point interpolation, all detections)",
    reference_kind="metric",
    defect_class="evaluation metric parity",
)
class MapVsCocoApi(ReproCase):
    def inputs(self, ctx: CaseContext) -> tuple[list[dict], list[np.ndarray]]:
        return synthetic_detections(ctx.seed)

    def reference(self, ctx: CaseContext, data: tuple) -> float:
        return detection_ap(*data, iou=0.5, method="coco101", conf_thres=0.0)

    def buggy(self, ctx: CaseContext, data: tuple) -> float:
        return detection_ap(*data, iou=0.5, method="continuous", conf_thres=0.3)

    def fixed(self, ctx: CaseContext, data: tuple) -> float:
        return detection_ap(*data, iou=0.5, method="continuous", conf_thres=0.001)

    def compare(self, ctx: CaseContext, reference: float, candidate: float, data: tuple) -> Comparison:
        return metric_check(candidate, reference, INTEGRATION_TOLERANCE, "AP@0.5")
