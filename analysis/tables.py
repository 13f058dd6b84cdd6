"""Counting a defect table: marginals, the study's cross-tables and the abstract's claims.

Any defect table in the layer's normalized schema (``docs/schemas.md``: the study's human
labels, a classifier's machine labels, a new mined corpus) goes through the same code, so the
study's numbers and a new corpus's numbers are computed identically. Categories are ordered as
the taxonomy lists them, with the rare-category bucket (``low_frequency``) always last, so every
table, figure and CSV reads in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reeng.errors import ReengError
from reeng.tables import read_table
from taxonomy.gold import LABEL_COLUMNS
from taxonomy.model import Dimension, Taxonomy, load_taxonomy

# Label columns of the defect table, each named for its taxonomy dimension (the gold import's list).
LABEL_DIMENSIONS: tuple[str, ...] = tuple(LABEL_COLUMNS)

# Cross-table name -> (row dimension, column dimension). The first six are the study's
# Figures 5-10; the names say "rows_x_columns".
CROSS_TABLES: dict[str, tuple[str, str]] = {
    "project_type_x_manifestation": ("project_type", "manifestation"),
    "reporter_x_manifestation": ("reporter", "manifestation"),
    "stage_x_manifestation": ("stage", "manifestation"),
    "stage_x_code_error": ("stage", "code_error"),
    "impact_x_stage": ("impact", "stage"),
    "stage_x_root_cause": ("stage", "root_cause"),
    "repo_type_x_manifestation": ("repo_type", "manifestation"),
}


@dataclass(frozen=True)
class Claim:
    """A share stated in the study's abstract: defects with ``count`` among those with ``among``."""

    id: str
    statement: str
    count: tuple[str, tuple[str, ...]]
    among: tuple[str, tuple[str, ...]] | None = None


CLAIMS: tuple[Claim, ...] = (
    Claim("reported_by_re_users", "share of defects reported by re-users",
          ("reporter", ("re_user",))),
    Claim("reproducibility_in_training", "share of reproducibility defects found in the training stage",
          ("stage", ("training",)), ("manifestation", ("reproducibility",))),
    Claim("environment_interface", "share of environment defects that are interface defects (external or internal)",
          ("code_error", ("external_interface", "internal_interface")), ("stage", ("environment",))),
    Claim("environment_api", "share of environment defects whose root cause is an API defect",
          ("root_cause", ("api_defect",)), ("stage", ("environment",))),
)


def category_order(dim: Dimension, present: set[str]) -> list[str]:
    """The categories of ``dim`` that occur, in taxonomy order with buckets last."""
    ordered = [c.id for c in dim.categories if c.id in present and c.origin != "bucket"]
    buckets = [c.id for c in dim.categories if c.id in present and c.origin == "bucket"]
    return ordered + buckets


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score 95% interval for k successes in n, vectorised.

    Vectorised because a report needs hundreds of them (every cell share of every table);
    ``scipy.stats.binomtest(...).proportion_ci(method="wilson")`` gives the same numbers one
    at a time and is what the tests compare against. n = 0 gives NaN.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


@dataclass
class Defects:
    """A validated defect table: label columns hold taxonomy ids (missing stays missing)."""

    frame: pd.DataFrame
    source: str
    taxonomy: Taxonomy
    dimensions: list[str]
    missing_dimensions: list[str] = field(default_factory=list)
    corpus: dict[str, Any] | None = None
    """How a machine defect table's corpus was filtered (:func:`taxonomy.predictions.filter_summary`), when known."""

    def __len__(self) -> int:
        return len(self.frame)


def prepare_defects(frame: pd.DataFrame, source: str, taxonomy: Taxonomy | None = None) -> Defects:
    """Check and normalise a defect table; a label no category accepts is an error naming it.

    Raw spellings (``Crash``, ``Re-user``) are accepted and mapped to ids, so a hand-made table
    works as well as one written by ``reeng gold import``. Dimensions absent from the table are
    recorded, not fatal: tables that need them become "no data" sections.
    """
    taxonomy = taxonomy or load_taxonomy()
    if frame.empty:
        raise ReengError(f"{source}: the defect table holds no rows")
    present = [d for d in LABEL_DIMENSIONS if d in frame.columns]
    missing = [d for d in LABEL_DIMENSIONS if d not in frame.columns]
    if not present:
        raise ReengError(f"{source}: no label column found (expected some of {', '.join(LABEL_DIMENSIONS)})")
    out = frame.copy()
    for dim_id in present:
        dim = taxonomy.dimension(dim_id)
        values = out[dim_id].astype("string").str.strip()
        values = values.mask(values == "")
        distinct = values.dropna().unique()
        mapping = {v: dim.lookup(v) for v in distinct}
        unknown = sorted(v for v, cat in mapping.items() if cat is None)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ReengError(f"{source}: column {dim_id!r} holds unknown {dim_id} label(s) {shown}{more}")
        out[dim_id] = values.map(mapping).astype("string")
    return Defects(out, source, taxonomy, present, missing, frame.attrs.get("corpus"))


def thread_keys(urls: pd.Series) -> pd.Series:
    """The threads issue URLs name, as two label sets are joined on them: GitHub's owner and repository names are
    case-insensitive (``Ultralytics/YOLOv3`` and ``ultralytics/yolov3`` are one), as the miner's and gold's joins read them."""
    return urls.astype(str).str.casefold()


def load_defects(path: Path | str, taxonomy: Taxonomy | None = None) -> Defects:
    """Read a defect table (CSV or Parquet) and validate it with :func:`prepare_defects`."""
    return prepare_defects(read_table(path), str(path), taxonomy)


