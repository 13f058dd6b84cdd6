"""Tests on the count tables: independence within one table, difference between two label sets.

Defects are not independent: they cluster in issues and repositories (tensorflow/models alone
holds 51 of the study's 348). Every test therefore also carries a Rao-Scott corrected
chi-squared (mean design effect, Rao & Scott, JASA 1981) whose design effects come from
the repository clusters, and every effect size a cluster-bootstrap interval (repositories
resampled with replacement, and issues). Cramér's V is reported bias-corrected (Bergsma,
Journal of the Korean Statistical Society 2013) beside the classic value. p-values of one
family of tests (the cross-tables of a report; the cells of a comparison) are adjusted by Holm
(family-wise error) and Benjamini-Hochberg (false discovery rate).

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
BOOTSTRAP = 999
SEED = 20240307  # fixed so reports are reproducible byte for byte
MIN_CLUSTERS = 10
"""Fewest clusters (repositories, issues) for a cluster-bootstrap interval or a Rao-Scott design effect. With
fewer, a bootstrap resamples a handful of values (with 2 repositories its interval spans the two
repositories' own shares, narrower than Wilson's) and a design effect rests on g - 1 degrees of freedom;
the report says so instead. Even 10 is few (Cameron & Miller, J. Human Resources 2015)."""


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
    cramers_v_corrected: float | None = None
    v_ci_repository: list[float] | None = None
    v_ci_issue: list[float] | None = None
    p_rao_scott: float | None = None
    design_effect: float | None = None
    clusters: int | None = None
    p_holm: float | None = None
    p_bh: float | None = None

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


def cramers_v_corrected(observed: np.ndarray) -> float | np.ndarray | None:
    """Bias-corrected Cramér's V (Bergsma 2013): phi^2 and the table's dimensions corrected for n.

    ``observed`` is one table or a stack of tables (batch x rows x columns, for the bootstrap);
    rows and columns without data do not count. None (NaN in a stack) where V is undefined.
    """
    tables = np.asarray(observed, dtype=float)
    single = tables.ndim == 2
    tables = tables[None] if single else tables
    n = tables.sum((1, 2))
    rows, cols = tables.sum(2), tables.sum(1)
    r, k = (rows > 0).sum(1), (cols > 0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows[:, :, None] * cols[:, None, :] / n[:, None, None]
        phi2 = np.nansum(np.where(expected > 0, (tables - expected) ** 2 / expected, 0.0), axis=(1, 2)) / n
        phi2c = np.maximum(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
        rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
        denom = np.minimum(kc - 1, rc - 1)
        v = np.where((denom > 0) & (n > 1) & (np.minimum(r, k) >= 2), np.sqrt(phi2c / denom), np.nan)
    if single:
        return None if np.isnan(v[0]) else float(v[0])
    return v


def _cluster_tables(codes: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Counts per cluster: an array clusters x rows x columns."""
    out = np.zeros((int(codes.max()) + 1, *shape))
    np.add.at(out, (codes, rows, cols), 1)
    return out


