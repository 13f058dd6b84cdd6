"""The predictions table in the store: labels, probabilities and evidence per thread and dimension.

Schema in ``docs/schemas.md`` ("Predictions (taxonomy layer)"). An abstention is a row with
``label`` NULL and ``needs_review`` 1: the thread was looked at, nothing was confident enough.
Rows are keyed by model, so the built-in labeler and trained models sit side by side.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from taxonomy.gold import DEFECT_SCHEMA, canonical_issue_url
from taxonomy.labelers import Prediction
from taxonomy.rules import LABEL_DIMENSIONS

# The machine-labeled table has exactly the gold defect table's columns (docs/schemas.md).
DEFECT_COLUMNS = list(DEFECT_SCHEMA)

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    repo          TEXT NOT NULL,
    number        INTEGER NOT NULL,
    dimension     TEXT NOT NULL,
    label         TEXT,
    probability   REAL,
    needs_review  INTEGER NOT NULL DEFAULT 0,
    model         TEXT NOT NULL,
    model_version TEXT,
    evidence      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    PRIMARY KEY (repo, number, dimension, model)
);
CREATE INDEX IF NOT EXISTS predictions_by_model ON predictions (model, dimension);
"""


def ensure_table(conn: sqlite3.Connection) -> None:
    with conn:
        conn.executescript(SCHEMA)


def write_predictions(conn: sqlite3.Connection, rows: Iterable[tuple[str, int, dict[str, Prediction]]],
                      model: str, model_version: str) -> int:
    """Replace this model's predictions for the given threads, in one transaction."""
    ensure_table(conn)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    count = 0
    with conn:
        for repo, number, preds in rows:
            for p in preds.values():
                conn.execute(
                    "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (repo, number, p.dimension, p.label, p.probability, int(p.needs_review), model, model_version,
                     json.dumps(p.evidence_json(), ensure_ascii=False), now),
                )
                count += 1
    return count


def read_predictions(conn: sqlite3.Connection, model: str | None = None) -> list[dict[str, Any]]:
    """All stored predictions (of one model), evidence decoded."""
    ensure_table(conn)
    where, params = ("WHERE model = ?", [model]) if model else ("", [])
    rows = conn.execute(f"SELECT * FROM predictions {where} ORDER BY repo, number, dimension", params).fetchall()
    return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]


def machine_defects(store: sqlite3.Connection | Path | str, model: str = "builtin", min_probability: float | None = None,
                    sample: int | None = None) -> pd.DataFrame:
    """A store's machine labels as a defect table (the gold schema): one row per thread the filter keeps.

    Reads the ``predictions`` of ``model`` (run ``reeng classify predict`` first). A thread is
    kept unless it was confidently called a feature request or question, or not a
    reengineering defect. Abstained dimensions, and labels below ``min_probability``, are null,
    as a missing human label would be. ``sample`` restricts the table to one drawn sample
    (``sample_issues``).
    """
    from miner.store import open_store
    from reeng.errors import ReengError

    conn = store if isinstance(store, sqlite3.Connection) else open_store(store, create=False)
    rows = read_predictions(conn, model)
    if not rows:
        raise ReengError(f"the store holds no predictions of model {model!r}: run `reeng classify predict` first")
    keep: set[tuple[str, int]] | None = None
    if sample is not None:
        keep = {(r[0], int(r[1])) for r in conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = ?", (sample,))}
        if not keep:
            raise ReengError(f"no sample {sample} in the store (see `reeng sample`)")
    threads: dict[tuple[str, int], dict[str, Any]] = {}
    version = ""
    for r in rows:
        key = (r["repo"], int(r["number"]))
        if keep is not None and key not in keep:
            continue
        label = r["label"]
        if label is not None and min_probability is not None and (r["probability"] or 0.0) < min_probability:
            label = None
        threads.setdefault(key, {})[r["dimension"]] = label
        version = r["model_version"] or version
    issues = {(r[0], int(r[1])): (r[2], r[3]) for r in conn.execute("SELECT repo, number, created_at, labels FROM issues")}
    records = []
    for (repo, number), dims in threads.items():
        if dims.get("issue_type") in ("feature", "question") or dims.get("reengineering") == "no":
            continue
        owner, _, name = repo.partition("/")
        created, labels = issues.get((repo, number), (None, None))
        record: dict[str, Any] = dict.fromkeys(DEFECT_COLUMNS)
        record.update({"issue_url": canonical_issue_url(owner, name, number), "owner": owner, "repo": name, "number": number,
                       "defect_index": 1, "framework": dims.get("framework"), "issue_created_at": created,
                       "issue_labels": labels, "provenance": f"machine:{model}@{version}"})
        record.update({dim: dims.get(dim) for dim in LABEL_DIMENSIONS})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=DEFECT_COLUMNS)
    for col in DEFECT_COLUMNS:
        if col not in ("number", "defect_index", "research_prototype"):
            frame[col] = frame[col].astype("string")  # typed even when a column is all null
    frame["number"] = frame["number"].astype("int64")
    frame["defect_index"] = frame["defect_index"].astype("int64")
    frame["research_prototype"] = frame["research_prototype"].astype("boolean")
    return frame
