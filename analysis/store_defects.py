"""From a store to defect tables: the classifier's stored predictions and the human labels.

``reeng analyze --store`` starts here. The machine table comes from the taxonomy layer,
:func:`taxonomy.predictions.machine_defects` (the stored predictions of one model, with their
probabilities and provenance ``model:<name>@<version>``); this module adds the human side: a
store's final human labels, or a CSV in the gold or defect-table format, for ``--human``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reeng.errors import ReengError
from taxonomy.gold import LABEL_COLUMNS, canonical_issue_url


def store_machine_defects(store: Path | str, model: str | None = None, min_probability: float | None = None,
                          sample: int | None = None) -> pd.DataFrame:
    """:func:`taxonomy.predictions.machine_defects`, refused when no thread kept a label to analyse."""
    from taxonomy.predictions import machine_defects

    table = machine_defects(store, model, min_probability, sample)
    corpus = table.attrs.get("corpus") or {}
    if table.empty and corpus.get("dropped"):
        reasons = ", ".join(f"{n} on {dim}" for dim, n in corpus["dropped_by"].items() if n)
        raise ReengError(f"{store}: the filter of {corpus.get('model', model)!r} dropped all {corpus['dropped']} labeled "
                         f"threads ({reasons}): no defect is left to analyse")
    if table.empty or table[LABEL_COLUMNS].isna().all().all():
        cut = f" at --min-probability {min_probability}" if min_probability is not None else ""
        name = model or (str(table["provenance"].iloc[0]) if len(table) else "?")
        raise ReengError(f"{store}: every prediction of {name!r} abstained{cut}: no thread has a label to analyse")
    return table


def store_human_defects(store: Path | str) -> pd.DataFrame:
    """The store's final human labels (``human_labels``, from ``reeng annotate import``) as a defect table."""
    from miner.store import open_store, table_names

    conn = open_store(store, create=False)
    try:
        present = table_names(conn)
        if "human_labels" not in present:
            raise ReengError(f"{store}: the store holds no human labels (reeng annotate import writes them)")
        long = pd.read_sql_query("SELECT repo, number, defect_index, dimension, label, provenance FROM human_labels", conn)
        queued = {(r[0].lower(), int(r[1])) for r in conn.execute("SELECT repo, number FROM queued_threads")} \
            if "queued_threads" in present else set()
    finally:
        conn.close()
    if long.empty:
        raise ReengError(f"{store}: the store's human_labels table is empty")
    long = long[long["dimension"].isin(LABEL_COLUMNS)]
    if long.empty:  # labels of other dimensions only (a filter's issue_type, by hand): nothing to pivot
        raise ReengError(f"{store}: the store's human_labels hold no label of a taxonomy dimension "
                         f"({', '.join(LABEL_COLUMNS)})")
    wide = long.pivot_table(index=["repo", "number", "defect_index"], columns="dimension", values="label",
                            aggfunc="first").reset_index()
    prov = long.groupby(["repo", "number", "defect_index"])["provenance"].first().reset_index(drop=True)
    owner_name = wide["repo"].str.partition("/")
    wide["owner"], wide["repo"] = owner_name[0], owner_name[2]
    wide["issue_url"] = [canonical_issue_url(o, n, int(num)) for o, n, num in zip(wide["owner"], wide["repo"], wide["number"])]
    wide["provenance"] = prov.to_numpy()
    # threads the active-learning queue chose (`annotate push --queue`, `export --queue`): not a random sample (analysis.ppi warns)
    wide["chosen_by_queue"] = [(f"{o}/{n}".lower(), int(num)) in queued
                               for o, n, num in zip(wide["owner"], wide["repo"], wide["number"])]
    wide.attrs["source"] = f"{store} (human_labels)"
    return wide


def human_defects(labels: Path | str, store: Path | str | None = None) -> pd.DataFrame:
    """Human labels for ``--human``: a CSV/Parquet in the gold or defect-table format, or ``store`` (its human_labels)."""
    from reeng.tables import read_table
    from taxonomy.gold import GOLD_COLUMNS, import_defects

    if str(labels) == "store":
        if store is None:
            raise ReengError("--human store: needs --store")
        return _mark_protocol_samples(store_human_defects(store), store)
    head = read_table(labels)
    if "URL" in head.columns and any(src in head.columns for src, _ in GOLD_COLUMNS.values()):
        head = import_defects(labels)
    elif "issue_url" not in head.columns:
        raise ReengError(f"{labels}: neither the gold CSV format (URL, Manifestation, ...) nor a defect table (issue_url, labels)")
    head.attrs["source"] = str(labels)
    return _mark_protocol_samples(head, store) if store is not None else head


def _mark_protocol_samples(human: pd.DataFrame, store: Path | str) -> pd.DataFrame:
    """``protocol_sample``: the id of a recorded ``reeng sample`` draw holding the human-labeled thread (the
    study's protocol, closed threads with enough comments, a fixed number per repository: no random sample of
    the corpus, and analysis.ppi warns), else missing."""
    from miner.store import open_store, table_names

    conn = open_store(store, create=False)
    try:
        rows = conn.execute("SELECT sample_id, repo, number FROM sample_issues").fetchall() \
            if "sample_issues" in table_names(conn) else []
    finally:
        conn.close()
    drawn: dict[str, int] = {}
    for sample_id, repo, number in rows:
        owner, _, name = str(repo).partition("/")
        drawn.setdefault(canonical_issue_url(owner, name, int(number)).lower(), int(sample_id))
    human = human.copy()
    human["protocol_sample"] = [drawn.get(str(url).lower()) for url in human["issue_url"]]
    return human
