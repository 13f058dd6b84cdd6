"""Import the study's human-labeled defects into the normalized defect table.

The defect table is the contract between the layers (documented in ``docs/schemas.md``): one
row per defect, every label a taxonomy category id. Analysis, the classifier's gold evaluation
and the dataset release all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError
from reeng.outputs import spreadsheet_safe
from reeng.tables import read_table
from taxonomy.model import Taxonomy, load_taxonomy

# Output column -> (published CSV column, taxonomy dimension or None for plain values).
GOLD_COLUMNS: dict[str, tuple[str, str | None]] = {
    "framework": ("Framework", "framework"),
    "repo_type": ("Repo type", "repo_type"),
    "project_type": ("Project Type", "project_type"),
    "reporter": ("Reporter", "reporter"),
    "same_code": ("Same Code?", "same_code"),
    "same_data": ("Same Data?", "same_data"),
    "stage": ("Part of Implementation", "stage"),
    "manifestation": ("Manifestation", "manifestation"),
    "impact": ("Impacts", "impact"),
    "code_error": ("Defect types", "code_error"),
    "root_cause": ("Root Causes", "root_cause"),
}
IDENTITY_COLUMNS = {"URL": "issue_url", "Repo owner": "owner", "Repo name": "repo", "Issue #": "number"}
LABEL_COLUMNS = list(GOLD_COLUMNS)

DEFECT_SCHEMA: dict[str, str] = {
    "issue_url": "GitHub issue URL, canonical (https://github.com/OWNER/REPO/issues/N, no fragment)",
    "owner": "repository owner",
    "repo": "repository name",
    "number": "issue number (int)",
    "defect_index": "1-based position of the defect among the rows of the same issue",
    **{col: f"taxonomy id, dimension `{dim}`" for col, (_, dim) in GOLD_COLUMNS.items()},
    "research_prototype": "repository flagged as the authors' research prototype (bool, may be missing)",
    "repo_created_at": "repository creation time, ISO 8601",
    "issue_created_at": "issue creation time, ISO 8601",
    "issue_labels": "GitHub labels as recorded by the study (raw text)",
    "source_row": "value of the published CSV's first (index) column",
    "provenance": "who assigned the labels: 'jiang2024:adjudicated' for the study's final labels",
}
NON_REENGINEERING_SCHEMA: dict[str, str] = {
    key: DEFECT_SCHEMA[key]
    for key in ("issue_url", "owner", "repo", "number", "research_prototype", "repo_created_at", "issue_created_at", "source_row")
} | {"time_slot_days": "days from repository creation to the issue (int)", "issue_labels": DEFECT_SCHEMA["issue_labels"]}

YES_NO = {"yes": True, "no": False}


@dataclass(frozen=True)
class LabelError:
    """Where a label failed to normalize (for messages and for lint)."""

    row: str
    column: str
    value: str


def _yes_no(value: object) -> bool | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or pd.isna(value):
        return None
    return YES_NO.get(str(value).strip().casefold())


def normalize_labels(raw: pd.DataFrame, taxonomy: Taxonomy) -> tuple[pd.DataFrame, list[LabelError]]:
    """Map every label column to category ids; unknown spellings are collected, missing stay missing."""
    out = pd.DataFrame(index=raw.index)
    errors: list[LabelError] = []
    rows = raw.iloc[:, 0].astype(str)
    for col, (src, dim_id) in GOLD_COLUMNS.items():
        dim = taxonomy.dimension(dim_id)
        values = []
        for row, value in zip(rows, raw[src]):
            if pd.isna(value) or not str(value).strip():
                values.append(None)
                continue
            found = dim.lookup(str(value))
            if found is None:
                errors.append(LabelError(row, src, str(value)))
            values.append(found)
        out[col] = pd.Series(values, index=raw.index, dtype="string")
    return out, errors


def read_gold_csv(path: Path | str) -> pd.DataFrame:
    """The published defect CSV as strings, with every column the import needs present."""
    required = list(IDENTITY_COLUMNS) + [src for src, _ in GOLD_COLUMNS.values()]
    return read_table(path, required=required)


def import_defects(path: Path | str, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """The study's defect CSV as a normalized defect table; an unknown label is an error."""
    taxonomy = taxonomy or load_taxonomy()
    raw = read_gold_csv(path)
    labels, errors = normalize_labels(raw, taxonomy)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ReengError(
            f"{path}: row {first.row}, column {first.column!r}: unknown label {first.value!r}{more}"
        )
    frame = pd.DataFrame({new: raw[old] for old, new in IDENTITY_COLUMNS.items()})
    frame["number"] = _int_column(frame["number"], path, "Issue #")
    frame["issue_url"] = [canonical_issue_url(o, r, n) for o, r, n in zip(frame["owner"], frame["repo"], frame["number"])]
    frame["defect_index"] = frame.groupby("issue_url").cumcount() + 1
    for col in LABEL_COLUMNS:
        frame[col] = labels[col]
    frame["research_prototype"] = pd.array([_yes_no(v) for v in raw["Research Prototype"]], dtype="boolean") \
        if "Research Prototype" in raw else pd.array([None] * len(raw), dtype="boolean")
    frame["repo_created_at"] = raw.get("Repo creation time")
    frame["issue_created_at"] = raw.get("Issue creation time")
    frame["issue_labels"] = raw.get("Label")
    frame["source_row"] = raw.iloc[:, 0]
    frame["provenance"] = "jiang2024:adjudicated"
    return frame[list(DEFECT_SCHEMA)].reset_index(drop=True).astype({c: "string" for c in DEFECT_SCHEMA if c not in ("number", "defect_index", "research_prototype")})


