"""AutoAnchor divides its new anchors by the strides in the wrong order.

AutoAnchor recomputes anchors for a dataset by k-means; they come out sorted from small to
large, in pixels, and are converted to grid units by dividing by each output layer's stride.
With the model configuration of that release listing its detection layers from stride 32 down
to 8, the smallest anchors were divided by 32 and the largest by 8, and the order check that
follows then moved them onto the other layers: every layer predicts with anchors of the wrong
size (the opener saw doubled boxes, a participant too-small ones). That participant's fix
flips the strides so that, once the order check reverses the groups onto the layers, each group
has been divided by the stride of the layer it ends up on.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check

STRIDES = torch.tensor([32.0, 16.0, 8.0])  # detection layers as that release's config listed them
N_ANCHORS = 3


def kmeans_anchors(seed: int) -> torch.Tensor:
    """Nine (w, h) anchors in pixels, sorted by area as AutoAnchor's k-means returns them."""
    wh = torch.from_numpy(np.random.default_rng(seed).uniform(8, 320, (9, 2)))
    return wh[wh.prod(1).argsort()]


def head_anchors(new: torch.Tensor, flip_strides: bool) -> torch.Tensor:
    """Anchors in grid units per layer as AutoAnchor writes them into the head: divide by the
    strides, then the release's order check flips the anchors when the pixel anchors' size order
    (small to large as k-means returns them) disagrees with the layers' stride order."""
    strides = torch.flip(STRIDES, [0]) if flip_strides else STRIDES
    grid = new.clone().view(len(STRIDES), N_ANCHORS, 2) / strides.view(-1, 1, 1)
    area = new.view(len(STRIDES), N_ANCHORS, 2).prod(-1).mean(-1)
    if torch.sign(area[-1] - area[0]) != torch.sign(STRIDES[-1] - STRIDES[0]):
        grid = grid.flip(0)
    return grid


def pixel_anchors(grid_units: torch.Tensor) -> torch.Tensor:
    """What each layer predicts with: its grid anchors times its stride."""
    return grid_units * STRIDES.view(-1, 1, 1)


@case(
    id="yolov5_autoanchor_stride_order",
    title="AutoAnchor divides small-to-large anchors by strides listed large-to-small",
    issues=["https://github.com/ultralytics/yolov5/issues/447"],
    labels={"stage": "training", "manifestation": "evolutionary", "impact": "incorrect_functionality",
            "root_cause": "training_configuration"},
    reference="k-means anchors grouped by size onto layers ranked by stride (smallest on stride 8)",
    reference_kind="implementation",
    defect_class="anchor order vs stride order",
    mechanism="numerics",
    evidence={
        "reported": "The opener, after training on VisDrone (cars, pedestrians), saw objects detected with "
                    "two boxes; a participant saw too-small boxes, and training with the default anchors "
                    "instead of AutoAnchor's gave good results, with YOLOv5s and YOLOv5l alike.",
        "diagnosis": "That participant (not the opener) found the k-means anchors were divided by the strides in reverse (32, "
                     "16, 8 instead of 8, 16, 32) for a config whose layers were listed large to small; the "
                     "maintainer explained that the line after the division is meant to check the anchor "
                     "order and that this region should be made more robust.",
        "fix": "The same participant's comment in the middle of the thread: flip the strides in the "
               "division; they also confirmed the problem was gone after pulling the current code.",
        "model": "Nine sorted k-means anchors are written into a three-layer head whose strides are listed "
                 "32, 16, 8; dividing in that order puts the largest anchors on the finest layer, flipping "
                 "the strides gives each layer the anchors an independent size-ranking assigns it.",
    },
)
class AutoanchorStrideOrder(ReproCase):
    def inputs(self, ctx: CaseContext) -> torch.Tensor:
        return kmeans_anchors(ctx.seed)

    def reference(self, ctx: CaseContext, new: torch.Tensor) -> torch.Tensor:
        ranked = sorted(range(len(STRIDES)), key=lambda i: float(STRIDES[i]))  # finest layer first
        out = torch.empty(len(STRIDES), N_ANCHORS, 2, dtype=new.dtype)
        for rank, layer in enumerate(ranked):
            out[layer] = new[rank * N_ANCHORS:(rank + 1) * N_ANCHORS]
        return out

    def buggy(self, ctx: CaseContext, new: torch.Tensor) -> torch.Tensor:
        return pixel_anchors(head_anchors(new, flip_strides=False))

    def fixed(self, ctx: CaseContext, new: torch.Tensor) -> torch.Tensor:
        return pixel_anchors(head_anchors(new, flip_strides=True))

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, new: torch.Tensor) -> Comparison:
        return tolerance_check(candidate, reference, reference)
