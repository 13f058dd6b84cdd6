"""Two label sets side by side: human vs machine, or the study vs a new corpus.

Every marginal and cross-table both sides can count is aligned on the union of their
categories (in taxonomy order, buckets last) and compared cell by cell with a test of whether
the two distributions differ (:func:`analysis.stats.compare_counts`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.stats import compare_counts
from analysis.tables import Tables, category_order


def _align(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame, order_rows: list[str], order_cols: list[str] | None):
    if isinstance(a, pd.DataFrame):
        return (a.reindex(index=order_rows, columns=order_cols, fill_value=0),
                b.reindex(index=order_rows, columns=order_cols, fill_value=0))
    return a.reindex(order_rows, fill_value=0), b.reindex(order_rows, fill_value=0)


def compare_tables(a: Tables, b: Tables, label_a: str = "a", label_b: str = "b") -> dict[str, Any]:
    """Per-cell differences and a homogeneity test for every table both sides can count."""
    tax = a.defects.taxonomy
    out: dict[str, Any] = {"labels": [label_a, label_b], "sources": [a.defects.source, b.defects.source],
                           "marginals": {}, "tables": {}, "unavailable": {}}
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
    return out
