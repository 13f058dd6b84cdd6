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
from typing import Any

from taxonomy.labelers import Prediction

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
