"""The accuracy rule of ``torch._dynamo.utils.same``, reimplemented so every step is reported.

The rule, as the installed torch states it (torch/_dynamo/utils.py), for a candidate ``res``
against a reference ``ref`` run in the same precision and, optionally, a float64 run ``fp64_ref``:

1. dtypes must be equal (``exact_dtype``; otherwise ``ref`` is cast to ``res``'s dtype), bool
   tensors are compared as uint8 with ``allclose``;
2. ``allclose(ref, res, atol=tol, rtol=tol)`` passes at once (default ``tol`` 1e-4);
3. only when ``fp64_ref`` is float64: ``rmse(fp64_ref, res) <= k * rmse(fp64_ref, ref) + tol / 10``
   where k is 3 for a float16/bfloat16 candidate, 3 for a tensor of fewer than 1000 elements,
   for a 4-D tensor whose last two dimensions are 1, or when ``tol >= 0.02``, else 2; with
   ``use_larger_multiplier_for_smaller_tensor`` k is 10 up to 10 elements and 8 up to 500;
   ``force_max_multiplier`` makes it 10. A NaN-free candidate that matches the fp64 run within
   0.04 passes even when the reference has NaNs; with ``equal_nan`` two NaN errors pass;
4. without a float64 reference a failed ``allclose`` is a failure (``ignore_non_fp`` passes it).

:func:`judge` returns that decision with the figures behind it, including the smallest ``tol``
under which the same call would have passed, so a near miss is a number, not a boolean.
Containers (list, tuple, dict) are judged element by element, as dynamo does; where dynamo
raises (a dict with other keys, a container against a non-container) ``judge`` fails with the
reason instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOL = 1e-4
LARGE_TOL = 2e-2  # tol at or above which dynamo treats a benchmark as "higher tolerance" (k = 3)
NAN_LOOSE_TOL = 4e-2


@dataclass
class Judgement:
    """One ``same()`` decision: whether it passed, by which rule, and the figures."""

    passed: bool
    rule: str  # allclose | rmse | dtype | shape | length | keys | type | cosine | equal | no_fp64
    detail: str
    res_error: float | None = None
    ref_error: float | None = None
    multiplier: float | None = None
    min_tol: float | None = None  # the smallest tol under which this call would pass (inf: none)
    parts: list[Judgement] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {"rule": self.rule, "rmse_vs_fp64": self.res_error, "reference_rmse_vs_fp64": self.ref_error,
                "multiplier": self.multiplier, "min_tolerance": self.min_tol}


def _tensor(value: Any) -> Any:
    import torch

    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def _rmse(a: Any, b: Any) -> float:
    import torch

    return float(torch.sqrt(torch.mean(torch.square(a - b))))


def multiplier(res: Any, fp64_ref: Any, ref: Any, tol: float, larger_for_small: bool = False,
               force_max: bool = False) -> float:
    """dynamo's k for the RMSE rule (see the module docstring)."""
    import torch

    if force_max:
        return 10.0
    k = 3.0 if res.dtype in (torch.float16, torch.bfloat16) else 2.0
    n = fp64_ref.numel()
    if larger_for_small and n <= 10:
        return 10.0
    if larger_for_small and n <= 500:
        return 8.0
    if n < 1000 or (ref.ndim == 4 and ref.shape[-1] == ref.shape[-2] == 1) or tol >= LARGE_TOL:
        return 3.0
    return k


def _min_allclose_tol(ref: Any, res: Any, equal_nan: bool) -> float:
    """Smallest t with |ref - res| <= t + t·|res| everywhere (allclose with atol = rtol = t)."""

    a, b = ref.double(), res.double()
    both_nan = a.isnan() & b.isnan()
    if (a.isnan() ^ b.isnan()).any() or (both_nan.any() and not equal_nan):
        return math.inf
    same_inf = a.isinf() & (a == b)
    if ((a.isinf() | b.isinf()) & ~same_inf).any():
        return math.inf
    ok = ~(both_nan | same_inf)
    if not ok.any():
        return 0.0
    return float(((a - b).abs() / (1 + b.abs()))[ok].max())