def _int_column(values: pd.Series, path: Path | str, column: str) -> pd.Series:
    """Issue numbers as ints; a trailing URL fragment (``693#issue-549261146``) is dropped."""
    numbers = values.astype(str).str.extract(r"^\s*(\d+)(?:\.0)?(?:#\S*)?\s*$")[0]
    bad = numbers.isna()
    if bad.any():
        raise ReengError(f"{path}: column {column!r} holds a value that is not an issue number: {values[bad].iloc[0]!r}")
    return numbers.astype("int64")


def canonical_issue_url(owner: str, repo: str, number: int) -> str:
    """The URL an issue is joined on: no fragment, no trailing slash."""
    return f"https://github.com/{owner}/{repo}/issues/{number}"


# --- the 93 non-reengineering issues -----------------------------------------------------------

NON_REENG_HEADER = [
    "URL", "Repo owner", "Repo name", "Issue #", "Repo type", "Research Prototype",
    "Repo creation time", "Issue creation time", "Time Slot/d", "Label",
]


def _looks_like_timestamps(series: pd.Series) -> float:
    values = series.dropna()
    if values.empty:
        return 0.0
    return float(pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601").notna().mean())


def detect_shift(raw: pd.DataFrame) -> int:
    """How many columns the time values sit to the right of their headers.

    In the published file ``Repo type`` repeats the issue number and the creation times, the
    time slot and the day count each stand one column right of their header (the last header,
    ``Label``, then holds the day count and the labels are lost). Decided from content, never
    from row positions: the column headed ``Time Slot/d`` holds timestamps when shifted and day
    counts when not.
    """
    if _looks_like_timestamps(raw["Time Slot/d"]) > 0.9:
        return 1
    if pd.to_numeric(raw["Time Slot/d"].dropna(), errors="coerce").notna().mean() > 0.9:
        return 0
    raise ReengError(
        "cannot tell how the non-reengineering columns are laid out: "
        "'Time Slot/d' holds neither day counts nor timestamps"
    )


def import_non_reengineering(path: Path | str) -> pd.DataFrame:
    """The issues the study filtered out as not reengineering defects (its negatives)."""
    raw = read_table(path, required=NON_REENG_HEADER)
    shift = detect_shift(raw)
    cols = list(raw.columns)

    def under(header: str) -> pd.Series:
        """The values that belong to ``header``, wherever the shift put them."""
        idx = cols.index(header) + shift
        return raw[cols[idx]] if idx < len(cols) else pd.Series([pd.NA] * len(raw), dtype="string")

    frame = pd.DataFrame({new: raw[old] for old, new in IDENTITY_COLUMNS.items()})
    frame["number"] = _int_column(frame["number"], path, "Issue #")
    frame["issue_url"] = [canonical_issue_url(o, r, n) for o, r, n in zip(frame["owner"], frame["repo"], frame["number"])]
    frame["research_prototype"] = pd.array([_yes_no(v) for v in raw["Research Prototype"]], dtype="boolean")
    frame["repo_created_at"] = under("Repo creation time")
    frame["issue_created_at"] = under("Issue creation time")
    frame["time_slot_days"] = pd.to_numeric(under("Time Slot/d"), errors="coerce").astype("Int64")
    frame["issue_labels"] = under("Label")
    frame["source_row"] = raw.iloc[:, 0]
    return frame[list(NON_REENGINEERING_SCHEMA)].reset_index(drop=True)


def write_table(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.parquet`` and ``stem.csv`` into ``out_dir`` (a staging folder in practice)."""
    parquet, csv = out_dir / f"{stem}.parquet", out_dir / f"{stem}.csv"
    frame.to_parquet(parquet, index=False)
    spreadsheet_safe(frame).to_csv(csv, index=False)
    return [parquet, csv]



def fetch_gold_threads(client: Any, conn: Any, gold: pd.DataFrame, *, skip_stored: bool = True,
                       progress: bool = True) -> dict[str, Any]:
    """Fetch exactly the gold issues' threads (issue and comments, REST) into a store, through the miner's client.

    Issues already in the store are skipped (a rerun resumes); an issue GitHub no longer has is
    counted, not fatal.
    """
    from reeng.progress import progress_bar

    from miner.client import NotFound
    from miner.payloads import rest_comment, rest_issue
    from miner.store import save_thread, thread_keys

    wanted = sorted({(f"{o}/{r}", int(n)) for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)})
    stored = thread_keys(conn) if skip_stored else set()
    todo = [(repo, n) for repo, n in wanted if (repo.casefold(), n) not in stored]
    fetched, missing = 0, []
    with progress_bar(progress) as bar:
        task = bar.add_task("gold threads", total=len(todo))
        for repo, number in todo:
            try:
                issue = rest_issue(repo, client.get(f"/repos/{repo}/issues/{number}", what=f"{repo}#{number}").data)
                comments, page = [], 1
                while True:
                    batch = client.get(f"/repos/{repo}/issues/{number}/comments", {"per_page": 100, "page": page},
                                       what=f"{repo}#{number} comments").data or []
                    comments += [rest_comment(c) for c in batch]
                    if len(batch) < 100:
                        break
                    page += 1
            except NotFound:
                missing.append(f"{repo}#{number}")
                bar.advance(task)
                continue
            save_thread(conn, {**issue, "comments": comments}, source="github")
            fetched += 1
            bar.advance(task)
    return {"gold_issues": len(wanted), "already_stored": len(wanted) - len(todo), "fetched": fetched, "missing": missing}
