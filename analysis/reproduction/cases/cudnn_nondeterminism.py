"""Run-to-run differences on the GPU from nondeterministic kernels.

With ``cudnn.benchmark`` on and deterministic algorithms off, cuDNN may pick a different
convolution algorithm per run and atomic-add kernels (scatter_add, index_add, the backward of
many ops) sum in a different order each time, so the same seeded step gives different gradients
and a training run cannot be repeated exactly. The check runs the same step K times (--repeat)
and measures the spread; the fix turns on deterministic algorithms (and cudnn.deterministic,
benchmark off, a fixed cuBLAS workspace). CUDA only: on the CPU these kernels are deterministic.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check


def one_step(ctx: CaseContext, deterministic: bool) -> torch.Tensor:
    """Gradients of one seeded step: conv backward plus a colliding scatter_add."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    try:
        torch.manual_seed(ctx.seed)
        model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)).to(ctx.device)
        x = torch.randn(8, 16, 64, 64, device=ctx.device)
        index = torch.randint(0, 64, (8 * 32 * 64 * 64,), device=ctx.device)
        features = model(x)
        pooled = torch.zeros(64, device=ctx.device).scatter_add(0, index, features.flatten())
        (pooled.square().sum() + features.mean()).backward()
        grads = [p.grad.flatten() for p in model.parameters()]
        return torch.cat([*grads, pooled.detach()]).cpu().double()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = False


def repeats(ctx: CaseContext, deterministic: bool) -> torch.Tensor:
    """K runs stacked; the comparison asks whether all equal the first."""
    return torch.stack([one_step(ctx, deterministic) for _ in range(ctx.repeat)])


@case(
    id="cudnn_nondeterminism",
    title="Same seeded step, different gradients across repeats with cudnn.benchmark and atomics",
    issues=["https://github.com/endernewton/tf-faster-rcnn/issues/86"],
    labels={"stage": "environment", "manifestation": "reproducibility", "impact": "numerical_instability",
            "root_cause": "gpu_usage"},
    reference="the first of K repeats (a repeatable step equals it bit for bit)",
    reference_kind="recorded",
    needs_cuda=True,
    defect_class="GPU nondeterminism",
)
class CudnnNondeterminism(ReproCase):
    def inputs(self, ctx: CaseContext) -> None:
        ctx.require_cuda()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    def reference(self, ctx: CaseContext, inputs: None) -> None:
        return None

    def buggy(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return repeats(ctx, deterministic=False)

    def fixed(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return repeats(ctx, deterministic=True)

    def compare(self, ctx: CaseContext, reference: None, candidate: torch.Tensor, inputs: None) -> Comparison:
        first = candidate[:1].expand_as(candidate)
        result = exact_check(candidate, first, f"values over {ctx.repeat} repeats")
        result.figures["max_spread"] = float((candidate.max(0).values - candidate.min(0).values).max())
        return result
