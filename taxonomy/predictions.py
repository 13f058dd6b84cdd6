"""The predictions table in the store: labels, probabilities and evidence per thread and dimension.

Schema in ``docs/schemas.md`` ("Predictions (taxonomy layer)"). An abstention is a row with
``label`` NULL and ``needs_review`` 1: the thread was looked at, nothing was confident enough.
Rows are keyed by model, so the built-in labeler and trained models sit side by side.
"""

from __future__ import annotations

import json
import numbers
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError
from taxonomy.gold import DEFECT_SCHEMA, LABEL_COLUMNS, canonical_issue_url
from taxonomy.model import load_taxonomy
from taxonomy.labelers import Prediction

# The machine-labeled table has exactly the gold defect table's columns (docs/schemas.md).

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
    """Replace this model's predictions for the given threads, in one transaction: every row the model had for
    such a thread goes, also of a dimension it no longer predicts (a retrained model of the same name)."""
    ensure_table(conn)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    count = 0
    with conn:
        for repo, number, preds in rows:
            conn.execute("DELETE FROM predictions WHERE repo = ? AND number = ? AND model = ?", (repo, number, model))
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
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row  # rows by name from any connection, sqlite3.connect's plain one too
    rows = cursor.execute(f"SELECT * FROM predictions {where} ORDER BY repo, number, dimension", params).fetchall()
    return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]


# The filter's dimensions: they decide which threads are defects, not what the defects are.
# Decided by taxonomy.defect_filter: the defect rules, the defect filter trained on the annotations and the
# reengineering filter trained on Denchmark (every issue type but ``defect`` is dropped).
FILTER_DROPS = {"issue_type": {"feature", "question", "documentation", "not_defect"}, "reengineering": {"no"}}


def filter_dropped_threads(conn: sqlite3.Connection, model: str) -> set[tuple[str, int]]:
    """(lower-case repo, number) of the threads that ``model``'s stored filter decisions drop (:data:`FILTER_DROPS`):
    the threads :func:`machine_defects` leaves out of the machine-labeled corpus."""
    from miner.store import table_names

    if "predictions" not in table_names(conn):
        return set()
    marks = ", ".join("?" * len(FILTER_DROPS))  # only the filter's rows, without their evidence
    decisions = pd.read_sql_query(f"SELECT repo, number, dimension, label FROM predictions WHERE model = ? "
                                  f"AND dimension IN ({marks})", conn, params=(model, *FILTER_DROPS))
    return {(repo.lower(), number) for repo, number in set().union(*dropped_keys(decisions).values())}


def filter_summary(preds: pd.DataFrame, stored: int) -> dict[str, Any]:
    """What became of a corpus's threads on the way to its machine defect table: ``threads`` stored (in
    the sample, when one is analysed), ``labeled`` by the model, ``unlabeled`` (no prediction of it),
    ``dropped`` by its filter (:data:`FILTER_DROPS`) with ``dropped_by`` dimension (a thread can be
    dropped on both), and ``kept``: the rows of the table. ``preds``: one model's predictions."""
    keys = set(zip(preds["repo"], preds["number"].astype(int)))
    by_dim = dropped_keys(preds)
    dropped = set().union(*by_dim.values())
    return {"threads": int(stored), "labeled": len(keys), "unlabeled": max(int(stored) - len(keys), 0),
            "dropped": len(dropped), "dropped_by": {dim: len(k) for dim, k in by_dim.items()},
            "kept": len(keys - dropped)}


FILTER_DECISIONS = ("kept", "dropped", "unlabeled")


def filter_decisions(preds: pd.DataFrame, stored: Iterable[tuple[str, int]] = ()) -> pd.DataFrame:
    """One model's filter decision on each thread it labeled and each of ``stored``: ``kept`` (its labels form
    the machine defect table), ``dropped`` (``reason``: the filter dimensions and labels that drop it,
    :func:`dropped_keys`) or ``unlabeled`` (no prediction of it): the threads :func:`filter_summary` counts."""
    preds = preds.assign(number=preds["number"].astype(int))
    by_dim = dropped_keys(preds)
    decided = preds[preds["dimension"].isin(FILTER_DROPS)]
    said = {(r, n, d): lab for r, n, d, lab in decided[["repo", "number", "dimension", "label"]].itertuples(index=False)}
    labeled = set(zip(preds["repo"], preds["number"]))
    rows = []
    for key in sorted(labeled | {(r, int(n)) for r, n in stored}):
        reasons = [f"{dim}: {said[(*key, dim)]}" for dim in FILTER_DROPS if key in by_dim[dim]]
        rows.append((*key, "dropped" if reasons else "kept" if key in labeled else "unlabeled", "; ".join(reasons) or None))
    return pd.DataFrame(rows, columns=["repo", "number", "decision", "reason"]).astype(
        {"repo": "string", "number": "int64", "decision": "string", "reason": "string"})


def dropped_keys(preds: pd.DataFrame) -> dict[str, set[tuple[str, int]]]:
    """Filter dimension -> the (repo, number) its decisions in ``preds`` (a predictions frame) drop."""
    out = {}
    for dim, labels in FILTER_DROPS.items():
        hit = preds[(preds["dimension"] == dim) & preds["label"].isin(labels)]
        out[dim] = set(zip(hit["repo"], hit["number"].astype(int)))
    return out


