"""Box centres rounded up to the image border in half precision index one grid cell past the end.

The loss builds its targets by truncating each box centre, in grid units, to an integer cell.
The maintainer put the thread's out-of-range index down to the grid indices overflowing, in rare
cases, under mixed precision. Half precision keeps about three decimal digits near 1, so a
normalised centre just inside the right or bottom border (0.9999) rounds to exactly 1.0 and lands
on cell ``n`` of an ``n``-cell grid: writing the objectness target indexes out of range (a
device-side assert on CUDA, an IndexError on the CPU, as in the thread). The fix clamps the cell
index to ``n - 1``.
"""

from __future__ import annotations

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

GRID = 8


def targets(seed: int) -> torch.Tensor:
    """Normalised box centres (x, y), two of them just inside the right and bottom border, held in
    half precision as under mixed precision (where 0.9999 becomes 1.0), then read as float32."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(12, 2, generator=g)
    return torch.cat([xy, torch.tensor([[0.9999, 0.5], [0.25, 0.9999]])]).half().float()


def objectness_truncated(xy: torch.Tensor, clamp: bool) -> torch.Tensor:
    """The repository's target builder: cell = int(centre * n), optionally clamped (the fix)."""
    obj = torch.zeros(GRID, GRID)
    gij = (xy * GRID).long()
    if clamp:
        gij = gij.clamp(0, GRID - 1)
    gi, gj = gij.T
    obj[gj, gi] = 1.0
    return obj


def objectness_by_containment(xy: torch.Tensor) -> torch.Tensor:
    """Independent rule: the cell whose interval contains the centre, the last one closed."""
    obj = torch.zeros(GRID, GRID)
    edges = [i / GRID for i in range(GRID + 1)]
    for x, y in xy.tolist():
        cx = next(i for i in range(GRID) if edges[i] <= x < edges[i + 1] or (i == GRID - 1 and x == 1.0))
        cy = next(i for i in range(GRID) if edges[i] <= y < edges[i + 1] or (i == GRID - 1 and y == 1.0))
        obj[cy, cx] = 1.0
    return obj


@case(
    id="yolov5_grid_index_overflow",
    title="Box centres rounded to the border in half precision index one grid cell past the end",
    issues=["https://github.com/ultralytics/yolov5/issues/1312"],
    labels={"stage": "training", "manifestation": "basic", "impact": "crash", "root_cause": "low_frequency"},
    reference="cell assignment by interval containment (last cell closed), written independently",
    reference_kind="implementation",
    defect_class="grid index overflow at the border",
    mechanism="numerics",
    evidence={
        "reported": "Training a single-class custom dataset worked on the GPU but evaluation stopped with a "
                    "CUDA device-side assert inside the IoU code, and on the CPU with an index of 52 out of "
                    "bounds for a 52-cell grid in the loss; the same data had trained under yolov3.",
        "diagnosis": "The maintainer linked an identical error reported on yolov3 and put it down to the grid "
                     "indices of the loss's target building overflowing, in rare cases, under mixed "
                     "precision (no particular target is named); he later noticed his first patch clamped "
                     "to the grid size instead of the grid size minus one.",
        "fix": "PR #1313 (maintainer's comment in the middle of the thread) clamped the indices; PR #1316 "
               "(a few comments later) clamped them to n - 1, after which the reporter confirmed the fix.",
        "model": "Box centres held in half precision, two of them at 0.9999 (which half precision rounds to "
                 "the border), are turned into an objectness map on an 8x8 grid; the unclamped "
                 "truncation raises IndexError, the n - 1 clamp equals an independent "
                 "interval-containment assignment.",
    },
)
class GridIndexOverflow(ReproCase):
    expect_raises = (IndexError,)

    def inputs(self, ctx: CaseContext) -> torch.Tensor:
        return targets(ctx.seed)

    def reference(self, ctx: CaseContext, xy: torch.Tensor) -> torch.Tensor:
        return objectness_by_containment(xy)

    def buggy(self, ctx: CaseContext, xy: torch.Tensor) -> torch.Tensor:
        return objectness_truncated(xy, clamp=False)

    def fixed(self, ctx: CaseContext, xy: torch.Tensor) -> torch.Tensor:
        return objectness_truncated(xy, clamp=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, xy: torch.Tensor) -> Comparison:
        return exact_check(candidate, reference, "objectness targets")
