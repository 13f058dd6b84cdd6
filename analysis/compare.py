"""Two label sets side by side: human vs machine, or the study vs a new corpus.

Every marginal and cross-table both sides can count is aligned on the union of their
categories (in taxonomy order, buckets last) and compared cell by cell with a test of whether
the two distributions differ (:func:`analysis.stats.compare_counts`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.stats import adjust, compare_counts
from analysis.tables import Defects, Tables, category_order, thread_keys


def _align(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame, order_rows: list[str], order_cols: list[str] | None):
    if isinstance(a, pd.DataFrame):
        return (a.reindex(index=order_rows, columns=order_cols, fill_value=0),
                b.reindex(index=order_rows, columns=order_cols, fill_value=0))
    return a.reindex(order_rows, fill_value=0), b.reindex(order_rows, fill_value=0)


KINDS = {
    "independent": "independent samples: two corpora labeled separately; the homogeneity tests apply",
    "corpus_vs_study": "corpus vs study: independent samples from different populations (repositories, "
                       "time, selection), so a difference describes the populations, not the labels",
    "paired": "paired: both label sets label the same threads; agreement answers whether they differ, "
              "the homogeneity test (which assumes independent samples) is not shown",
}


def paired_agreement(a: Defects, b: Defects) -> dict[str, Any]:
    """Per dimension, on the threads both sides label: threads, raw agreement and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score

    first_a, first_b = (d.frame.assign(thread=thread_keys(d.frame["issue_url"])).drop_duplicates("thread").set_index("thread")
                        for d in (a, b))
    shared = first_a.index.intersection(first_b.index)
    out = {}
    for dim in [d for d in a.dimensions if d in b.dimensions]:
        pair = pd.DataFrame({"a": first_a.loc[shared, dim], "b": first_b.loc[shared, dim]}).dropna()
        if pair.empty:
            continue
        same = pair["a"] == pair["b"]
        kappa = cohen_kappa_score(pair["a"].astype(str), pair["b"].astype(str)) if pair["a"].nunique() + pair["b"].nunique() > 2 else None
        out[dim] = {"threads": int(len(pair)), "agreement": float(same.mean()),
                    "kappa": None if kappa is None or kappa != kappa else float(kappa)}
    return {"threads": int(len(shared)), "dimensions": out}


def compare_tables(a: Tables, b: Tables, label_a: str = "a", label_b: str = "b", kind: str = "independent") -> dict[str, Any]:
    """Per-cell differences for every table both sides can count, with a homogeneity test
    (independent samples) or agreement on the same threads (paired), Holm/BH across the family."""
    if kind not in KINDS:
        raise ValueError(f"unknown comparison kind {kind!r}")
    tax = a.defects.taxonomy
    out: dict[str, Any] = {"labels": [label_a, label_b], "sources": [a.defects.source, b.defects.source],
                           "kind": kind, "design": KINDS[kind], "marginals": {}, "tables": {}, "unavailable": {}}
    for dim_id in a.marginals.keys() & b.marginals.keys():
        ma, mb = a.marginals[dim_id].counts, b.marginals[dim_id].counts
        order = category_order(tax.dimension(dim_id), set(ma.index) | set(mb.index))
        out["marginals"][dim_id] = compare_counts(*_align(ma, mb, order, None), label_a, label_b)
    for name, ta in a.cross.items():
        tb = b.cross[name]
        if ta.counts is None or tb.counts is None:
            out["unavailable"][name] = ta.reason or tb.reason
            continue
        rows = category_order(tax.dimension(ta.rows), set(ta.counts.index) | set(tb.counts.index))
        cols = category_order(tax.dimension(ta.columns), set(ta.counts.columns) | set(tb.counts.columns))
        out["tables"][name] = compare_counts(*_align(ta.counts, tb.counts, rows, cols), label_a, label_b)
    out["marginals"] = dict(sorted(out["marginals"].items(), key=lambda kv: list(a.marginals).index(kv[0])))
    groups = [g for group in ("marginals", "tables") for g in out[group].values()]
    if kind == "paired":
        for g in groups:
            g["test"] = {"statistic": None, "note": KINDS["paired"]}
        out["agreement"] = paired_agreement(a.defects, b.defects)
    else:
        adjusted = adjust({str(i): g["test"]["p_monte_carlo"] for i, g in enumerate(groups)})
        for i, g in enumerate(groups):
            g["test"]["p_holm"], g["test"]["p_bh"] = adjusted.get(str(i), (None, None))
    return out
