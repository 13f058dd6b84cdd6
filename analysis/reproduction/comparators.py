"""Comparators: element statistics, dynamo's tolerance rule, and metric comparisons.

A fixed absolute tolerance is wrong for differential testing: float32 itself is off from the
exact result by an amount that depends on the model. :func:`tolerance_check` applies
``torch._dynamo``'s accuracy rule (:mod:`.tolerance`): allclose first, then the candidate's
error against a float64 run of the reference within ``k`` times the reference's own error.
The smallest tolerance that would have passed is reported too, as Polygraphy does, so a near
miss is visible as a number rather than a boolean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.reproduction.case import Comparison
from analysis.reproduction.tolerance import DEFAULT_TOL, judge

def as_array(value: Any) -> np.ndarray:
    """Any tensor-like as a float64 numpy array (detached, on the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().to("cpu")
        if value.dtype.is_floating_point:
            value = value.double()
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def element_stats(candidate: Any, reference: Any, k: int = 5) -> dict[str, float]:
    """Max/mean/median absolute and relative error, cosine, rmse and top-k agreement.

    Top-k agreement compares the index sets of the k largest values along the last axis (the
    class axis for logits), which is what a user of a classifier notices first.
    """
    a, b = as_array(candidate), as_array(reference)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs reference {b.shape}")
    finite = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a - b)[finite]
    rel = diff / np.maximum(np.abs(b[finite]), 1e-12)
    af, bf = a[finite].ravel(), b[finite].ravel()
    denom = np.linalg.norm(af) * np.linalg.norm(bf)
    stats = {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "median_abs": float(np.median(diff)) if diff.size else 0.0,
        "max_rel": float(rel.max()) if rel.size else 0.0,
        "mean_rel": float(rel.mean()) if rel.size else 0.0,
        "median_rel": float(np.median(rel)) if rel.size else 0.0,
        "cosine": float(af @ bf / denom) if denom > 0 else float(np.array_equal(af, bf)),
        "rmse": float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0,
        "nonfinite": int(a.size - np.isfinite(a).sum()),
    }
    if a.ndim >= 1 and a.shape[-1] > k:
        stats[f"top{k}_agreement"] = topk_agreement(a, b, k)
    return stats


def topk_agreement(candidate: Any, reference: Any, k: int = 5) -> float:
    """Mean fraction of shared indices among the k largest values along the last axis."""
    a, b = as_array(candidate), as_array(reference)
    ta = np.argsort(-a.reshape(-1, a.shape[-1]), axis=1)[:, :k]
    tb = np.argsort(-b.reshape(-1, b.shape[-1]), axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb)]))


def tolerance_check(candidate: Any, reference: Any, reference64: Any = None, tol: float = DEFAULT_TOL,
                    exact_dtype: bool = False, **options: Any) -> Comparison:
    """``torch._dynamo.utils.same(reference, candidate, reference64)`` (see :mod:`.tolerance`):
    allclose at ``tol`` first, then, given a float64 run of the reference, the RMSE rule with
    dynamo's multiplier. ``exact_dtype`` is off by default here because a port may run in
    another precision than its reference (the reference is cast to the candidate's dtype, as
    dynamo does). Figures carry the element statistics, both RMSEs, the multiplier and
    ``min_tolerance``, the smallest ``tol`` under which the check would have passed.

    NaN/Inf in the candidate where the reference is finite is status ``nonfinite``. Tuple, list
    and dict outputs are checked output by output (:func:`_outputs_check`).
    """
    import torch

    if isinstance(reference, (list, tuple, dict)):
        return _outputs_check(candidate, reference, reference64, tol=tol, exact_dtype=exact_dtype, **options)
    cand, ref = _as_tensor(candidate), _as_tensor(reference)
    ref64 = _as_tensor(reference64) if reference64 is not None else None
    if tuple(cand.shape) != tuple(ref.shape):
        return Comparison(False, "shape_mismatch", f"shape {tuple(cand.shape)} vs reference {tuple(ref.shape)}")
    verdict = judge(ref, cand, ref64, tol=tol, exact_dtype=exact_dtype, **options)
    a = as_array(cand)
    bad = int((~np.isfinite(a) & np.isfinite(as_array(ref64 if ref64 is not None else ref))).sum())
    figures = {**element_stats(a, ref64 if ref64 is not None and ref64.dtype == torch.float64 else ref),
               **verdict.figures(), **min_tolerances(a, ref)}
    if bad and not verdict.passed:
        return Comparison(False, "nonfinite", f"{bad} of {a.size} values NaN/Inf where the reference is finite",
                          figures)
    detail = verdict.detail if verdict.min_tol is None else f"{verdict.detail}; passes from tol {verdict.min_tol:.3g}"
    return Comparison(verdict.passed, "agree" if verdict.passed else "deviate", detail, figures)


