"""From a store to defect tables: the classifier's stored predictions and the human labels.

``reeng analyze --store`` starts here. The machine table is built from the ``predictions``
table the classifier wrote (``reeng classify predict``), not by running the classifier again:
one row per thread the classifier's filter keeps, every label a taxonomy id, each with its
``<dimension>_probability`` and the provenance ``model:<name>@<version>``, so the table
releases with its model and probabilities. Restricting to a recorded ``reeng sample`` draw and
to labels above a probability are options. The taxonomy layer owns the documented machine
defect schema (``docs/schemas.md``); this module fills it from the store through
:func:`taxonomy.predictions.read_predictions`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from reeng.errors import ReengError
from taxonomy.gold import DEFECT_SCHEMA, LABEL_COLUMNS, canonical_issue_url
from taxonomy.model import load_taxonomy

# The filter's dimensions: they decide which threads are defects, not what the defects are.
FILTER_DROPS = {"issue_type": {"feature", "question"}, "reengineering": {"no"}}


def _sample_keys(conn: sqlite3.Connection, sample: int, source: str) -> set[tuple[str, int]]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    known = [r[0] for r in conn.execute("SELECT sample_id FROM samples ORDER BY sample_id")] if "samples" in present else []
    if sample not in known:
        listed = ", ".join(map(str, known)) if known else "none (draw one with `reeng sample`)"
        raise ReengError(f"{source}: no sample {sample} (recorded samples: {listed})")
    rows = conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = ?", (sample,)).fetchall()
    return {(r[0], int(r[1])) for r in rows}


def store_machine_defects(store: Path | str | sqlite3.Connection, *, model: str | None = None,
                          min_probability: float | None = None, sample: int | None = None) -> pd.DataFrame:
    """The stored predictions of one model as a machine defect table (gold schema + probabilities).

    ``model`` defaults to the only model with predictions (an error names them when there are
    several); labels below ``min_probability`` become missing, as an abstention does. Errors
    (one line each): no predictions, an unknown model or sample, a sample with no prediction.
    """
    from miner.store import open_store
    from taxonomy.predictions import read_predictions

    source = str(store) if not isinstance(store, sqlite3.Connection) else "store"
    if min_probability is not None and not 0 <= min_probability <= 1:
        raise ReengError(f"--min-probability {min_probability}: must be between 0 and 1")
    conn = store if isinstance(store, sqlite3.Connection) else open_store(store, create=False)
    try:
        keys = _sample_keys(conn, sample, source) if sample is not None else None
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = read_predictions(conn) if "predictions" in present else []
        threads = {(r[0], int(r[1])): (r[2], r[3]) for r in conn.execute("SELECT repo, number, created_at, labels FROM issues")}
    finally:
        if not isinstance(store, sqlite3.Connection):
            conn.close()
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
    if table.empty or table[LABEL_COLUMNS].isna().all().all():
        cut = f" at --min-probability {min_probability}" if min_probability is not None else ""
        raise ReengError(f"{source}: every prediction of model {model!r} abstained{cut}: no thread has a label to analyse")
    return table


def _defect_table(preds: pd.DataFrame, threads: dict[tuple[str, int], tuple[str | None, str | None]],
                  provenance: str, min_probability: float | None) -> pd.DataFrame:
    tax = load_taxonomy()
    preds = preds.assign(number=preds["number"].astype(int))
    dropped = pd.Series(False, index=preds.index)
    for dim, labels in FILTER_DROPS.items():
        dropped |= (preds["dimension"] == dim) & preds["label"].isin(labels)
    drop_keys = set(zip(preds.loc[dropped, "repo"], preds.loc[dropped, "number"]))
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
    columns = [c for c in DEFECT_SCHEMA if c in frame.columns] + [f"{d}_probability" for d in LABEL_COLUMNS]
    frame = frame[columns]
    for col in ("issue_url", "owner", "repo", *LABEL_COLUMNS, "issue_created_at", "issue_labels", "provenance"):
        frame[col] = frame[col].astype("string")
    frame["number"] = frame["number"].astype("int64")
    frame["defect_index"] = frame["defect_index"].astype("int64")
    return frame


def store_human_defects(store: Path | str) -> pd.DataFrame:
    """The store's final human labels (``human_labels``, from ``reeng annotate import``) as a defect table."""
    from miner.store import open_store

    conn = open_store(store, create=False)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "human_labels" not in present:
            raise ReengError(f"{store}: the store holds no human labels (reeng annotate import writes them)")
        long = pd.read_sql_query("SELECT repo, number, defect_index, dimension, label, provenance FROM human_labels", conn)
    finally:
        conn.close()
    if long.empty:
        raise ReengError(f"{store}: the store's human_labels table is empty")
    long = long[long["dimension"].isin(LABEL_COLUMNS)]
    wide = long.pivot_table(index=["repo", "number", "defect_index"], columns="dimension", values="label",
                            aggfunc="first").reset_index()
    prov = long.groupby(["repo", "number", "defect_index"])["provenance"].first().reset_index(drop=True)
    owner_name = wide["repo"].str.partition("/")
    wide["owner"], wide["repo"] = owner_name[0], owner_name[2]
    wide["issue_url"] = [canonical_issue_url(o, n, int(num)) for o, n, num in zip(wide["owner"], wide["repo"], wide["number"])]
    wide["provenance"] = prov.to_numpy()
    wide.attrs["source"] = f"{store} (human_labels)"
    return wide


def human_defects(labels: Path | str, store: Path | str | None = None) -> pd.DataFrame:
    """Human labels for ``--human``: a CSV/Parquet in the gold or defect-table format, or ``store`` (its human_labels)."""
    from reeng.tables import read_table
    from taxonomy.gold import GOLD_COLUMNS, import_defects

    if str(labels) == "store":
        if store is None:
            raise ReengError("--human store: needs --store")
        return store_human_defects(store)
    head = read_table(labels)
    if "URL" in head.columns and any(src in head.columns for src, _ in GOLD_COLUMNS.values()):
        head = import_defects(labels)
    elif "issue_url" not in head.columns:
        raise ReengError(f"{labels}: neither the gold CSV format (URL, Manifestation, ...) nor a defect table (issue_url, labels)")
    head.attrs["source"] = str(labels)
    return head
