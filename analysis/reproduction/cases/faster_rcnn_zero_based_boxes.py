"""NaN box-regression targets when a dataset's 0-based boxes meet a 1-based loader.

The Pascal VOC loader of the Faster R-CNN ports converts 1-based VOC pixel indices to 0-based by
subtracting one and keeps boxes as unsigned 16-bit integers. A custom dataset that is already
0-based has boxes touching the left edge (xmin = 0); minus one wraps to 65535, the box width
becomes negative, and the log in the width/height regression target yields NaN, so the loss
goes NaN in training. The fix described in the threads: do not subtract one for a 0-based
dataset (or keep coordinates signed and clipped).
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check


def regression_targets(rois: np.ndarray, gt: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Faster R-CNN (dx, dy, dw, dh) targets with the +1 pixel-width convention."""
    ex, g = torch.as_tensor(rois, dtype=dtype), torch.as_tensor(gt.astype(np.float64), dtype=dtype)
    ew, eh = ex[:, 2] - ex[:, 0] + 1, ex[:, 3] - ex[:, 1] + 1
    gw, gh = g[:, 2] - g[:, 0] + 1, g[:, 3] - g[:, 1] + 1
    ecx, ecy = ex[:, 0] + 0.5 * ew, ex[:, 1] + 0.5 * eh
    gcx, gcy = g[:, 0] + 0.5 * gw, g[:, 1] + 0.5 * gh
    return torch.stack([(gcx - ecx) / ew, (gcy - ecy) / eh, torch.log(gw / ew), torch.log(gh / eh)], dim=1)


def encode_independently(rois: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The reference: the same box parametrisation written separately in NumPy float64, from the
    dataset's boxes as annotated (no loader)."""
    def centre_size(b: np.ndarray) -> tuple[np.ndarray, ...]:
        size = b[:, 2:4] - b[:, 0:2] + 1.0
        return b[:, 0:2] + size / 2.0, size

    (ec, es), (gc, gs) = centre_size(rois.astype(np.float64)), centre_size(boxes.astype(np.float64))
    return np.hstack([(gc - ec) / es, np.log(gs / es)])


def load_boxes(raw: np.ndarray, subtract_one: bool) -> np.ndarray:
    """The loader: optional 1-based → 0-based shift, stored as uint16 like the original."""
    shifted = raw.astype(np.int64) - (1 if subtract_one else 0)
    return shifted.astype(np.uint16)


@case(
    id="faster_rcnn_zero_based_boxes",
    title="0-based boxes through a 1-based VOC loader: uint16 wrap, negative widths, NaN targets",
    issues=["https://github.com/endernewton/tf-faster-rcnn/issues/107",
            "https://github.com/endernewton/tf-faster-rcnn/issues/135"],
    labels={"stage": "training", "manifestation": "evolutionary", "impact": "numerical_instability",
            "root_cause": "training_configuration"},
    reference="regression targets from the dataset's own 0-based boxes, float64",
    reference_kind="implementation",
    defect_class="coordinate convention (0- vs 1-based) + unsigned overflow → log of negative width",
    mechanism="data loading",
    evidence={
        "reported": "Training on a custom dataset converted to the Pascal VOC layout printed a runtime "
                    "warning for an invalid value in the log of the width ratio in bbox_transform and the "
                    "box losses became NaN (#107); in #135 the printed ground-truth widths were large "
                    "negative numbers.",
        "diagnosis": "Participants of both threads traced it to the VOC loader's subtraction of one from "
                     "every coordinate: for annotations that are already 0-based, a coordinate of 0 "
                     "becomes -1, which wraps in the loader's unsigned 16-bit boxes.",
        "fix": "Remove the minus one for 0-based data (a participant's comment in the later part of #107; "
               "the same advice recurs in #135), then delete the cached roidb so it is rebuilt.",
        "model": "Boxes of a 0-based dataset, a quarter touching the left border, pass through the loader "
                 "with and without the subtraction; with it the targets contain NaN, without it they "
                 "match the targets encoded separately in NumPy from the annotations.",
    },
)
class ZeroBasedBoxes(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(ctx.seed)
        n = 64
        x1 = rng.integers(0, 200, n)
        x1[: n // 4] = 0  # objects touching the left border: the rows that wrap
        y1 = rng.integers(0, 200, n)
        boxes = np.stack([x1, y1, x1 + rng.integers(20, 120, n), y1 + rng.integers(20, 120, n)], axis=1)
        rois = boxes + rng.integers(-8, 9, boxes.shape)
        rois[:, 2:] = np.maximum(rois[:, 2:], rois[:, :2] + 4)
        return {"boxes": boxes, "rois": rois.astype(np.float64)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return torch.from_numpy(encode_independently(inputs["rois"], inputs["boxes"])).float()

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return torch.from_numpy(encode_independently(inputs["rois"], inputs["boxes"]))

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        loaded = load_boxes(inputs["boxes"], subtract_one=True)
        return regression_targets(inputs["rois"], loaded, torch.float32)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return regression_targets(inputs["rois"], load_boxes(inputs["boxes"], subtract_one=False), torch.float32)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))
