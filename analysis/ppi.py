"""Prediction-powered inference: shares of a machine-labeled corpus, corrected by human labels.

Angelopoulos et al., "Prediction-powered inference" (Science 382, 2023) and its power-tuned
form PPI++ (Angelopoulos, Duchi, Zrnic, arXiv:2311.01453). The classifier labels every thread
of the corpus (N); humans label a random subset (n). For a share, the estimate is

    theta = lam * mean(f(X_unlabeled)) + mean(Y - lam * f(X_labeled))

whose error does not depend on the classifier being right: its bias is measured on the human
subset and removed, so the interval stays valid whatever the classifier's error rates, and
it is narrower than the human-only interval as far as the classifier predicts the human labels.
``lam`` is the PPI++ per-share choice (clipped to [0, 1]; 1 is classic PPI, 0 the human-only
estimate). The formulas equal ``ppi_py.ppi_mean_ci(..., lam_optim_mode="element")`` of the
``ppi-python`` package (the tests hold its numbers); they are written out vectorised here
because a report needs hundreds of shares at once, that package's import alone (numba,
statsmodels) costs seconds, and it installs a top-level ``tests`` package that shadows a
project's own. Conditional shares (the claims) are ratios of two such means, with a
delta-method interval (classic PPI, ``lam`` = 1).

Units are threads: a machine label is per thread, and a human-labeled thread holding several
defects contributes the fraction of its defects in each category. The human subset must be a
random sample of the corpus's threads (``reeng sample`` draws one) for the intervals to hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.tables import CLAIMS, CROSS_TABLES, Claim, Defects, _in, category_order, thread_keys, wilson_interval
from reeng.errors import ReengError



def ppi_mean(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, alpha: float = 0.05,
             lam: float | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high, lam) of the mean of each column of ``y`` (n x k), given predictions.

    ``yhat`` (n x k) are the predictions on the human-labeled units, ``yhat_unlabeled`` (N x k)
    on the whole corpus. ``lam`` None picks the PPI++ variance-minimising value per column.
    """
    y, yhat, yu = (a[:, None] if a.ndim == 1 else a for a in (np.asarray(v, dtype=float) for v in (y, yhat, yhat_unlabeled)))
    n, big_n = len(y), len(yu)
    if n < 2 or big_n < 2:
        nan = np.full(y.shape[1], np.nan)
        return nan, nan, nan, nan
    if lam is None:
        theta1 = yu.mean(0) + (y - yhat).mean(0)
        g, gh = y - theta1, yhat - theta1
        cov = 2 * ((g - g.mean(0)) * (gh - gh.mean(0))).sum(0) / n
        both = np.vstack([gh, yu - theta1])
        var_hat = both.var(0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = np.clip(np.nan_to_num(cov / (2 * (1 + n / big_n) * var_hat)), 0, 1)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (y.shape[1],))
    estimate = lam * yu.mean(0) + (y - lam * yhat).mean(0)
    se = np.sqrt((lam * yu).var(0, ddof=0) / big_n + (y - lam * yhat).var(0, ddof=0) / n)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return estimate, estimate - z * se, estimate + z * se, lam


def ppi_ratio(num: tuple[np.ndarray, np.ndarray, np.ndarray], den: tuple[np.ndarray, np.ndarray, np.ndarray],
              alpha: float = 0.05) -> tuple[float, float, float]:
    """PPI estimate and delta-method interval of E[num] / E[den]; each is (y, yhat, yhat_unlabeled)."""
    yn, fn, un = (np.asarray(a, dtype=float) for a in num)
    yd, fd, ud = (np.asarray(a, dtype=float) for a in den)
    n, big_n = len(yn), len(un)
    if n < 2 or big_n < 2:
        return float("nan"), float("nan"), float("nan")
    a = un.mean() + (yn - fn).mean()
    b = ud.mean() + (yd - fd).mean()
    if b <= 0:
        return float("nan"), float("nan"), float("nan")
    cov = np.cov(np.vstack([un, ud]), ddof=0) / big_n + np.cov(np.vstack([yn - fn, yd - fd]), ddof=0) / n
    r = a / b
    grad = np.array([1 / b, -a / b ** 2])
    se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    z = float(stats.norm.ppf(1 - alpha / 2))
    return float(r), float(r - z * se), float(r + z * se)


