"""The CUDA-only cases: skipped with a reason on the CPU, and their bodies checked on the CPU.

There is no GPU where these tests usually run, so the case logic is exercised directly with a
CPU context (the kernels are deterministic there and float16 math is emulated), and the skip
path is checked through the runner.
"""

import pytest
import torch

from analysis.reproduction.case import CaseContext, SkipCase
from analysis.reproduction.cases.cudnn_nondeterminism import CudnnNondeterminism, repeats
from analysis.reproduction.cases.half_precision_loss_overflow import HalfPrecisionLossOverflow, objectness_logits
from analysis.reproduction.runner import discover, run_cases, select


def test_cuda_cases_skip_on_cpu_with_reason():
    entries = select(discover(), ["cudnn_nondeterminism", "half_precision_loss_overflow"], {})
    report = run_cases(entries, device="cpu", progress=False)
    assert [r["verdict"] for r in report["results"]] == ["skipped", "skipped"]
    assert all(d["reason"] == "needs CUDA (device resolved to cpu)" for d in report["details"].values())


def test_require_cuda_raises_skip():
    with pytest.raises(SkipCase, match="needs CUDA"):
        CudnnNondeterminism().inputs(CaseContext(device="cpu"))


def test_half_precision_overflow_logic_on_cpu():
    ctx = CaseContext(device="cpu", dtypes=("fp32", "fp16", "bf16"))
    case = HalfPrecisionLossOverflow()
    data = objectness_logits(ctx)
    reference = case.reference(ctx, data)
    assert reference[0] > 65504  # the fp16 maximum: the sum cannot be represented in float16
    buggy = case.compare(ctx, reference, case.buggy(ctx, data), data)
    assert buggy.status == "nonfinite" and buggy.figures["loss"]["bf16"] != float("inf")
    fixed = case.compare(ctx, reference, case.fixed(ctx, data), data)
    assert fixed.agrees, fixed.detail


def test_nondeterminism_check_logic_on_cpu():
    ctx = CaseContext(device="cpu", repeat=2)
    stacked = repeats(ctx, deterministic=True)
    result = CudnnNondeterminism().compare(ctx, None, stacked, None)
    assert result.agrees and result.figures["max_spread"] == 0.0
    perturbed = stacked.clone()
    perturbed[1, 0] += 1e-6
    assert not CudnnNondeterminism().compare(ctx, None, perturbed, None).agrees
    assert not torch.are_deterministic_algorithms_enabled()  # the case restores global state
