"""Multi-GPU training crashes when the loss is computed inside the wrapped model's forward.

Before ultralytics/yolov3 PR #135 the training loop called ``model(imgs, targets)`` and the YOLO
layer built its targets and losses inside ``forward``; the batch's targets were a Python list
with one label tensor per image. ``nn.DataParallel`` splits the image tensor among the GPUs but
scatters a list element by element, so every replica receives its share of the images together
with a list as long as the whole batch (each entry a slice of that image's labels). The target
tensors built from that list have the full batch size while the replica's predictions have only
its share, and indexing the predictions with the target mask fails. PR #135 made the model
return predictions only, gathered them on one device, and built the targets (now one tensor of
``image, class, x, y, w, h`` rows) and the loss there.

The case runs torch's own scatter code on the CPU (see ``yolov3_dataparallel_last_batch``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases.yolov3_dataparallel_last_batch import data_parallel
from analysis.reproduction.comparators import tolerance_check

N_GPUS, BATCH, N_CLASSES, GRID = 2, 8, 3, 4
ANCHORS = torch.tensor([[1.0, 1.5], [2.0, 1.0], [3.0, 3.0]])  # in grid cells


class YoloLayer(nn.Module):
    """A one-level YOLO layer; given targets, forward returns the loss as the code before #135 did."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, len(ANCHORS) * (5 + N_CLASSES), 8, 8)

    def forward(self, x: torch.Tensor, targets: list[torch.Tensor] | None = None) -> torch.Tensor:
        p = self.body(x)
        p = p.view(len(x), len(ANCHORS), 5 + N_CLASSES, GRID, GRID).permute(0, 1, 3, 4, 2)
        if targets is None:
            return p
        return yolo_loss(p, *build_targets(label_rows(targets), n_images=len(targets)))


def label_rows(labels: list[torch.Tensor]) -> torch.Tensor:
    """Per-image ``class, x, y, w, h`` label tensors as one tensor of ``image, class, x, y, w, h`` rows."""
    return torch.cat([torch.cat([torch.full((len(t), 1), float(b)), t], 1) for b, t in enumerate(labels)])


def build_targets(rows: torch.Tensor, n_images: int) -> tuple[torch.Tensor, ...]:
    """Target tensors of ``n_images`` images from ``image, class, x, y, w, h`` rows (normalised xywh)."""
    shape = (n_images, len(ANCHORS), GRID, GRID)
    txy, twh = torch.zeros(*shape, 2), torch.zeros(*shape, 2)
    tcls, mask = torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.bool)
    b, c = rows[:, 0].long(), rows[:, 1].long()
    gxy, gwh = rows[:, 2:4] * GRID, rows[:, 4:6] * GRID
    gi, gj = gxy.long().clamp(0, GRID - 1).t()
    inter = torch.min(gwh[:, None], ANCHORS[None]).prod(2)
    a = (inter / (gwh.prod(1)[:, None] + ANCHORS.prod(1)[None] - inter)).argmax(1)
    mask[b, a, gj, gi] = True
    txy[b, a, gj, gi] = gxy - gxy.floor()
    twh[b, a, gj, gi] = torch.log(gwh / ANCHORS[a])
    tcls[b, a, gj, gi] = c
    return txy, twh, tcls, mask


