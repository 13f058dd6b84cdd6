"""The GPU NMS extension built for another GPU architecture: proposals are not suppressed.

tf-faster-rcnn compiles its NMS CUDA kernel for the ``-arch`` written in ``setup.py``. The
kernel fills a bit mask of which boxes suppress which, and the host code then walks the mask.
When the compiled architecture does not run on the installed GPU, the launch fails, the error
is not checked, and the host reads a mask the kernel never wrote. In the thread, training with
the GPU NMS gave NaN losses while the CPU NMS did not, and rebuilding for another architecture
made them go away.

Assumption of this model (the thread does not show the memory): the unwritten mask reads as
zeros, so nothing is suppressed. The fixed form is the same bit-mask algorithm with the kernel
step executed; the reference is the CPU NMS, a different (greedy, sequential) algorithm.
"""

from __future__ import annotations

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

THRESH, BLOCK = 0.7, 64


def proposals(seed: int, n: int = 150) -> np.ndarray:
    """RPN-like proposals: clusters of overlapping boxes with scores, sorted by score."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(50, 550, (12, 2))
    c = centres[rng.integers(0, 12, n)] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(40, 90, (n, 2))
    dets = np.hstack([c - wh / 2, c + wh / 2, rng.random((n, 1))])
    return dets[np.argsort(-dets[:, 4])]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = lambda d: (d[2] - d[0] + 1) * (d[3] - d[1] + 1)  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def gpu_nms(dets: np.ndarray, kernel_ran: bool) -> list[int]:
    """The extension's algorithm: a kernel fills 64-bit suppression masks per (box, column block),
    then the host walks boxes in score order and accumulates the masks of the boxes it keeps."""
    n = len(dets)
    blocks = (n + BLOCK - 1) // BLOCK
    mask = np.zeros((n, blocks), dtype=np.uint64)  # device memory the kernel is meant to write
    if kernel_ran:
        for i in range(n):
            for col in range(blocks):
                bits = 0
                for k in range(col * BLOCK, min(n, (col + 1) * BLOCK)):
                    if k > i and _iou(dets[i], dets[k]) > THRESH:
                        bits |= 1 << (k - col * BLOCK)
                mask[i, col] = np.uint64(bits)
    removed = np.zeros(blocks, dtype=np.uint64)
    keep = []
    for i in range(n):
        if not int(removed[i // BLOCK]) >> (i % BLOCK) & 1:
            keep.append(i)
            removed |= mask[i]
    return keep


def cpu_nms(dets: np.ndarray) -> list[int]:
    """The CPU NMS: greedy, vectorised IoU against the remaining boxes."""
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        ovr = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[np.where(ovr <= THRESH)[0] + 1]
    return sorted(keep)


@case(
    id="faster_rcnn_gpu_nms_arch",
    title="gpu_nms compiled for a non-matching -arch leaves proposals unsuppressed (NaN losses)",
    issues=["https://github.com/endernewton/tf-faster-rcnn/issues/86"],
    labels={"stage": "environment", "manifestation": "reproducibility", "impact": "numerical_instability",
            "root_cause": "gpu_usage"},
    reference="the repository's CPU NMS (greedy, sequential) on the same proposals",
    reference_kind="implementation",
    defect_class="CUDA extension built for the wrong architecture",
    mechanism="environment/API",
    evidence={
        "reported": "Training the released networks produced NaN losses; a participant on a Titan Xp "
                    "(compute capability 6.1), with setup.py set to sm_61 as the README said, got NaNs "
                    "with gpu_nms and the expected losses with cpu_nms.",
        "diagnosis": "The maintainer said he builds with arch 52 on Pascal and non-Pascal GPUs alike, "
                     "pointing at the compiled NMS extension rather than the network.",
        "fix": "Rebuilding gpu_nms with sm_52 removed the NaNs (participant's comment after the "
               "maintainer's, mid-thread); switching to cpu_nms was the other workaround. The same "
               "participant's mAP stayed low, which the thread left open.",
        "model": "The bit-mask NMS is run with and without its kernel step (assumed: an unchecked failed "
                 "launch leaves the mask zero); without it every proposal survives, with it the kept "
                 "set equals the CPU NMS's. The NaN downstream of the proposals is not modelled.",
    },
)
class GpuNmsArch(ReproCase):
    def inputs(self, ctx: CaseContext) -> np.ndarray:
        return proposals(ctx.seed)

    def reference(self, ctx: CaseContext, dets: np.ndarray) -> list[int]:
        return cpu_nms(dets)

    def buggy(self, ctx: CaseContext, dets: np.ndarray) -> list[int]:
        return gpu_nms(dets, kernel_ran=False)

    def fixed(self, ctx: CaseContext, dets: np.ndarray) -> list[int]:
        return gpu_nms(dets, kernel_ran=True)

    def compare(self, ctx: CaseContext, reference: list[int], candidate: list[int], dets: np.ndarray) -> Comparison:
        if len(candidate) != len(reference):
            return Comparison(False, "deviate", f"{len(candidate)} proposals kept vs {len(reference)} by the CPU NMS",
                              {"kept": len(candidate), "reference_kept": len(reference)})
        return exact_check(candidate, reference, "kept proposal indices")
