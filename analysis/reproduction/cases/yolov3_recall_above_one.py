"""test.py counted one ground-truth object as several true positives: recall above 1.

The evaluator of ultralytics/yolov3 (spring 2019) matched every detection to the ground-truth
box it overlapped best and counted it a true positive when the IoU cleared the threshold, but it
did not take that target out of the pool. Two boxes predicted on top of one object (common with
many objects per image and a high confidence threshold) therefore gave two true positives, and
per-class recall, and with it AP, rose above 1. The fix made target assignment exclusive: a
target that has been matched cannot be matched again, so the second box is a false positive.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import detection_ap, match_detections, tolerance_check

N_CLASSES = 3


def crowded_predictions(seed: int, n_images: int = 5) -> list[dict]:
    """Per image: ground truth (boxes, classes) and detections (boxes, scores, classes), some
    objects detected twice by nearly identical boxes, some missed."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n = 8
        xy = rng.uniform(0, 400, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(20, 60, (n, 2))], axis=1)
        gt_cls = rng.integers(0, N_CLASSES, n)
        found = rng.random(n) < 0.8
        twice = found & (rng.random(n) < 0.5)
        boxes = np.concatenate([gt[found] + rng.normal(0, 2, (found.sum(), 4)),
                                gt[twice] + rng.normal(0, 2, (twice.sum(), 4)),
                                rng.uniform(0, 400, (2, 4)).cumsum(axis=1) / 2])
        classes = np.concatenate([gt_cls[found], gt_cls[twice], rng.integers(0, N_CLASSES, 2)])
        images.append({"gt": gt, "gt_cls": gt_cls, "boxes": boxes, "cls": classes,
                       "scores": rng.uniform(0.3, 1.0, len(boxes))})
    return images


def _iou(box: np.ndarray, targets: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(box[:2], targets[:, :2]), np.minimum(box[2:], targets[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    return inter / ((box[2:] - box[:2]).prod() + (targets[:, 2:] - targets[:, :2]).prod(axis=1) - inter)


def test_py_metrics(images: list[dict], exclusive: bool, iou_thres: float = 0.5) -> torch.Tensor:
    """test.py: per image, detections in score order matched to targets of their class; then per
    class recall and AP (area under the precision envelope). Rows: class; columns: recall, AP."""
    tp, conf, pred_cls = [], [], []
    for im in images:
        detected: list[int] = []
        for i in np.argsort(-im["scores"]):
            hit = False
            same = np.where(im["gt_cls"] == im["cls"][i])[0]
            if len(same):
                ious = _iou(im["boxes"][i], im["gt"][same])
                best = int(same[ious.argmax()])
                if ious.max() > iou_thres and (not exclusive or best not in detected):
                    hit = True
                    detected.append(best)
            tp.append(hit)
            conf.append(im["scores"][i])
            pred_cls.append(im["cls"][i])
    tp, conf, pred_cls = np.array(tp, float), np.array(conf), np.array(pred_cls)
    rows = []
    for c in range(N_CLASSES):
        order = np.argsort(-conf[pred_cls == c])
        hits = tp[pred_cls == c][order]
        n_gt = sum(int((im["gt_cls"] == c).sum()) for im in images)
        recall = np.cumsum(hits) / n_gt
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        mrec, mpre = np.concatenate(([0.0], recall, [1.0])), np.concatenate(([0.0], precision, [0.0]))
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        i = np.where(mrec[1:] != mrec[:-1])[0]
        rows.append([recall[-1], float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))])
    return torch.tensor(rows, dtype=torch.float64)


@case(
    id="yolov3_recall_above_one",
    title="Non-exclusive target matching in test.py counts one object as several true positives",
    issues=["https://github.com/ultralytics/yolov3/issues/197"],
    labels={"stage": "training", "manifestation": "evolutionary", "impact": "lower_accuracy",
            "root_cause": "training_configuration"},
    reference="per-class recall and AP from the shared greedy one-to-one matcher (comparators.match_detections "
              "and detection_ap, area under the envelope)",
    reference_kind="metric",
    defect_class="non-exclusive detection-to-target matching",
    mechanism="evaluator",
    evidence={
        "reported": "Training on a custom game-screenshot dataset (21 classes, about 50 objects per image) "
                    "showed zero mAP with tiny boxes; after a first fix the reporter's per-class table showed "
                    "recall and AP above 1 for several classes (Denchmark copy of the thread).",
        "diagnosis": "The maintainer first found a width-height loss bug on master; for the values above 1 the "
                     "reporter pointed at one object predicted by two near-identical boxes counted twice, and "
                     "the maintainer agreed that true positives outnumbered the targets.",
        "fix": "About two months later, near the end of the thread, the maintainer reported the mAP above 1 "
               "fixed in test.py: target-anchor combinations were no longer allowed to be reused, so a "
               "target counts as at most one true positive.",
        "model": "Five crowded images with objects detected twice: the non-exclusive matcher yields recall "
                 "and AP above 1; with exclusive matching both equal an independent one-to-one greedy "
                 "matcher's recall and AP, class by class.",
    },
)
class RecallAboveOne(ReproCase):
    def inputs(self, ctx: CaseContext) -> list[dict]:
        return crowded_predictions(ctx.seed)

    def reference(self, ctx: CaseContext, images: list[dict]) -> torch.Tensor:
        rows = []
        for c in range(N_CLASSES):
            dets = [{"boxes": im["boxes"][im["cls"] == c], "scores": im["scores"][im["cls"] == c]} for im in images]
            gts = [im["gt"][im["gt_cls"] == c] for im in images]
            _, hits, n_gt = match_detections(dets, gts, iou=0.5 + 1e-12)
            rows.append([hits.sum() / n_gt, detection_ap(dets, gts, iou=0.5 + 1e-12, method="continuous")])
        return torch.tensor(rows, dtype=torch.float64)

    def buggy(self, ctx: CaseContext, images: list[dict]) -> torch.Tensor:
        return test_py_metrics(images, exclusive=False)

    def fixed(self, ctx: CaseContext, images: list[dict]) -> torch.Tensor:
        return test_py_metrics(images, exclusive=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, images: list) -> Comparison:
        return tolerance_check(candidate, reference, reference)
