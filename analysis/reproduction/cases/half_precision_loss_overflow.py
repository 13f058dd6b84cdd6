"""Non-finite loss from a half-precision sum over a very large image.

The thread trains at an image size of about 2500 pixels; the objectness loss, summed over every
grid cell, reaches tens of thousands (5e4 in the log) and then training stops on a non-finite
loss. float16 tops out at 65504, so a loss reduced in float16 overflows to inf at that scale
while bfloat16 (8 exponent bits) does not. The fix computes the loss reduction in float32, as
autocast does for reductions. Runs for the reduced dtypes requested with --dtype (default
fp16 and bf16) on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import nonfinite_check

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
RELATIVE_TOLERANCE = 2e-2


def reduced(ctx: CaseContext) -> list[str]:
    return [d for d in ctx.dtypes if d in DTYPES] or ["fp16", "bf16"]


def objectness_logits(ctx: CaseContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an untrained head at ~2500 px (3 anchors × 80² cells × batch 4) and targets."""
    g = torch.Generator().manual_seed(ctx.seed)
    logits = torch.randn(4, 3, 80, 80, generator=g) * 3 + 2.0
    targets = (torch.rand(4, 3, 80, 80, generator=g) < 0.01).float()
    return logits, targets


def loss(logits: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype, accumulate: torch.dtype) -> torch.Tensor:
    per_cell = F.binary_cross_entropy_with_logits(logits.to(dtype), targets.to(dtype), reduction="none")
    return per_cell.to(accumulate).sum()


@case(
    id="half_precision_loss_overflow",
    title="Objectness loss summed in float16 overflows to inf at large image sizes",
    issues=["https://github.com/ultralytics/yolov3/issues/842"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "numerical_instability",
            "root_cause": "low_frequency"},
    reference="the same loss in float64",
    reference_kind="implementation",
    needs_cuda=True,
    defect_class="reduced-precision overflow",
)
class HalfPrecisionLossOverflow(ReproCase):
    def inputs(self, ctx: CaseContext) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.require_cuda()
        return tuple(t.to(ctx.device) for t in objectness_logits(ctx))

    def reference(self, ctx: CaseContext, data: tuple) -> torch.Tensor:
        return torch.stack([loss(*data, torch.float64, torch.float64) for _ in reduced(ctx)]).cpu()

    def buggy(self, ctx: CaseContext, data: tuple) -> torch.Tensor:
        return torch.stack([loss(*data, DTYPES[d], DTYPES[d]).double() for d in reduced(ctx)]).cpu()

    def fixed(self, ctx: CaseContext, data: tuple) -> torch.Tensor:
        return torch.stack([loss(*data, DTYPES[d], torch.float32).double() for d in reduced(ctx)]).cpu()

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, data: tuple) -> Comparison:
        finite = nonfinite_check(candidate)
        per_dtype = {d: float(v) for d, v in zip(reduced(ctx), candidate)}
        finite.figures["loss"] = per_dtype
        finite.figures["reference"] = float(reference[0])
        if not finite.agrees:
            finite.detail += f" ({per_dtype})"
            return finite
        rel = ((candidate - reference).abs() / reference.abs()).max().item()
        agrees = rel <= RELATIVE_TOLERANCE
        return Comparison(agrees, "agree" if agrees else "deviate",
                          f"max relative error {rel:.2e} vs float64 ({per_dtype})", finite.figures)