@dataclass
class Marginal:
    """Counts of one dimension with Wilson intervals on each share."""

    dimension: str
    counts: pd.Series
    missing: int

    def shares(self) -> pd.DataFrame:
        n = int(self.counts.sum())
        low, high = wilson_interval(self.counts.to_numpy(), n)
        return pd.DataFrame({"count": self.counts, "share": self.counts / n, "ci_low": low, "ci_high": high})


@dataclass
class CrossTable:
    """Counts of defects by two dimensions; ``counts`` is None when the table has no data."""

    name: str
    rows: str
    columns: str
    counts: pd.DataFrame | None
    excluded: int = 0
    reason: str | None = None

    def row_shares(self) -> pd.DataFrame:
        """Each row as shares of its total, as the stacked bars draw it."""
        assert self.counts is not None
        return self.counts.div(self.counts.sum(axis=1), axis=0)

    def row_share_intervals(self) -> pd.DataFrame:
        """One line per cell: count, row total, the cell's share of its row and a Wilson 95% interval."""
        assert self.counts is not None
        long = self.counts.stack().rename("count").reset_index()
        long["row_total"] = long[self.rows].map(self.counts.sum(axis=1))
        long["share"] = long["count"] / long["row_total"]
        long["ci_low"], long["ci_high"] = wilson_interval(long["count"].to_numpy(), long["row_total"].to_numpy())
        return long


def marginal(defects: Defects, dim_id: str) -> Marginal:
    values = defects.frame[dim_id]
    counts = values.value_counts(dropna=True)
    order = category_order(defects.taxonomy.dimension(dim_id), set(counts.index))
    return Marginal(dim_id, counts.reindex(order).astype(int), int(values.isna().sum()))


def cross_table(defects: Defects, name: str, rows: str, columns: str) -> CrossTable:
    """Counts of rows x columns over defects labeled in both; unlabeled defects are counted as excluded."""
    absent = [d for d in (rows, columns) if d not in defects.dimensions]
    if absent:
        return CrossTable(name, rows, columns, None, reason=f"no {' or '.join(absent)} column in the defect table")
    both = defects.frame[[rows, columns]].dropna()
    excluded = len(defects.frame) - len(both)
    if both.empty:
        return CrossTable(name, rows, columns, None, excluded, reason=f"no defect is labeled in both {rows} and {columns}")
    counts = pd.crosstab(both[rows], both[columns])
    counts = counts.reindex(
        index=category_order(defects.taxonomy.dimension(rows), set(counts.index)),
        columns=category_order(defects.taxonomy.dimension(columns), set(counts.columns)),
    )
    counts.index.name, counts.columns.name = rows, columns
    return CrossTable(name, rows, columns, counts.astype(int), excluded)


def _in(defects: Defects, dim_id: str, cats: tuple[str, ...]) -> pd.Series:
    """Defects labeled with any of ``cats`` or a descendant of one of them."""
    dim = defects.taxonomy.dimension(dim_id)
    values = defects.frame[dim_id]
    accepted = {c.id for c in dim.categories if c.id in cats or set(dim.ancestors(c.id)) & set(cats)}
    return values.isin(accepted).fillna(False).astype(bool)


def claim_value(defects: Defects, claim: Claim) -> dict[str, Any]:
    """One claim as numerator, denominator, share and Wilson interval (or a reason it is unavailable)."""
    needed = [claim.count[0]] + ([claim.among[0]] if claim.among else [])
    absent = [d for d in needed if d not in defects.dimensions]
    base = {"statement": claim.statement}
    if absent:
        return base | {"available": False, "reason": f"no {' or '.join(absent)} column"}
    frame_ok = defects.frame[needed].notna().all(axis=1)
    among = frame_ok & (_in(defects, *claim.among) if claim.among else True)
    k = int((among & _in(defects, *claim.count)).sum())
    n = int(among.sum())
    # defects of the denominator's kind (or, with no condition, any) that lack the counted label: not counted
    candidates = _in(defects, *claim.among) if claim.among else pd.Series(True, index=defects.frame.index)
    excluded = int((candidates & ~frame_ok).sum())
    if n == 0:
        return base | {"available": False, "reason": "no defect in the denominator", "numerator": 0, "denominator": 0,
                       "excluded": excluded}
    low, high = wilson_interval(k, n)
    return base | {"available": True, "numerator": k, "denominator": n, "share": k / n,
                   "percent": round(100 * k / n, 1), "ci_low": float(low), "ci_high": float(high), "excluded": excluded}


@dataclass
class Tables:
    """Everything counted from one defect table."""

    defects: Defects
    marginals: dict[str, Marginal]
    cross: dict[str, CrossTable]
    claims: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """``{table: {row_id: {column_id: count}}}`` plus ``marginals``, ``claims`` and ``unavailable``."""
        out: dict[str, Any] = {}
        for name, table in self.cross.items():
            if table.counts is not None:
                out[name] = {str(r): {str(c): int(v) for c, v in row.items()} for r, row in table.counts.iterrows()}
        out["marginals"] = {d: {str(k): int(v) for k, v in m.counts.items()} for d, m in self.marginals.items()}
        out["claims"] = self.claims
        out["unavailable"] = {n: t.reason for n, t in self.cross.items() if t.counts is None}
        if self.defects.corpus:
            out["corpus"] = self.defects.corpus
        return out


def compute_tables(defects: Defects) -> Tables:
    """Marginals of every present dimension, every cross-table and every claim."""
    return Tables(
        defects=defects,
        marginals={d: marginal(defects, d) for d in defects.dimensions},
        cross={name: cross_table(defects, name, r, c) for name, (r, c) in CROSS_TABLES.items()},
        claims={c.id: claim_value(defects, c) for c in CLAIMS},
    )