def yolo_loss(p: torch.Tensor, txy: torch.Tensor, twh: torch.Tensor, tcls: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """The repository's loss of that time: MSE on xy and wh, 64 x BCE on objectness, CE / 4 on classes."""
    lxy = nn.functional.mse_loss(torch.sigmoid(p[..., 0:2])[mask], txy[mask])
    lwh = nn.functional.mse_loss(p[..., 2:4][mask], twh[mask])
    lcls = nn.functional.cross_entropy(p[..., 5:][mask], tcls[mask]) / 4
    lconf = 64 * nn.functional.binary_cross_entropy_with_logits(p[..., 4], mask.float())
    return lxy + lwh + lconf + lcls


def loss_by_hand(p: np.ndarray, labels: list[np.ndarray]) -> float:
    """Independent float64 evaluation: each label assigned by explicit loops, the four terms as sums."""
    anchors = ANCHORS.double().numpy()
    sq_xy = sq_wh = ce = 0.0
    positive = np.zeros(p.shape[:4], dtype=bool)
    for b, image_labels in enumerate(labels):
        for cls, x, y, w, h in image_labels:
            cx, cy, cw, ch = x * GRID, y * GRID, w * GRID, h * GRID
            i, j = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
            ious = [min(cw, aw) * min(ch, ah) / (cw * ch + aw * ah - min(cw, aw) * min(ch, ah)) for aw, ah in anchors]
            a = int(np.argmax(ious))
            cell = p[b, a, j, i]
            positive[b, a, j, i] = True
            sq_xy += (1 / (1 + np.exp(-cell[0])) - (cx - np.floor(cx))) ** 2 + (1 / (1 + np.exp(-cell[1])) - (cy - np.floor(cy))) ** 2
            sq_wh += (cell[2] - np.log(cw / anchors[a, 0])) ** 2 + (cell[3] - np.log(ch / anchors[a, 1])) ** 2
            logits = cell[5:]
            ce += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[int(cls)]
    n = positive.sum()
    conf = p[..., 4]
    bce = np.mean(np.logaddexp(0.0, conf) - conf * positive)
    return sq_xy / (2 * n) + sq_wh / (2 * n) + 64 * bce + ce / n / 4


def labels_in_distinct_cells(rng: np.random.Generator) -> list[torch.Tensor]:
    """Two to four labels per image, each in its own grid cell (so no two share an anchor slot)."""
    out = []
    for _ in range(BATCH):
        cells = rng.choice(GRID * GRID, size=int(rng.integers(2, 5)), replace=False)
        xy = (np.stack([cells % GRID, cells // GRID], 1) + rng.uniform(0.05, 0.95, (len(cells), 2))) / GRID
        wh = rng.uniform(0.1, 0.8, (len(cells), 2))
        cls = rng.integers(0, N_CLASSES, (len(cells), 1))
        out.append(torch.from_numpy(np.concatenate([cls, xy, wh], 1)).float())
    return out


@case(
    id="yolov3_dataparallel_loss_in_forward",
    title="Multi-GPU training: the loss inside forward pairs a replica's images with the whole batch's targets",
    issues=["https://github.com/ultralytics/yolov3/issues/21"],
    labels={"stage": "environment", "manifestation": "evolutionary", "impact": "crash", "root_cause": "gpu_usage"},
    reference="the loss of the whole batch on one device, targets assigned and terms summed by hand in float64 (NumPy)",
    reference_kind="implementation",
    defect_class="per-image target list not split with the images by DataParallel",
    mechanism="environment/API",
    evidence={
        "reported": "Training with several GPUs wrapped in DataParallel failed inside a replica with a "
                    "TypeError about the missing argument x (Python 3.5, again after moving to 3.6); moving the "
                    "loss inputs to CUDA by hand then failed in build_targets with a device assertion "
                    "(Denchmark copy of the thread).",
        "diagnosis": "The maintainer said multi-GPU was not supported yet; a participant, about two thirds in, "
                     "traced it to the images being split among the GPUs while the per-image target list is not, "
                     "so the targets and losses keep the full batch size against a replica's share of predictions.",
        "fix": "The maintainer merged the multi_gpu branch as PR #135 (announced in the comment right after "
               "that diagnosis; commit 45fac6b): the model returns predictions, and targets, as one tensor, and "
               "the loss are built after DataParallel gathers them; multi-GPU timings of the merged code follow.",
        "model": "A one-level YOLO layer on 8 images with 2 to 4 labels each, through torch's scatter on 2 "
                 "simulated GPUs: with the loss in forward the full-batch target mask meets a 4-image replica and "
                 "raises IndexError; computing the loss on the gathered predictions equals a hand-written float64 loss.",
    },
)
class DataParallelLossInForward(ReproCase):
    expect_raises = (IndexError,)

    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        return {"model": YoloLayer(), "images": torch.randn(BATCH, 3, 8 * GRID, 8 * GRID),
                "labels": labels_in_distinct_cells(np.random.default_rng(ctx.seed))}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self.reference64(ctx, inputs).float()

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = copy.deepcopy(inputs["model"]).double()
        with torch.no_grad():
            p = model(inputs["images"].double()).numpy()
        return torch.tensor(loss_by_hand(p, [t.double().numpy() for t in inputs["labels"]]), dtype=torch.float64)

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        """Before #135: ``model(imgs, targets)`` with the per-image label list, loss per replica."""
        with torch.no_grad():
            return data_parallel(inputs["model"], N_GPUS, inputs["images"], targets=inputs["labels"])

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        """#135: predictions gathered from the replicas, then targets (one tensor) and loss on one device."""
        with torch.no_grad():
            pred = data_parallel(inputs["model"], N_GPUS, inputs["images"])
            return yolo_loss(pred, *build_targets(label_rows(inputs["labels"]), n_images=len(pred)))

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))