def _resample_clusters(per_cluster: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Totals (resamples x cells) of ``per_cluster`` rows (clusters x cells) drawn with replacement.

    Clusters with the same counts are interchangeable, so drawing g clusters is a multinomial
    over the distinct count patterns: with issues as clusters (mostly one defect each) a few
    dozen patterns stand for 100,000 clusters.
    """
    # Rows are grouped by a random projection (1-D unique is far faster than unique rows of a wide
    # matrix); distinct integer count rows collide with probability zero.
    keys = per_cluster @ np.random.default_rng(0).random(per_cluster.shape[1])
    _, first, freq = np.unique(keys, return_index=True, return_counts=True)
    patterns = per_cluster[first]
    g = len(per_cluster)
    weights = np.random.default_rng(seed).multinomial(g, freq / g, size=resamples)
    return weights @ patterns


def cluster_bootstrap_v(per_cluster: np.ndarray, resamples: int = BOOTSTRAP, seed: int = SEED) -> list[float] | None:
    """95% percentile interval of bias-corrected V, resampling whole clusters with replacement."""
    g = len(per_cluster)
    if g < MIN_CLUSTERS:
        return None
    tables = _resample_clusters(per_cluster.reshape(g, -1), resamples, seed).reshape(resamples, *per_cluster.shape[1:])
    values = cramers_v_corrected(tables)
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def cluster_bootstrap_shares(codes: np.ndarray, categories: np.ndarray, k: int, resamples: int = BOOTSTRAP,
                             seed: int = SEED) -> np.ndarray:
    """95% percentile intervals (k x 2) of category shares, resampling whole clusters."""
    g = int(codes.max()) + 1 if len(codes) else 0
    if g < MIN_CLUSTERS:
        return np.full((k, 2), np.nan)
    per = np.zeros((g, k))
    np.add.at(per, (codes, categories), 1)
    counts = _resample_clusters(per, resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = counts / counts.sum(1, keepdims=True)
    return np.nanquantile(shares, [0.025, 0.975], axis=0).T


def rao_scott(per_cluster: np.ndarray, statistic: float) -> tuple[float | None, float | None]:
    """(p-value, mean design effect) of the Rao-Scott mean-design-effect corrected chi-squared test.

    Each cell proportion gets a cluster-robust (linearisation) variance; its ratio to the
    multinomial variance is the cell's design effect, and the Pearson statistic is divided by
    their weighted mean d = sum (1 - p_ij) d_ij / (cells - 1) (Rao & Scott, JASA 1981), floored
    at 1 so that clustering never makes the test more liberal than Pearson's. (The first-order
    form that subtracts the margins' design effects turns negative when whole repositories hold
    one kind of defect, the very case it should catch.)
    """
    g = len(per_cluster)
    table = per_cluster.sum(0)
    n = table.sum()
    r, k = table.shape
    if g < MIN_CLUSTERS or n == 0 or r < 2 or k < 2:
        return None, None
    sizes = per_cluster.sum((1, 2))[:, None, None]
    p = table / n
    var = g / (g - 1) * ((per_cluster - sizes * p) ** 2).sum(0) / n ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(p * (1 - p) > 0, var / (p * (1 - p) / n), 1.0)  # empty cells: no variance either way
    mean_deff = float(((1 - p) * d).sum() / (r * k - 1))
    return float(stats.chi2.sf(statistic / max(mean_deff, 1.0), (r - 1) * (k - 1))), mean_deff


def adjust(p_values: dict[str, float | None]) -> dict[str, tuple[float, float]]:
    """Holm and Benjamini-Hochberg adjusted p-values for one family of tests (``None`` entries skipped)."""
    names = [k for k, v in p_values.items() if v is not None]
    if not names:
        return {}
    p = np.array([p_values[k] for k in names], dtype=float)
    order = np.argsort(p)
    m = len(p)
    holm = np.empty(m)
    holm[order] = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    bh = stats.false_discovery_control(p, method="bh")
    return {k: (float(h), float(b)) for k, h, b in zip(names, holm, bh)}


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
                     float(expected.min()), small, note, cramers_v_corrected(observed))


def clustered_chi_square(frame: pd.DataFrame, rows: str, cols: str, counts: pd.DataFrame,
                         resamples: int = MONTE_CARLO_TABLES, seed: int = SEED) -> ChiSquare:
    """:func:`chi_square` on ``counts`` plus the cluster-aware results: Rao-Scott p by repository,
    and cluster-bootstrap intervals of the corrected V by repository and by issue."""
    test = chi_square(counts, resamples, seed)
    if test.statistic is None:
        return test
    kept_rows = [r for r in counts.index if counts.loc[r].sum() > 0]
    kept_cols = [c for c in counts.columns if counts[c].sum() > 0]
    both = frame[frame[rows].isin(kept_rows) & frame[cols].isin(kept_cols)]
    r_codes = pd.Categorical(both[rows], categories=kept_rows).codes
    c_codes = pd.Categorical(both[cols], categories=kept_cols).codes
    shape = (len(kept_rows), len(kept_cols))
    repo_key = both["owner"].astype(str) + "/" + both["repo"].astype(str) if {"owner", "repo"} <= set(both) else None
    if repo_key is not None:
        per_repo = _cluster_tables(pd.factorize(repo_key)[0], r_codes, c_codes, shape)
        test.p_rao_scott, test.design_effect = rao_scott(per_repo, float(test.statistic))
        test.clusters = len(per_repo)
        test.v_ci_repository = cluster_bootstrap_v(per_repo, seed=seed)
    if "issue_url" in both:
        test.v_ci_issue = cluster_bootstrap_v(_cluster_tables(pd.factorize(both["issue_url"])[0], r_codes, c_codes, shape), seed=seed)
    return test


def compare_counts(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame, label_a: str, label_b: str) -> dict[str, Any]:
    """Two count tables of the same shape side by side: counts, shares, share differences, and a test.

    Both tables must already be aligned on the same categories (see :mod:`analysis.compare`). The test is chi-squared homogeneity on the 2 x cells table: do the two label sets
    spread defects differently? It assumes independent samples (two corpora, or a corpus and
    the study); two label sets on the same threads are paired and are compared by agreement
    instead (:mod:`analysis.compare`).
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
    test.note = "independent samples: " + test.note
    return {"cells": cells, "n": {label_a: n_a, label_b: n_b}, "test": test.to_dict()}


def clustered_share_intervals(frame: pd.DataFrame, dim_id: str, order: list[str]) -> pd.DataFrame:
    """Cluster-bootstrap 95% intervals of a dimension's shares, by repository and by issue."""
    labeled = frame[frame[dim_id].isin(order)]
    cats = pd.Categorical(labeled[dim_id], categories=order).codes
    out = pd.DataFrame(index=order)
    keys = {"repository": labeled["owner"].astype(str) + "/" + labeled["repo"].astype(str) if {"owner", "repo"} <= set(labeled) else None,
            "issue": labeled["issue_url"] if "issue_url" in labeled else None}
    for name, key in keys.items():
        if key is None or not len(labeled):
            continue
        ci = cluster_bootstrap_shares(pd.factorize(key)[0], cats, len(order))
        out[f"ci_{name}_low"], out[f"ci_{name}_high"] = ci[:, 0], ci[:, 1]
    return out