def _judge_tensor(ref: Any, res: Any, fp64_ref: Any, tol: float, equal_nan: bool, exact_dtype: bool,
                  cos_similarity: bool, larger_for_small: bool, force_max: bool, ignore_non_fp: bool) -> Judgement:
    import torch

    ref, res, fp64_ref = _tensor(ref), _tensor(res), _tensor(fp64_ref)
    if ref.is_sparse:
        ref, res = ref.to_dense(), res.to_dense()
    if exact_dtype and ref.dtype != res.dtype:
        return Judgement(False, "dtype", f"dtype {res.dtype} vs reference {ref.dtype}", min_tol=math.inf)
    if tuple(ref.shape) != tuple(res.shape):
        return Judgement(False, "shape", f"shape {tuple(res.shape)} vs reference {tuple(ref.shape)}",
                         min_tol=math.inf)
    if ref.dtype == torch.bool and exact_dtype:
        if ignore_non_fp:
            return Judgement(True, "equal", "bool tensors ignored (ignore_non_fp)", min_tol=0.0)
        t = _min_allclose_tol(ref.to(torch.uint8), res.to(torch.uint8), equal_nan)
        ok = torch.allclose(ref.to(torch.uint8), res.to(torch.uint8), atol=tol, rtol=tol, equal_nan=equal_nan)
        return Judgement(bool(ok), "allclose", f"bool as uint8, {int((ref != res).sum())} differ", min_tol=t)
    if cos_similarity:
        a, b = ref.flatten().to(torch.float32), res.flatten().to(torch.float32)
        if torch.allclose(a, b, atol=tol, rtol=tol, equal_nan=True):
            return Judgement(True, "allclose", f"allclose at tol {tol:g}")
        score = float(torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-6))
        return Judgement(score >= 0.99, "cosine", f"cosine similarity {score:.4f} (pass ≥ 0.99)")
    if not exact_dtype:
        ref = ref.to(res.dtype)
    has_fp64 = fp64_ref.dtype == torch.float64
    errors = (_rmse(fp64_ref, ref), _rmse(fp64_ref, res)) if has_fp64 else None
    t_min = _min_allclose_tol(ref, res, equal_nan)
    if errors is not None:
        t_min = min(t_min, _min_rmse_tol(*errors, res, fp64_ref, ref, equal_nan, larger_for_small, force_max))
    if torch.allclose(ref, res, atol=tol, rtol=tol, equal_nan=equal_nan):
        return Judgement(True, "allclose", f"allclose at atol = rtol = {tol:g}", min_tol=t_min)
    if errors is None:
        if ignore_non_fp:
            return Judgement(True, "no_fp64", "no float64 reference; ignored (ignore_non_fp)", min_tol=t_min)
        return Judgement(False, "allclose", f"not allclose at atol = rtol = {tol:g} and no float64 reference "
                                            "for the RMSE rule", min_tol=t_min)
    if (not fp64_ref.isnan().any() and not res.isnan().any() and ref.isnan().any()
            and torch.allclose(fp64_ref.to(res.dtype), res, atol=NAN_LOOSE_TOL, rtol=NAN_LOOSE_TOL,
                               equal_nan=equal_nan)):
        return Judgement(True, "rmse", "reference has NaNs, candidate matches the float64 run within 0.04",
                         min_tol=0.0)
    ref_error, res_error = errors
    k = multiplier(res, fp64_ref, ref, tol, larger_for_small, force_max)
    passed = res_error <= k * ref_error + tol / 10.0
    if not passed and equal_nan and math.isnan(ref_error) and math.isnan(res_error):
        passed = True
    sign = "≤" if passed else ">"
    return Judgement(passed, "rmse", f"rmse vs fp64 {res_error:.3g} {sign} {k:g}·{ref_error:.3g} + {tol / 10:g}",
                     res_error, ref_error, k, t_min)