def output_leaves(value: Any, prefix: str = "output") -> dict[str, Any]:
    """A nested tuple/list/dict output as ``{"output/0/boxes": tensor}`` (dict keys sorted)."""
    if isinstance(value, dict):
        return {k: v for key in sorted(value, key=str) for k, v in output_leaves(value[key], f"{prefix}/{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in output_leaves(item, f"{prefix}/{i}").items()}
    return {prefix: value}


def _outputs_check(candidate: Any, reference: Any, reference64: Any, **options: Any) -> Comparison:
    """Each output of a container checked by :func:`tolerance_check`: agree when all of them agree;
    the status and detail are the first disagreeing output's, the figures are per output."""
    cand, ref = output_leaves(candidate), output_leaves(reference)
    ref64 = output_leaves(reference64) if reference64 is not None else {}
    if set(cand) != set(ref):
        return Comparison(False, "shape_mismatch", f"outputs {', '.join(cand)} vs reference {', '.join(ref)}")
    parts = {name: tolerance_check(cand[name], ref[name], ref64.get(name), **options) for name in ref}
    failed = [(name, c) for name, c in parts.items() if not c.agrees]
    tols = [c.figures.get("min_tolerance") for c in parts.values()]
    figures = {"outputs": {name: c.figures for name, c in parts.items()},
               "min_tolerance": max(tols) if tols and None not in tols else None}
    if failed:
        name, first = failed[0]
        return Comparison(False, first.status, f"{len(parts) - len(failed)} of {len(parts)} outputs agree; "
                                               f"{name}: {first.detail}", figures)
    return Comparison(True, "agree", f"all {len(parts)} outputs agree", figures)


def _as_tensor(value: Any) -> Any:
    import torch

    return value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def min_tolerances(candidate: Any, reference: Any) -> dict[str, float]:
    """The smallest atol (with rtol 0) and rtol (with atol 0) under which allclose passes."""
    a, b = as_array(candidate), as_array(reference)
    diff = np.abs(a - b)
    return {"min_atol": float(diff.max()) if diff.size else 0.0,
            "min_rtol": float((diff / np.maximum(np.abs(b), 1e-12)).max()) if diff.size else 0.0}


def nonfinite_check(candidate: Any) -> Comparison:
    """A verdict of its own for NaN/Inf: agree when every value is finite."""
    a = as_array(candidate)
    bad = int(a.size - np.isfinite(a).sum())
    if bad:
        return Comparison(False, "nonfinite", f"{bad} of {a.size} values NaN/Inf", {"nonfinite": bad})
    return Comparison(True, "agree", "all values finite", {"nonfinite": 0})


def exact_check(candidate: Any, reference: Any, what: str = "values") -> Comparison:
    """Bit-exact agreement, for discrete outputs (labels, keys, learning rates)."""
    a, b = as_array(candidate), as_array(reference)
    if a.shape != b.shape:
        return Comparison(False, "shape_mismatch", f"{what}: shape {a.shape} vs {b.shape}")
    differ = int((a != b).sum())
    if differ:
        return Comparison(False, "deviate", f"{differ} of {a.size} {what} differ (max |Δ| {np.abs(a - b).max():.3g})",
                          {"differing": differ, "max_abs": float(np.abs(a - b).max())})
    return Comparison(True, "agree", f"all {a.size} {what} identical", {"differing": 0})


# ----------------------------------------------------------------------------- metrics


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (continuous coordinates, no +1 pixel convention)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def match_detections(
    detections: Sequence[dict[str, np.ndarray]], ground_truth: Sequence[np.ndarray], iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy score-ordered matching per image (one class): scores, true-positive flags, #gt."""
    scores, tps = [], []
    for det, gt in zip(detections, ground_truth):
        order = np.argsort(-det["scores"], kind="stable")
        boxes, sc = det["boxes"][order], det["scores"][order]
        taken = np.zeros(len(gt), bool)
        ious = box_iou(boxes, gt) if len(gt) else np.zeros((len(boxes), 0))
        for i in range(len(boxes)):
            j = int(np.argmax(ious[i])) if ious.shape[1] else -1
            hit = j >= 0 and ious[i, j] >= iou and not taken[j]
            if hit:
                taken[j] = True
            scores.append(sc[i])
            tps.append(hit)
    return np.asarray(scores), np.asarray(tps, bool), int(sum(len(g) for g in ground_truth))


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "coco101") -> float:
    """AP from a PR curve: ``coco101`` (101-point interpolation, COCO), ``voc11`` (VOC2007) or
    ``continuous`` (area under the monotone envelope, VOC2010+)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.flip(np.maximum.accumulate(np.flip(p)))  # precision envelope
    if method == "continuous":
        idx = np.where(r[1:] != r[:-1])[0]
        return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))
    points = {"coco101": np.linspace(0, 1, 101), "voc11": np.linspace(0, 1, 11)}.get(method)
    if points is None:
        raise ValueError(f"unknown AP method {method!r} (coco101, voc11, continuous)")
    idx = np.searchsorted(r, points, side="left")
    return float(np.mean([p[i] if i < len(p) else 0.0 for i in idx]))


def detection_ap(
    detections: Sequence[dict[str, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    iou: float = 0.5,
    method: str = "coco101",
    conf_thres: float = 0.0,
) -> float:
    """AP of one class's detections; ``conf_thres`` drops low-score detections first, which
    truncates the PR curve (an evaluator setting that changes the number, not the model)."""
    kept = [{"boxes": d["boxes"][d["scores"] >= conf_thres], "scores": d["scores"][d["scores"] >= conf_thres]}
            for d in detections]
    scores, tps, n_gt = match_detections(kept, ground_truth, iou)
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(tps[order])
    fp = np.cumsum(~tps[order])
    recall = tp / max(n_gt, 1)
    precision = tp / np.maximum(tp + fp, 1e-12)
    return average_precision(recall, precision, method)


def metric_check(candidate: float, reference: float, tol: float, name: str = "metric") -> Comparison:
    """Two evaluators' numbers on the same predictions agree within ``tol`` (absolute)."""
    delta = candidate - reference
    agrees = abs(delta) <= tol
    return Comparison(agrees, "agree" if agrees else "deviate",
                      f"{name} {candidate:.4f} vs reference {reference:.4f} (Δ {delta:+.4f}, tol {tol:g})",
                      {"candidate": candidate, "reference": reference, "delta": delta})


def accuracy(logits: Any, labels: Any) -> float:
    """Top-1 accuracy, for metric-level comparisons of classifiers."""
    a, y = as_array(logits), as_array(labels)
    return float((a.argmax(axis=-1) == y).mean())
