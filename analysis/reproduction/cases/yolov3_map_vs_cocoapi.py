"""The repository's mAP averaged over images, not classes, and differed from the COCO API's.

The thread compares the mAP printed by the repository's test script with pycocotools' on the
same detections. The maintainer named two differences: the test ran at a confidence threshold
of 0.3, and the repository's mAP averaged precision over the image dimension instead of over
classes. The fix (the map_update branch, merged as PR #176) computes AP per class over the whole
dataset at a 0.001 threshold, after which the two numbers agreed within about 1%.

Here seeded multi-class detections are scored three ways: the old per-image average at 0.3, the
fixed per-class AP at 0.001, and a COCO-style evaluator written independently (greedy matching to
the best unmatched ground truth, 101-point interpolation) as the reference.
"""

from __future__ import annotations

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import detection_ap, metric_check

N_CLASSES, N_IMAGES = 4, 80
ALIGNED_WITHIN = 0.01  # the thread: aligned "to within 1%"


def synthetic(seed: int) -> list[dict]:
    """Per image: ground-truth boxes with classes; detections = jittered, some misclassified,
    plus false positives scored across the whole range (a detector trained from scratch whose
    scores are not calibrated across images), before any thresholding."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(N_IMAGES):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        gt = np.hstack([xy, xy + rng.uniform(20, 120, (n, 2))])
        gt_cls = rng.integers(0, N_CLASSES, n)
        found = rng.random(n) < 0.85
        boxes = gt[found] + rng.normal(0, 5, (int(found.sum()), 4))
        cls = np.where(rng.random(int(found.sum())) < 0.85, gt_cls[found], rng.integers(0, N_CLASSES, int(found.sum())))
        scores = rng.beta(2.0, 2.0, len(boxes)) * 0.95 + 0.05
        n_fp = int(rng.integers(0, 6))
        fp_xy = rng.uniform(0, 300, (n_fp, 2))
        images.append({"gt": gt, "gt_cls": gt_cls,
                       "boxes": np.vstack([boxes, np.hstack([fp_xy, fp_xy + 40])]),
                       "cls": np.concatenate([cls, rng.integers(0, N_CLASSES, n_fp)]),
                       "scores": np.concatenate([scores, rng.uniform(0.05, 0.95, n_fp)])})
    return images


def _one_class(images: list[dict], c: int) -> tuple[list[dict], list[np.ndarray]]:
    dets = [{"boxes": im["boxes"][im["cls"] == c], "scores": im["scores"][im["cls"] == c]} for im in images]
    return dets, [im["gt"][im["gt_cls"] == c] for im in images]


def map_per_image(images: list[dict], conf_thres: float) -> float:
    """The old test script: AP of each image (classes kept apart), averaged over images."""
    aps = []
    for im in images:
        per_class = [detection_ap(*_one_class([im], c), method="continuous", conf_thres=conf_thres)
                     for c in np.unique(im["gt_cls"])]
        aps.append(np.mean(per_class))
    return float(np.mean(aps))


def map_per_class(images: list[dict], conf_thres: float) -> float:
    """The fixed test script: AP of each class over the whole dataset, averaged over classes."""
    return float(np.mean([detection_ap(*_one_class(images, c), method="continuous", conf_thres=conf_thres)
                          for c in range(N_CLASSES)]))


def coco_style_map50(images: list[dict]) -> float:
    """COCO-style mAP@0.5, written apart from the repository's evaluator."""
    aps = []
    for c in range(N_CLASSES):
        records, n_gt = [], 0
        for k, im in enumerate(images):
            n_gt += int((im["gt_cls"] == c).sum())
            records += [(s, k, b) for s, b, cl in zip(im["scores"], im["boxes"], im["cls"]) if cl == c]
        records.sort(key=lambda r: -r[0])
        used: dict[int, set[int]] = {}
        hits = []
        for _, k, box in records:
            gts = images[k]["gt"][images[k]["gt_cls"] == c]
            best, best_iou = -1, 0.5
            for j, g in enumerate(gts):
                if j in used.get(k, set()):
                    continue
                w = max(0.0, min(box[2], g[2]) - max(box[0], g[0]))
                h = max(0.0, min(box[3], g[3]) - max(box[1], g[1]))
                union = (box[2] - box[0]) * (box[3] - box[1]) + (g[2] - g[0]) * (g[3] - g[1]) - w * h
                if w * h / union >= best_iou:
                    best, best_iou = j, w * h / union
            if best >= 0:
                used.setdefault(k, set()).add(best)
            hits.append(best >= 0)
        tp = np.cumsum(hits)
        recall, precision = tp / max(n_gt, 1), tp / np.arange(1, len(hits) + 1)
        interpolated = [max([p for p, r in zip(precision, recall) if r >= t], default=0.0)
                        for t in np.linspace(0, 1, 101)]
        aps.append(float(np.mean(interpolated)))
    return float(np.mean(aps))


@case(
    id="yolov3_map_vs_cocoapi",
    title="Repository mAP averaged over images at conf_thres 0.3 vs the COCO API's on the same detections",
    issues=["https://github.com/ultralytics/yolov3/issues/171"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "hyperparameters"},
    reference="COCO-style mAP@0.5 (per class, 101-point interpolation), implemented independently",
    reference_kind="metric",
    defect_class="evaluation metric parity",
    mechanism="evaluator",
    evidence={
        "reported": "Training from scratch, the repository's test script printed an mAP above 0.5 at "
                    "416 px with conf_thres 0.3, while the COCO API on the saved JSON reported an AP@0.5 "
                    "of about 0.1 for the same detections.",
        "diagnosis": "The maintainer pointed at the 0.3 confidence threshold (the README asks for a low "
                     "one when computing mAP) and at the repository averaging over images rather than "
                     "classes, unlike the COCO metric.",
        "fix": "The map_update branch, merged as PR #176 (maintainer's comments in the second half of the "
               "thread): per-class AP at conf_thres 0.001, reported 0.55 against 0.549 from pycocotools.",
        "model": "Seeded 4-class detections on 80 images with uncalibrated false-positive scores: the "
                 "per-image average at 0.3 overstates the "
                 "COCO-style number, as in the thread; per-class AP at 0.001 agrees with an independent "
                 "COCO-style evaluator within the 1% the maintainer reported.",
    },
)
class MapVsCocoApi(ReproCase):
    def inputs(self, ctx: CaseContext) -> list[dict]:
        return synthetic(ctx.seed)

    def reference(self, ctx: CaseContext, images: list[dict]) -> float:
        return coco_style_map50(images)

    def buggy(self, ctx: CaseContext, images: list[dict]) -> float:
        return map_per_image(images, conf_thres=0.3)

    def fixed(self, ctx: CaseContext, images: list[dict]) -> float:
        return map_per_class(images, conf_thres=0.001)

    def compare(self, ctx: CaseContext, reference: float, candidate: float, images: list[dict]) -> Comparison:
        return metric_check(candidate, reference, ALIGNED_WITHIN, "mAP@0.5")
