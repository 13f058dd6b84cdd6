"""The tolerance rule is torch._dynamo.utils.same, checked against the installed torch."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch._dynamo.utils import same as dynamo_same

from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.tolerance import judge, same


def _quiet(*args, **kwargs):
    return None


DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
SHAPES = [(5,), (300,), (999,), (1000,), (2, 3, 1, 1), (40, 60)]
NOISE = [0.0, 1e-6, 1e-4, 1e-3, 1e-2, 0.1]
OPTIONS = [{}, {"use_larger_multiplier_for_smaller_tensor": True}, {"tol": 3e-2}, {"tol": 1e-3},
           {"force_max_multiplier": True}]


def _draw(gen, dtype, shape, noise):
    x64 = torch.randn(shape, dtype=torch.float64, generator=gen)
    res = (x64 + noise * torch.randn(shape, dtype=torch.float64, generator=gen)).to(dtype)
    return x64.to(dtype), res, x64


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_same_agrees_with_dynamo_on_random_inputs(dtype):
    gen = torch.Generator().manual_seed(DTYPES.index(dtype))
    decisions = []
    for shape, noise, options in itertools.product(SHAPES, NOISE, OPTIONS):
        ref, res, x64 = _draw(gen, dtype, shape, noise)
        ours = judge(ref, res, x64, **options)
        theirs = dynamo_same(ref, res, x64, log_error=_quiet, **options)
        assert ours.passed == theirs, (shape, noise, options, ours)
        decisions.append(theirs)
        # the reported minimum tolerance is the boundary of dynamo's own decision
        if 0 < ours.min_tol < math.inf:
            # exact to the rounding of allclose's own arithmetic (coarse in half precision)
            up, down = (1.001, 0.999) if dtype in (torch.float32, torch.float64) else (1.01, 0.97)
            assert dynamo_same(ref, res, x64, log_error=_quiet, **{**options, "tol": ours.min_tol * up})
            assert not dynamo_same(ref, res, x64, log_error=_quiet, **{**options, "tol": ours.min_tol * down})
    # the draw exercises both outcomes, so agreement is not agreement on a constant
    assert 0.2 < np.mean(decisions) < 0.95


def test_same_without_fp64_and_edge_cases_agree_with_dynamo():
    gen = torch.Generator().manual_seed(7)
    for dtype, noise in itertools.product([torch.float32, torch.float16], [0.0, 1e-5, 1e-3]):
        ref, res, _ = _draw(gen, dtype, (64,), noise)
        assert same(ref, res) == dynamo_same(ref, res, log_error=_quiet)
        assert same(ref, res, ignore_non_fp=True) == dynamo_same(ref, res, ignore_non_fp=True, log_error=_quiet)
    nan = torch.tensor([1.0, float("nan"), 2.0])
    for a, b, opts in [(nan, nan, {}), (nan, nan, {"equal_nan": True}), (nan, torch.tensor([1.0, 0.0, 2.0]), {}),
                       (torch.tensor([True, False]), torch.tensor([True, True]), {}),
                       (torch.ones(3), torch.ones(3, dtype=torch.float64), {}),
                       (torch.ones(3), torch.ones(3, dtype=torch.float16), {"exact_dtype": False}),
                       (torch.ones(50), torch.ones(50) * 1.001, {"cos_similarity": True}),
                       (-torch.ones(50), torch.ones(50), {"cos_similarity": True}),
                       (3, 3, {}), (3, 4, {}), ("a", "a", {})]:
        assert same(a, b, **opts) == dynamo_same(a, b, log_error=_quiet, **opts), (a, b, opts)


def test_containers_are_judged_element_by_element():
    a, b = torch.ones(10), torch.ones(10)
    worse = torch.ones(10) + 1
    assert same([a, (b, 2)], [a, (b, 2)]) == dynamo_same([a, (b, 2)], [a, (b, 2)], log_error=_quiet) is True
    assert same([a, b], [a, worse]) == dynamo_same([a, b], [a, worse], log_error=_quiet) is False
    assert same({"x": a, "y": b}, {"x": a, "y": worse}) is False
    assert same({"x": a}, {"x": a}) is True
    assert not same([a], [a, b])
    found = judge({"x": a}, {"z": a})
    assert not found.passed and found.rule == "keys"  # where dynamo raises, a reason instead


def test_multiplier_is_three_for_half_precision_and_small_tensors():
    gen = torch.Generator().manual_seed(1)
    big = torch.randn(4000, dtype=torch.float64, generator=gen)
    assert judge(big.float(), big.float() + 1, big).multiplier == 2.0
    assert judge(big.half(), big.half() + 1, big).multiplier == 3.0
    assert judge(big.bfloat16(), big.bfloat16() + 1, big).multiplier == 3.0
    small = big[:999]
    assert judge(small.float(), small.float() + 1, small).multiplier == 3.0
    assert judge(small[:8].float(), small[:8].float() + 1, small[:8],
                 use_larger_multiplier_for_smaller_tensor=True).multiplier == 10.0


def test_tolerance_check_reports_rule_and_minimum_tolerance():
    torch.manual_seed(0)
    x64 = torch.randn(2000, dtype=torch.float64)
    x32 = x64.float()
    ok = tolerance_check(x32 + 1e-7, x32, x64)
    assert ok.agrees and ok.figures["rule"] == "allclose"
    bad = tolerance_check(x32 + 1e-3, x32, x64)
    assert not bad.agrees and bad.status == "deviate" and bad.figures["rule"] == "rmse"
    f = bad.figures
    assert f["multiplier"] == 2.0
    # the minimum tolerance is the smaller of allclose's and the RMSE rule's boundary
    by_rmse = 10 * (f["rmse_vs_fp64"] - 2 * f["reference_rmse_vs_fp64"])
    assert f["min_tolerance"] == pytest.approx(min(by_rmse, f["min_atol"] / (1 + x32.abs().min().item())), rel=0.05)
    assert tolerance_check(x32 + 1e-3, x32, x64, tol=f["min_tolerance"] * 1.01).agrees
    # no float64 run: allclose alone decides, and says so
    alone = tolerance_check(x32 + 1e-3, x32)
    assert not alone.agrees and "no float64 reference" in alone.detail
    # a half-precision port of a float32 reference: the reference is cast, multiplier 3
    half = tolerance_check(x64.half(), x32, x64)
    assert half.agrees and half.figures["multiplier"] in (None, 3.0)