def machine_defects(store: Path | str | sqlite3.Connection, model: str | None = None,
                          min_probability: float | None = None, sample: int | None = None) -> pd.DataFrame:
    """The stored predictions of one model as a machine defect table (gold schema + probabilities).

    ``model`` defaults to the only model with predictions (an error names them when there are
    several); labels below ``min_probability`` become missing, as an abstention does. Errors
    (one line each): no predictions, an unknown model or sample, a sample with no prediction.
    """
    from miner.sample import sample_keys
    from miner.store import open_store, table_names

    source = str(store) if not isinstance(store, sqlite3.Connection) else "store"
    if min_probability is not None and (isinstance(min_probability, bool) or not isinstance(min_probability, numbers.Real)
                                        or not 0 <= min_probability <= 1):
        raise ReengError(f"--min-probability {min_probability!r}: must be between 0 and 1")
    conn = store if isinstance(store, sqlite3.Connection) else open_store(store, create=False)
    try:
        keys = sample_keys(conn, sample, source) if sample is not None else None
        present = table_names(conn)
        rows = read_predictions(conn) if "predictions" in present else []
        threads = {(r[0], int(r[1])): (r[2], r[3]) for r in conn.execute("SELECT repo, number, created_at, labels FROM issues")}
    finally:
        if not isinstance(store, sqlite3.Connection):
            conn.close()
    if not threads:
        raise ReengError(f"{source}: the store holds no threads (mine or import some first)")
    if not rows:
        raise ReengError(f"{source}: the store holds no predictions (label it first: reeng classify predict --builtin --store {source})")
    preds = pd.DataFrame(rows)
    models = sorted(preds["model"].unique())
    if model is None and len(models) > 1:
        raise ReengError(f"{source}: predictions of several models ({', '.join(models)}): choose one with --model")
    model = model or models[0]
    if model not in models:
        raise ReengError(f"{source}: no predictions of model {model!r} (models: {', '.join(models)})")
    preds = preds[preds["model"] == model]
    if keys is not None:
        preds = preds[[(r, int(n)) in keys for r, n in zip(preds["repo"], preds["number"])]]
        if preds.empty:
            raise ReengError(f"{source}: sample {sample} has no predicted thread (run reeng classify predict on it)")
    version = str(preds["model_version"].dropna().iloc[0]) if preds["model_version"].notna().any() else "unknown"
    table = _defect_table(preds, threads, f"model:{model}@{version}", min_probability)
    # kept with the table (and its Parquet file): the report and the release say how the corpus was filtered
    table.attrs["corpus"] = filter_summary(preds, len(keys) if keys is not None else len(threads)) | {
        "model": f"{model}@{version}", "sample": sample}
    return table


def _defect_table(preds: pd.DataFrame, threads: dict[tuple[str, int], tuple[str | None, str | None]],
                  provenance: str, min_probability: float | None) -> pd.DataFrame:
    tax = load_taxonomy()
    preds = preds.assign(number=preds["number"].astype(int))
    drop_keys = set().union(*dropped_keys(preds).values())
    labels = preds[preds["dimension"].isin(LABEL_COLUMNS)].copy()
    if min_probability is not None:
        low = pd.to_numeric(labels["probability"], errors="coerce").fillna(0) < min_probability
        labels.loc[low, "label"] = None
    labels["label"] = [None if lab is None or pd.isna(lab) else tax.dimension(d).lookup(str(lab))
                       for d, lab in zip(labels["dimension"], labels["label"])]
    keys = sorted({k for k in zip(preds["repo"], preds["number"])} - drop_keys)
    wide = labels.pivot_table(index=["repo", "number"], columns="dimension", values="label", aggfunc="first")
    probs = labels.assign(probability=pd.to_numeric(labels["probability"], errors="coerce")).pivot_table(
        index=["repo", "number"], columns="dimension", values="probability", aggfunc="first")
    index = pd.MultiIndex.from_tuples(keys, names=["repo", "number"])
    frame = pd.DataFrame(index=index)
    owner_name = [k[0].partition("/") for k in keys]
    frame["issue_url"] = [canonical_issue_url(o, n, num) for (o, _, n), (_, num) in zip(owner_name, keys)]
    frame["owner"] = [o for o, _, _ in owner_name]
    frame["repo_name"] = [n for _, _, n in owner_name]
    frame["defect_index"] = 1
    for dim in LABEL_COLUMNS:
        frame[dim] = wide[dim].reindex(index) if dim in wide else None
    frame["issue_created_at"] = [threads.get(k, (None, None))[0] for k in keys]
    frame["issue_labels"] = [threads.get(k, (None, None))[1] for k in keys]
    frame["provenance"] = provenance
    for dim in LABEL_COLUMNS:
        frame[f"{dim}_probability"] = probs[dim].reindex(index).astype("float64") if dim in probs else float("nan")
    frame = frame.reset_index().drop(columns=["repo"]).rename(columns={"repo_name": "repo"})
    for col in DEFECT_SCHEMA:  # what a machine cannot know (research prototype, source row...) stays null
        if col not in frame.columns:
            frame[col] = None
    frame = frame[list(DEFECT_SCHEMA) + [f"{d}_probability" for d in LABEL_COLUMNS]]
    for col in DEFECT_SCHEMA:
        if col not in ("number", "defect_index", "research_prototype"):
            frame[col] = frame[col].astype("string")  # typed even when a column is all null
    frame["number"] = frame["number"].astype("int64")
    frame["defect_index"] = frame["defect_index"].astype("int64")
    frame["research_prototype"] = frame["research_prototype"].astype("boolean")
    return frame