@dataclass
class _Layout:
    """Where each row's thread sits: machine rows among corpus threads (``m``) and among the
    human-labeled threads (``mh``), human rows among the human-labeled threads (``h``)."""

    n_corpus: int
    n_human: int
    m: np.ndarray
    h: np.ndarray
    mh: np.ndarray

    @classmethod
    def of(cls, machine: Defects, human: Defects) -> _Layout:
        urls_m, urls_h = (thread_keys(d.frame["issue_url"]).to_numpy(object) for d in (machine, human))
        threads, h_threads = pd.Index(pd.unique(urls_m)), pd.Index(pd.unique(urls_h))
        return cls(len(threads), len(h_threads), threads.get_indexer(urls_m), h_threads.get_indexer(urls_h),
                   h_threads.get_indexer(urls_m))


def _plain(defects: Defects) -> Defects:
    """The same table with label and URL columns as plain objects (Arrow strings iterate slowly)."""
    cols = ["issue_url", *defects.dimensions]
    return replace(defects, frame=defects.frame[cols].astype(object))


def _per_thread(pos: np.ndarray, values: pd.Series, cats: list[str], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(fractions threads x cats, has-label mask): each thread's share of its labeled defects in each category.

    ``pos`` is each row's thread position (-1: not one of these threads). Vectorised with
    category codes and ``np.add.at`` (a groupby per table made 100,000 rows slow).
    """
    codes = pd.Categorical(values, categories=cats).codes
    ok = (codes >= 0) & (pos >= 0)
    sums = np.zeros((n_threads, len(cats)))
    np.add.at(sums, (pos[ok], codes[ok]), 1.0)
    labeled = sums.sum(1)
    return sums / np.maximum(labeled, 1)[:, None], labeled > 0


def _joint(frame: pd.DataFrame, rows: str, cols: str) -> pd.Series:
    both = frame[rows].notna() & frame[cols].notna()
    return (frame[rows].astype("object") + "|" + frame[cols].astype("object")).where(both)


def check_human_threads(machine: Defects, human: Defects) -> None:
    """Every human-labeled thread must be a thread of the machine-labeled corpus."""
    urls = human.frame["issue_url"].drop_duplicates()
    outside = sorted(urls[~thread_keys(urls).isin(set(thread_keys(machine.frame["issue_url"])))])
    if outside:
        raise ReengError(f"{human.source}: {len(outside)} human-labeled thread(s) are not in the machine-labeled corpus "
                         f"(first: {outside[0]}); label a random sample of the corpus analysed, e.g. from `reeng annotate export "
                         "--sample N`, which leaves out the threads the classifier's filter dropped (not a defect, not reengineering)")


def _estimates(layout: _Layout, m_values: pd.Series, h_values: pd.Series,
               cats: list[str], names: list[Any]) -> list[dict[str, Any]]:
    """Naive machine-only, human-only and PPI rows for one set of mutually exclusive categories."""
    fu, _ = _per_thread(layout.m, m_values, cats, layout.n_corpus)
    y, has = _per_thread(layout.h, h_values, cats, layout.n_human)
    f_lab, _ = _per_thread(layout.mh, m_values, cats, layout.n_human)
    est, low, high, lam = ppi_mean(y[has], f_lab[has], fu)
    # fewer than two human-labeled threads here (a dimension the raters left blank): the classifier's error is unmeasured
    unmeasured = {} if has.sum() >= 2 else {"reason": f"{int(has.sum())} thread(s) with a human label here: "
                                                      "too few to measure the classifier's error"}
    m_shares, h_shares = _wilson_shares(m_values, cats), _wilson_shares(h_values, cats)
    rows = []
    for i, name in enumerate(names):
        rows.append({
            "category": name, "machine": m_shares[i], "human": h_shares[i],
            "ppi": {"share": float(est[i]), "ci": [float(max(low[i], 0.0)), float(min(high[i], 1.0))],
                    "lam": float(lam[i]), "n_human_threads": int(has.sum()), "n_corpus_threads": layout.n_corpus,
                    **unmeasured},
        })
    return rows


def _wilson_shares(values: pd.Series, cats: list[str]) -> list[dict[str, Any]]:
    """Each category's share of the labeled rows with its Wilson interval; None (n/a) when no row is labeled."""
    counts = values.value_counts().reindex(cats, fill_value=0).to_numpy()
    n = int(counts.sum())
    if not n:
        return [{"share": None, "ci": [None, None], "n": 0} for _ in cats]
    low, high = wilson_interval(counts, n)
    return [{"share": float(k / n), "ci": [float(lo), float(hi)], "n": n} for k, lo, hi in zip(counts, low, high)]


def _claim(machine: Defects, human: Defects, claim: Claim, layout: _Layout) -> dict[str, Any]:
    needed = [claim.count[0]] + ([claim.among[0]] if claim.among else [])
    if any(d not in machine.dimensions or d not in human.dimensions for d in needed):
        return {"statement": claim.statement, "available": False, "reason": f"no {' or '.join(needed)} labels on both sides"}
    parts = {}
    for side, d in (("machine", machine), ("human", human)):
        ok = d.frame[needed].notna().all(axis=1)
        among = ok & (_in(d, *claim.among) if claim.among else True)
        parts[side] = (among & _in(d, *claim.count), among, ok)

    def means(pos: np.ndarray, series: pd.Series, mask: pd.Series | np.ndarray, n_threads: int) -> np.ndarray:
        """Per thread, the mean of ``series`` over its rows under ``mask`` (0 without any)."""
        ok = np.asarray(mask, dtype=bool) & (pos >= 0)
        total = np.bincount(pos[ok], weights=np.asarray(series, dtype=float)[ok], minlength=n_threads)
        count = np.bincount(pos[ok], minlength=n_threads)
        return total / np.maximum(count, 1)

    m_num, m_den, _ = parts["machine"]
    h_num, h_den, h_ok = parts["human"]
    everything = np.ones(len(m_num), dtype=bool)
    labeled = means(layout.h, h_ok, np.ones(len(h_ok), dtype=bool), layout.n_human) > 0
    yn, yd = means(layout.h, h_num, h_ok, layout.n_human)[labeled], means(layout.h, h_den, h_ok, layout.n_human)[labeled]
    fn, fd = means(layout.mh, m_num, everything, layout.n_human)[labeled], means(layout.mh, m_den, everything, layout.n_human)[labeled]
    un, ud = means(layout.m, m_num, everything, layout.n_corpus), means(layout.m, m_den, everything, layout.n_corpus)
    est, low, high = ppi_ratio((yn, fn, un), (yd, fd, ud))
    out: dict[str, Any] = {"statement": claim.statement, "available": True}
    for side, (num, den, _) in parts.items():
        k, n = int(num.sum()), int(den.sum())
        ci = [float(v) for v in wilson_interval(k, n)] if n else [None, None]  # no defect of its kind: n/a
        out[side] = {"share": k / n if n else None, "ci": ci, "numerator": k, "denominator": n}
    out["ppi"] = {"share": est, "ci": [max(low, 0.0), min(high, 1.0)], "n_human_threads": int(labeled.sum()),
                  "n_corpus_threads": layout.n_corpus}
    if not out["human"]["denominator"]:
        # No human-labeled defect in the claim's denominator: the classifier's error there is unmeasured, and
        # the rectifier's variance, estimated from nothing, is zero (an 8-of-8 machine share read 100 % [100, 100]).
        out["ppi"] |= {"share": float("nan"), "ci": [float("nan"), float("nan")],
                       "reason": "no human-labeled defect in the denominator: the classifier's error there is unmeasured"}
    return out


def _queue_warning(human: Defects) -> str | None:
    """What to say when queue-chosen threads are among the human-labeled ones, warned once; None when none are."""
    import warnings

    from reeng.errors import ReengWarning

    frame = human.frame
    if "chosen_by_queue" not in frame:
        return None
    chosen = frame.loc[frame["chosen_by_queue"].fillna(False).astype(bool), "issue_url"].nunique()
    if not chosen:
        return None
    text = (f"{chosen} of the {frame['issue_url'].nunique()} human-labeled threads were chosen by the active-learning "
            "queue (annotate queue, push --queue or export --queue), not at random: the prediction-powered estimates assume a "
            "random sample of the corpus and are biased by them; label a random sample (annotate export --sample, or "
            "push --sample)")
    warnings.warn(text, ReengWarning, stacklevel=3)
    return text


def _protocol_warning(machine: Defects, human: Defects) -> str | None:
    """What to say when most human-labeled threads are a recorded ``reeng sample`` draw (a ``protocol_sample``
    column, from :func:`analysis.store_defects.human_defects`) while the corpus analysed is wider than it."""
    import warnings

    from reeng.errors import ReengWarning

    frame = human.frame
    if "protocol_sample" not in frame:
        return None
    threads = frame.drop_duplicates("issue_url")
    drawn = threads["protocol_sample"].dropna()
    if not len(drawn) or len(drawn) < 0.5 * len(threads):
        return None
    sample = int(drawn.mode().iloc[0])
    in_draw = set(frame.loc[frame["protocol_sample"] == sample, "issue_url"].str.lower())
    corpus = set(machine.frame["issue_url"].str.lower())
    if corpus <= in_draw | set(threads["issue_url"].str.lower()):
        return None  # the analysis is of that draw itself (--sample), not of a wider corpus
    text = (f"{len(drawn)} of the {len(threads)} human-labeled threads belong to sample {sample} drawn by reeng sample: "
            "the study's protocol (closed threads with enough comments, a fixed number per repository), not a random "
            "sample of the corpus analysed; the prediction-powered estimates assume one (label a random sample: "
            "annotate export --sample, or analyse that sample alone with --sample)")
    warnings.warn(text, ReengWarning, stacklevel=3)
    return text


def prediction_powered(machine: Defects, human: Defects) -> dict[str, Any]:
    """Every marginal share, cross-table cell share and claim: machine-only, human-only and PPI, side by side.

    Human-labeled threads that the active-learning queue chose (a ``chosen_by_queue`` column, from
    the store's ``queued_threads``) are the model's hardest, not a random sample: the estimates
    would be biased by them. They are counted in ``warning`` and said once as a
    :class:`reeng.errors.ReengWarning` (one ``warning:`` line on the terminal).
    """
    check_human_threads(machine, human)
    warning = "; ".join(w for w in (_queue_warning(human), _protocol_warning(machine, human)) if w) or None
    machine, human = _plain(machine), _plain(human)
    layout = _Layout.of(machine, human)
    tax = machine.taxonomy
    out: dict[str, Any] = {"method": "prediction-powered inference (PPI++, Angelopoulos et al. 2023)",
                           "n_corpus_threads": int(machine.frame["issue_url"].nunique()),
                           "n_human_threads": int(human.frame["issue_url"].nunique()),
                           "warning": warning, "marginals": {}, "tables": {}, "claims": {}}
    for dim_id in [d for d in machine.dimensions if d in human.dimensions]:
        dim = tax.dimension(dim_id)
        cats = category_order(dim, set(machine.frame[dim_id].dropna()) | set(human.frame[dim_id].dropna()))
        if cats:
            out["marginals"][dim_id] = _estimates(layout, machine.frame[dim_id], human.frame[dim_id], cats,
                                                  [dim.category(c).name for c in cats])
    for name, (rows, cols) in CROSS_TABLES.items():
        if not all(d in machine.dimensions and d in human.dimensions for d in (rows, cols)):
            continue
        m_vals, h_vals = _joint(machine.frame, rows, cols), _joint(human.frame, rows, cols)
        present = set(m_vals.dropna()) | set(h_vals.dropna())
        r_order = category_order(tax.dimension(rows), {p.split("|")[0] for p in present})
        c_order = category_order(tax.dimension(cols), {p.split("|")[1] for p in present})
        cats = [f"{r}|{c}" for r in r_order for c in c_order if f"{r}|{c}" in present]
        names = [f"{tax.dimension(rows).category(c.split('|')[0]).name} / {tax.dimension(cols).category(c.split('|')[1]).name}"
                 for c in cats]
        if cats:
            out["tables"][name] = _estimates(layout, m_vals, h_vals, cats, names)
    for claim in CLAIMS:
        out["claims"][claim.id] = _claim(machine, human, claim, layout)
    return out