def _min_rmse_tol(ref_error: float, res_error: float, res: Any, fp64_ref: Any, ref: Any, equal_nan: bool,
                  larger_for_small: bool, force_max: bool) -> float:
    """Smallest tol passing the RMSE rule; k can only grow once tol reaches LARGE_TOL."""
    if math.isnan(res_error) or math.isnan(ref_error):
        return 0.0 if (equal_nan and math.isnan(res_error) and math.isnan(ref_error)) else math.inf
    k_small = multiplier(res, fp64_ref, ref, 0.0, larger_for_small, force_max)
    t = max(0.0, 10.0 * (res_error - k_small * ref_error))
    if t >= LARGE_TOL:
        k_large = multiplier(res, fp64_ref, ref, LARGE_TOL, larger_for_small, force_max)
        t = max(LARGE_TOL, 10.0 * (res_error - k_large * ref_error))
    return t


def _combine(parts: list[Judgement], what: str) -> Judgement:
    failed = [p for p in parts if not p.passed]
    tols = [p.min_tol for p in parts if p.min_tol is not None]
    first = failed[0] if failed else (parts[0] if parts else None)
    detail = f"{len(parts) - len(failed)} of {len(parts)} {what} pass" + (f"; first failure: {failed[0].detail}"
                                                                         if failed else "")
    return Judgement(not failed, first.rule if first else "equal", detail,
                     first.res_error if first else None, first.ref_error if first else None,
                     first.multiplier if first else None, max(tols) if tols and len(tols) == len(parts) else None,
                     parts)


def judge(ref: Any, res: Any, fp64_ref: Any = None, *, tol: float = DEFAULT_TOL, equal_nan: bool = False,
          exact_dtype: bool = True, cos_similarity: bool = False,
          use_larger_multiplier_for_smaller_tensor: bool = False, force_max_multiplier: bool = False,
          ignore_non_fp: bool = False) -> Judgement:
    """Judge ``res`` against ``ref`` (and the float64 run ``fp64_ref``) as dynamo's ``same()``."""
    import numpy as np
    import torch

    if fp64_ref is None:
        fp64_ref = ref
    options = dict(tol=tol, equal_nan=equal_nan, exact_dtype=exact_dtype, cos_similarity=cos_similarity,
                   use_larger_multiplier_for_smaller_tensor=use_larger_multiplier_for_smaller_tensor,
                   force_max_multiplier=force_max_multiplier, ignore_non_fp=ignore_non_fp)
    if isinstance(ref, (list, tuple, torch.Size)):
        if not isinstance(res, (list, tuple)):
            return Judgement(False, "type", f"{type(res).__name__} vs reference {type(ref).__name__}", min_tol=math.inf)
        if len(ref) != len(res):
            return Judgement(False, "length", f"{len(res)} outputs vs reference {len(ref)}", min_tol=math.inf)
        return _combine([judge(a, b, c, **options) for a, b, c in zip(ref, res, fp64_ref)], "outputs")
    if isinstance(ref, dict):
        if not isinstance(res, dict) or set(ref) != set(res):
            got = sorted(res) if isinstance(res, dict) else type(res).__name__
            return Judgement(False, "keys", f"keys {got} vs reference {sorted(ref)}", min_tol=math.inf)
        return _combine([judge(ref[k], res[k], fp64_ref[k], **options) for k in sorted(ref)], "keys")
    if isinstance(ref, (torch.Tensor, float, np.ndarray)):
        if isinstance(ref, np.ndarray) and type(res) is not np.ndarray:
            return Judgement(False, "type", f"{type(res).__name__} vs reference ndarray", min_tol=math.inf)
        return _judge_tensor(ref, res, fp64_ref, tol, equal_nan, exact_dtype, cos_similarity,
                             use_larger_multiplier_for_smaller_tensor, force_max_multiplier, ignore_non_fp)
    if ignore_non_fp:
        return Judgement(True, "equal", "non-floating value ignored (ignore_non_fp)", min_tol=0.0)
    equal = type(ref) is type(res) and ref == res if isinstance(ref, np.generic) else ref == res
    return Judgement(bool(equal), "equal", f"{res!r} {'==' if equal else '!='} {ref!r}",
                     min_tol=0.0 if equal else math.inf)


def same(ref: Any, res: Any, fp64_ref: Any = None, **options: Any) -> bool:
    """``torch._dynamo.utils.same``'s answer (see :func:`judge` for the figures behind it)."""
    return judge(ref, res, fp64_ref, **options).passed
