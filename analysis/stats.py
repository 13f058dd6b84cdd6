"""Tests on the count tables: independence within one table, difference between two label sets.

Pearson's chi-squared is the study-style test, but the study's tables are sparse (a 4 x 14
stage-by-root-cause table over 348 defects), where its p-value is unreliable. Every test
therefore also carries a Monte-Carlo p-value conditioned on the margins (random tables drawn by
``scipy.stats.random_table``, as R's ``chisq.test(simulate.p.value=TRUE)`` does), and a note
says which one to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats.contingency import association, expected_freq

from analysis.tables import wilson_interval

MONTE_CARLO_TABLES = 9999
SEED = 20240307  # fixed so reports are reproducible byte for byte


@dataclass
class ChiSquare:
    """Result of a test of independence (or homogeneity) on one contingency table."""

    statistic: float | None
    dof: int | None
    p_value: float | None
    p_monte_carlo: float | None
    cramers_v: float | None
    n: int
    min_expected: float | None
    small_expected_share: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _monte_carlo_p(observed: np.ndarray, statistic: float, resamples: int, seed: int) -> float:
    """Share of random tables with the observed margins whose chi-squared is at least as large."""
    table = stats.random_table(observed.sum(axis=1), observed.sum(axis=0), seed=seed)
    draws = table.rvs(size=resamples).astype(float)
    expected = expected_freq(observed)
    sims = ((draws - expected) ** 2 / expected).sum(axis=(1, 2))
    # Small tolerance: ties computed in floating point must count as "at least as large".
    hits = int((sims >= statistic - 1e-9 * max(1.0, statistic)).sum())
    return (hits + 1) / (resamples + 1)


def chi_square(counts: pd.DataFrame | np.ndarray, resamples: int = MONTE_CARLO_TABLES, seed: int = SEED) -> ChiSquare:
    """Chi-squared test of independence with Cramér's V and a Monte-Carlo p-value.

    A table with fewer than two rows or columns carrying data has nothing to test; the result
    says so instead of failing.
    """
    observed = np.asarray(counts, dtype=np.int64)
    observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
    n = int(observed.sum())
    if observed.ndim != 2 or min(observed.shape, default=0) < 2:
        return ChiSquare(None, None, None, None, None, n, None, None,
                         "not tested: fewer than two categories with data in a dimension")
    result = stats.chi2_contingency(observed, correction=False)
    expected = result.expected_freq
    small = float((expected < 5).mean())
    v = float(association(observed, method="cramer", correction=False))
    p_mc = _monte_carlo_p(observed, float(result.statistic), resamples, seed)
    if small > 0.2 or expected.min() < 1:
        note = (f"{small:.0%} of expected counts are below 5 (minimum {expected.min():.2f}): "
                f"the chi-squared approximation is unreliable, read the Monte-Carlo p-value")
    else:
        note = "expected counts are large enough for the chi-squared approximation"
    return ChiSquare(float(result.statistic), int(result.dof), float(result.pvalue), p_mc, v, n,
                     float(expected.min()), small, note)


def compare_counts(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame, label_a: str, label_b: str) -> dict[str, Any]:
    """Two count tables of the same shape side by side: counts, shares, share differences, and a test.

    Both tables must already be aligned on the same categories (see :mod:`analysis.compare`). The test is chi-squared homogeneity on the 2 x cells table: do the two label sets
    spread defects differently? When both sides label the same defects (human vs machine) the
    samples are paired and the test is conservative; the classifier's own agreement numbers
    answer the paired question.
    """
    if isinstance(a, pd.DataFrame):
        flat_a, flat_b = a.stack(), b.stack()
    else:
        flat_a, flat_b = a, b
    n_a, n_b = int(flat_a.sum()), int(flat_b.sum())
    share_a, share_b = flat_a / max(n_a, 1), flat_b / max(n_b, 1)
    ci_a, ci_b = wilson_interval(flat_a.to_numpy(), n_a), wilson_interval(flat_b.to_numpy(), n_b)
    cells = []
    for i, key in enumerate(flat_a.index):
        cells.append({
            "cell": list(key) if isinstance(key, tuple) else [key],
            label_a: int(flat_a[key]), label_b: int(flat_b[key]),
            f"share_{label_a}": float(share_a[key]), f"share_{label_b}": float(share_b[key]),
            f"ci_{label_a}": [float(ci_a[0][i]), float(ci_a[1][i])], f"ci_{label_b}": [float(ci_b[0][i]), float(ci_b[1][i])],
            "difference_pp": round(100 * float(share_b[key] - share_a[key]), 2),
        })
    test = chi_square(np.vstack([flat_a.to_numpy(), flat_b.to_numpy()]))
    return {"cells": cells, "n": {label_a: n_a, label_b: n_b}, "test": test.to_dict()}
