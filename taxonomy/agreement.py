"""Inter-rater agreement (Cohen's kappa) between two raters' labeling sheets.

Rows are aligned by issue and by the defect's position within the issue, labels are mapped to
taxonomy ids before comparing (so ``Crash`` and ``crash`` agree), and kappa is computed per
dimension. The identifier column is never compared: pooling it with the labels, as the study's
own spreadsheet did, counts every row as an agreement and inflates kappa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError
from reeng.tables import read_table
from taxonomy.model import Taxonomy, label_key, load_taxonomy

# Header spellings (compared through label_key) -> dimension id.
SHEET_HEADERS: dict[str, str] = {
    "framework": "framework",
    "same code": "same_code",
    "same code?": "same_code",
    "same data": "same_data",
    "same data?": "same_data",
    "dl stage": "stage",
    "part of implementation": "stage",
    "impacts": "impact",
    "impact": "impact",
    "general code error type": "code_error",
    "defect types": "code_error",
    "root causes": "root_cause",
    "dl specific error type": "root_cause",
    "manifestation": "manifestation",
    "reporter": "reporter",
}
ISSUE_HEADERS = ("url", "issue #", "issue")


@dataclass
class DimensionAgreement:
    kappa: float | None
    agreement: float | None
    n: int
    missing: int

    def to_dict(self) -> dict[str, Any]:
        return {"kappa": self.kappa, "agreement": self.agreement, "n": self.n, "missing": self.missing}


@dataclass
class AgreementResult:
    dimensions: dict[str, DimensionAgreement]
    aligned: int
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    pooled: DimensionAgreement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimensions": {k: v.to_dict() for k, v in self.dimensions.items()},
            "pooled_labels": self.pooled.to_dict() if self.pooled else None,
            "aligned_rows": self.aligned,
            "unmatched": self.unmatched,
        }


def _issue_column(frame: pd.DataFrame, path: Path | str) -> str:
    by_key = {label_key(c): c for c in frame.columns}
    for key in ISSUE_HEADERS:
        if key in by_key:
            return by_key[key]
    raise ReengError(f"{path}: missing column 'Issue #' (or 'URL') to align raters' rows on")


def read_sheet(path: Path | str, taxonomy: Taxonomy) -> pd.DataFrame:
    """A rater's sheet as (issue, position, dimension ids...) with labels normalized."""
    raw = read_table(path)
    issue_col = _issue_column(raw, path)
    raw = raw[raw[issue_col].notna() & (raw[issue_col].astype(str).str.strip() != "")]
    dims = {SHEET_HEADERS[label_key(c)]: c for c in raw.columns if label_key(c) in SHEET_HEADERS}
    if not dims:
        raise ReengError(f"{path}: no label column recognised (expected e.g. 'Impacts', 'Manifestation')")
    if raw.empty:
        raise ReengError(f"{path}: the sheet holds no issue rows")
    issue = raw[issue_col].astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    out = pd.DataFrame({"issue": issue.values})
    out["position"] = out.groupby("issue").cumcount()
    for dim_id, col in dims.items():
        dim = taxonomy.dimension(dim_id)
        ids = []
        for row_no, value in zip(raw.index, raw[col]):
            if pd.isna(value) or not str(value).strip():
                ids.append(None)
                continue
            found = dim.lookup(str(value))
            if found is None:
                # +2: header line, and pandas counts from 0.
                raise ReengError(f"{path}: line {row_no + 2}, column {col!r}: unknown label {value!r}")
            ids.append(found)
        out[dim_id] = ids
    return out


def _kappa(a: pd.Series, b: pd.Series) -> DimensionAgreement:
    from sklearn.metrics import cohen_kappa_score

    both = a.notna() & b.notna()
    x, y = a[both].astype(str), b[both].astype(str)
    n = int(both.sum())
    if n == 0:
        return DimensionAgreement(None, None, 0, int((~both).sum()))
    agreement = float((x.values == y.values).mean())
    # kappa is undefined when both raters used one single category throughout.
    kappa = float(cohen_kappa_score(x, y)) if len(set(x) | set(y)) > 1 else None
    return DimensionAgreement(kappa, agreement, n, int((~both).sum()))


def agreement(path_a: Path | str, path_b: Path | str, taxonomy: Taxonomy | None = None) -> AgreementResult:
    """Cohen's kappa per dimension between two sheets in the study's format."""
    taxonomy = taxonomy or load_taxonomy()
    a, b = read_sheet(path_a, taxonomy), read_sheet(path_b, taxonomy)
    merged = a.merge(b, on=["issue", "position"], how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = {
        "only_a": [f"{r.issue}#{r.position + 1}" for r in merged[merged["_merge"] == "left_only"].itertuples()],
        "only_b": [f"{r.issue}#{r.position + 1}" for r in merged[merged["_merge"] == "right_only"].itertuples()],
    }
    paired = merged[merged["_merge"] == "both"]
    shared = [d.id for d in taxonomy.dimensions if d.id in a.columns and d.id in b.columns]
    if not shared:
        raise ReengError("the two sheets share no label column")
    dims = {d: _kappa(paired[f"{d}_a"], paired[f"{d}_b"]) for d in shared}
    pooled = _kappa(
        pd.concat([paired[f"{d}_a"].map(lambda v, d=d: None if v is None or pd.isna(v) else f"{d}:{v}") for d in shared], ignore_index=True),
        pd.concat([paired[f"{d}_b"].map(lambda v, d=d: None if v is None or pd.isna(v) else f"{d}:{v}") for d in shared], ignore_index=True),
    )
    return AgreementResult(dims, len(paired), unmatched, pooled)
