"""Comparators: statistics, the fp64-anchored tolerance rule, NaN handling, AP integrations."""

import numpy as np
import pytest
import torch

from analysis.reproduction.comparators import (
    average_precision,
    detection_ap,
    element_stats,
    exact_check,
    metric_check,
    min_tolerances,
    nonfinite_check,
    tolerance_check,
    topk_agreement,
)


def test_element_stats_values():
    ref = np.array([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]])
    cand = ref + np.array([[0.5, 0, 0, 0, 0, -1.0]])
    stats = element_stats(cand, ref)
    assert stats["max_abs"] == 1.0
    assert stats["mean_abs"] == pytest.approx(1.5 / 6)
    assert stats["median_abs"] == 0.0
    assert stats["max_rel"] == 0.5
    assert 0.99 < stats["cosine"] < 1.0
    assert stats["top5_agreement"] == 1.0


def test_topk_agreement_counts_shared_indices():
    a = np.array([[5, 4, 3, 2, 1, 0]], float)
    b = np.array([[0, 1, 2, 3, 4, 5]], float)
    assert topk_agreement(a, b, k=2) == 0.0
    assert topk_agreement(a, a, k=3) == 1.0


def test_tolerance_rule_scales_with_reference_error():
    torch.manual_seed(0)
    x64 = torch.randn(1000, dtype=torch.float64)
    x32 = x64.float()
    ok = tolerance_check(x32 + 1e-7, x32, x64)
    assert ok.agrees and ok.status == "agree"
    bad = tolerance_check(x32 + 1e-3, x32, x64)
    assert not bad.agrees and bad.status == "deviate"
    # the smallest tolerance that would have passed is reported, and passes
    assert tolerance_check(x32 + 1e-3, x32, x64, tol=bad.figures["min_tolerance"] * 1.001).agrees
    assert bad.figures["min_atol"] == pytest.approx(1e-3, rel=1e-2)


def test_nan_is_its_own_verdict():
    ref = torch.ones(4)
    cand = torch.tensor([1.0, float("nan"), 1.0, float("inf")])
    result = tolerance_check(cand, ref, ref.double())
    assert result.status == "nonfinite" and "2 of 4" in result.detail
    assert nonfinite_check(cand).status == "nonfinite"
    assert nonfinite_check(ref).agrees


def test_shape_mismatch_is_reported():
    result = tolerance_check(torch.ones(3), torch.ones(4), torch.ones(4))
    assert result.status == "shape_mismatch"
    assert exact_check(torch.ones(2), torch.ones(3)).status == "shape_mismatch"


def test_min_tolerances():
    tol = min_tolerances(np.array([1.0, 2.2]), np.array([1.0, 2.0]))
    assert tol["min_atol"] == pytest.approx(0.2)
    assert tol["min_rtol"] == pytest.approx(0.1)


def test_average_precision_integrations():
    recall = np.array([0.5, 1.0])
    precision = np.array([1.0, 0.5])
    assert average_precision(recall, precision, "continuous") == pytest.approx(0.75)
    # 101 points: recall 0..0.5 (51 points) at precision 1, 0.51..1 (50 points) at 0.5
    assert average_precision(recall, precision, "coco101") == pytest.approx((51 + 25) / 101)
    assert average_precision(recall, precision, "voc11") == pytest.approx((6 + 2.5) / 11)
    with pytest.raises(ValueError):
        average_precision(recall, precision, "bogus")


def test_detection_ap_perfect_and_thresholded():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)]
    det = [{"boxes": gt[0].copy(), "scores": np.array([0.9, 0.2])}]
    assert detection_ap(det, gt, method="continuous") == pytest.approx(1.0)
    # a confidence threshold drops the second true positive: recall stops at 0.5
    assert detection_ap(det, gt, method="continuous", conf_thres=0.5) == pytest.approx(0.5)


def test_metric_check():
    assert metric_check(0.50, 0.505, 0.01).agrees
    result = metric_check(0.40, 0.50, 0.01, "mAP")
    assert not result.agrees and result.figures["delta"] == pytest.approx(-0.1)


def test_accuracy_from_logits():
    from analysis.reproduction.comparators import accuracy

    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, [1, 0, 0]) == pytest.approx(2 / 3)


def test_dict_and_tuple_outputs_are_checked_output_by_output():
    torch.manual_seed(0)
    ref64 = {"boxes": torch.randn(5, 4, dtype=torch.float64), "scores": (torch.rand(5, dtype=torch.float64),)}
    ref = {"boxes": ref64["boxes"].float(), "scores": (ref64["scores"][0].float(),)}
    same = tolerance_check({"boxes": ref["boxes"].clone(), "scores": (ref["scores"][0].clone(),)}, ref, ref64)
    assert same.agrees and same.status == "agree"
    assert set(same.figures["outputs"]) == {"output/boxes", "output/scores/0"}
    shifted = {"boxes": ref["boxes"], "scores": (ref["scores"][0] + 0.01,)}
    found = tolerance_check(shifted, ref, ref64)
    assert not found.agrees and found.status == "deviate"
    assert found.detail.startswith("1 of 2 outputs agree; output/scores/0: rmse vs fp64")
    assert found.figures["min_tolerance"] == found.figures["outputs"]["output/scores/0"]["min_tolerance"] > 0.005
    nan = tolerance_check({"boxes": ref["boxes"] * float("nan"), "scores": ref["scores"]}, ref, ref64)
    assert nan.status == "nonfinite"
    missing = tolerance_check({"boxes": ref["boxes"]}, ref, ref64)
    assert not missing.agrees and missing.status == "shape_mismatch"
