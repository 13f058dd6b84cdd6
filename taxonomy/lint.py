"""Data-quality findings for the study's published sheets.

Lint never changes data; it lists what a researcher should know before trusting counts: rows
that repeat, spellings that drift, values the instrument does not define, gaps, columns that
slid out of place and repositories described inconsistently. Rows are named by the CSV's own
first (index) column, as the authors number them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.tables import read_table
from taxonomy.gold import GOLD_COLUMNS, NON_REENG_HEADER, detect_shift
from taxonomy.model import Taxonomy, load_taxonomy


@dataclass
class Finding:
    kind: str
    rows: list[str]
    column: str | None
    detail: Any = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row_ids(raw: pd.DataFrame, mask: pd.Series) -> list[str]:
    return [str(v) for v in raw.loc[mask, raw.columns[0]]]


def duplicate_rows(raw: pd.DataFrame) -> list[Finding]:
    """Rows equal in every column but the index, one finding per group."""
    body = raw.columns[1:]
    dup = raw[raw.duplicated(subset=body, keep=False)]
    findings = []
    for _, group in dup.groupby(list(body), dropna=False, sort=False):
        findings.append(Finding("duplicate_rows", [str(v) for v in group.iloc[:, 0]], None, "identical in every column"))
    return findings


def label_findings(raw: pd.DataFrame, taxonomy: Taxonomy, skip: set[str]) -> list[Finding]:
    """Spelling drift, values outside the instrument, unknown labels and gaps, per label column."""
    findings: list[Finding] = []
    for src, dim_id in GOLD_COLUMNS.values():
        if src not in raw.columns or src in skip:
            continue
        dim = taxonomy.dimension(dim_id)
        values = raw[src]
        missing = values.isna() | (values.astype(str).str.strip() == "")
        if missing.any():
            findings.append(Finding("missing_value", _row_ids(raw, missing), src, "no value"))
        present = values[~missing].astype(str)
        ids = present.map(dim.lookup)
        unknown = ids.isna()
        for value in sorted(present[unknown].unique()):
            findings.append(Finding("unknown_label", _row_ids(raw, values == value), src, value))
        spellings: dict[str, list[str]] = {}
        for raw_value, cat in zip(present[~unknown], ids[~unknown]):
            spellings.setdefault(cat, [])
            if raw_value not in spellings[cat]:
                spellings[cat].append(raw_value)
        drift = {cat: sorted(v) for cat, v in spellings.items() if len(v) > 1}
        if drift:
            rows = _row_ids(raw, values.isin([s for v in drift.values() for s in v]))
            findings.append(Finding("label_drift", rows, src, drift))
        for cat in spellings:
            origin = dim.category(cat).origin
            if origin != "instrument":
                mask = values.fillna("").astype(str).map(dim.lookup) == cat
                findings.append(Finding("outside_instrument", _row_ids(raw, mask), src, {"category": cat, "origin": origin}))
    return findings


def shifted_columns(raw: pd.DataFrame) -> list[Finding]:
    """Columns that repeat their left neighbour: the sign of a value pushed one column right."""
    findings = []
    cols = list(raw.columns)
    for left, right in zip(cols[1:], cols[2:]):
        a, b = raw[left], raw[right]
        both = a.notna() & b.notna()
        if both.sum() >= max(3, 0.9 * len(raw)) and (a[both] == b[both]).mean() > 0.9:
            findings.append(Finding("shifted_columns", _row_ids(raw, both & (a == b)), right, f"repeats column {left!r}"))
    if all(c in raw.columns for c in NON_REENG_HEADER) and "Manifestation" not in raw.columns:
        try:
            shift = detect_shift(raw)
        except Exception:  # noqa: BLE001 - an undecidable layout is itself the finding
            shift = -1
        if shift != 0:
            findings.append(Finding("shifted_columns", _row_ids(raw, raw.iloc[:, 0].notna()), "Time Slot/d",
                                    "time values stand one column right of their headers" if shift == 1 else "layout not recognised"))
    return findings


def malformed_numbers(raw: pd.DataFrame) -> list[Finding]:
    """Issue numbers that are not plain integers (a URL fragment pasted in, say)."""
    values = raw["Issue #"].astype(str).str.strip()
    bad = ~values.str.fullmatch(r"\d+(\.0)?")
    return [Finding("malformed_value", _row_ids(raw, bad & (values == v)), "Issue #", v) for v in sorted(values[bad].unique())]


def repository_conflicts(raw: pd.DataFrame, skip: set[str]) -> list[Finding]:
    """Repository-level fields that differ between rows of the same repository."""
    findings = []
    key = ["Repo owner", "Repo name"]
    if not all(k in raw.columns for k in key):
        return findings
    for column, kind in (("Research Prototype", "research_prototype_conflict"), ("Repo type", "repo_type_conflict")):
        if column not in raw.columns or column in skip:
            continue
        for (owner, name), group in raw.groupby(key, sort=True):
            values = group[column].dropna().astype(str).str.strip().str.casefold().unique()
            if len(values) > 1:
                findings.append(Finding(kind, [str(v) for v in group.iloc[:, 0]], column,
                                        {"repository": f"{owner}/{name}", "values": sorted(values)}))
    return findings


def missing_columns(raw: pd.DataFrame) -> list[Finding]:
    """Label columns a defect sheet lacks: every count along that dimension would silently be empty.

    The non-reengineering sheet (its own layout, no label columns) is not a defect sheet; the published defect
    sheet holds every column of that layout too, so only the label columns tell the two apart.
    """
    labels = [src for src, _ in GOLD_COLUMNS.values()]
    if all(c in raw.columns for c in NON_REENG_HEADER) and not any(c in raw.columns for c in labels if c not in NON_REENG_HEADER):
        return []
    return [Finding("missing_column", [], src, "the defect sheet has no such column; none of its labels can be counted")
            for src in labels if src not in raw.columns]


def lint_file(path: Path | str, taxonomy: Taxonomy | None = None) -> list[Finding]:
    """All findings for one published sheet (defects or non-reengineering issues)."""
    taxonomy = taxonomy or load_taxonomy()
    raw = read_table(path, required=["URL", "Repo owner", "Repo name", "Issue #"])
    shifted = shifted_columns(raw)
    # A column holding its neighbour's values says nothing about its own field: report the
    # shift once instead of every value in it as an unknown label or a conflict.
    skip = {f.column for f in shifted if f.column}
    return [
        *missing_columns(raw),
        *duplicate_rows(raw),
        *malformed_numbers(raw),
        *label_findings(raw, taxonomy, skip),
        *shifted,
        *repository_conflicts(raw, skip),
    ]
