"""The annotation workflow: labeling sheets with suggestions, rater agreement, adjudication, active learning.

Sheets use the study's column headers (``URL``, ``DL stage``, ``Impact``...) so the foundation's
agreement code (:mod:`taxonomy.agreement`) reads them unchanged; the machine's suggestions sit
in columns it ignores. Adjudicated labels go into the store's ``human_labels`` table with their
provenance, where the next training run and the active-learning queue find them.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError
from taxonomy.annotate_config import NO_LABEL
from taxonomy.model import load_taxonomy
from taxonomy.rules import LABEL_DIMENSIONS

# Dimension -> the header the rater fills in (recognised by taxonomy.agreement.SHEET_HEADERS).
RATER_HEADERS = {"stage": "DL stage", "manifestation": "Manifestation", "impact": "Impact",
                 "code_error": "General code error type", "root_cause": "Root causes", "reporter": "Reporter"}
HUMAN_SCHEMA = """
CREATE TABLE IF NOT EXISTS human_labels (
    repo         TEXT NOT NULL,
    number       INTEGER NOT NULL,
    defect_index INTEGER NOT NULL,
    dimension    TEXT NOT NULL,
    label        TEXT NOT NULL,
    provenance   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (repo, number, defect_index, dimension)
);
"""
# Provenance columns added later (additively, so stores written before keep working): who decided the
# label, the Label Studio task it came from, and when it was annotated. Sheets leave them NULL.
HUMAN_PROVENANCE_COLUMNS = {"raters": "TEXT", "task": "TEXT", "annotated_at": "TEXT"}
# Threads the active-learning queue handed out for labeling (``annotate push --queue``, ``export --queue``): the model's hardest, not a
# random sample, which prediction-powered estimates from their labels would need (analysis.ppi warns).
QUEUED_SCHEMA = """
CREATE TABLE IF NOT EXISTS queued_threads (
    repo         TEXT NOT NULL,
    number       INTEGER NOT NULL,
    via          TEXT NOT NULL,
    queued_at    TEXT NOT NULL,
    PRIMARY KEY (repo, number)
);
"""


def ensure_human_labels(conn: sqlite3.Connection) -> None:
    """Create ``human_labels`` or add the provenance columns an older store lacks."""
    conn.execute(HUMAN_SCHEMA)  # one statement: no implicit COMMIT inside a caller's transaction
    have = {r[1] for r in conn.execute("PRAGMA table_info(human_labels)")}
    for name, kind in HUMAN_PROVENANCE_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE human_labels ADD COLUMN {name} {kind}")


def record_queued(conn: sqlite3.Connection, keys: Iterable[tuple[str, int]], via: str) -> None:
    """Record that the queue handed these threads out for labeling (``queued_threads``); the caller holds the transaction."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    conn.execute(QUEUED_SCHEMA)
    conn.executemany("INSERT OR IGNORE INTO queued_threads (repo, number, via, queued_at) VALUES (?, ?, ?, ?)",
                     [(repo, int(number), via, now) for repo, number in keys])


def labeled_threads(conn: sqlite3.Connection) -> set[tuple[str, int]]:
    """(lower-case repo, number) of every thread with a final human label (``human_labels``); none without the table."""
    from miner.store import table_names

    if "human_labels" not in table_names(conn):
        return set()
    return {(r[0].lower(), int(r[1])) for r in conn.execute("SELECT DISTINCT repo, number FROM human_labels")}


def write_human_labels(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or replace final labels (dicts with the table's column names); the caller holds the transaction."""
    ensure_human_labels(conn)
    columns = ["repo", "number", "defect_index", "dimension", "label", "provenance", "created_at", *HUMAN_PROVENANCE_COLUMNS]
    conn.executemany(f"INSERT OR REPLACE INTO human_labels ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     [tuple(row.get(c) for c in columns) for row in rows])


_URL = re.compile(r"github\.com/([^/\s]+/[^/\s]+)/issues/(\d+)")


def _latest(conn: sqlite3.Connection, model: str) -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    from taxonomy.predictions import read_predictions

    out: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in read_predictions(conn, model):
        out.setdefault((row["repo"], row["number"]), {})[row["dimension"]] = row
    return out


def suggestions(conn: sqlite3.Connection, ids: list[tuple[str, int]], model: str) -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    """The stored predictions of ``model`` for these threads; threads it never labeled get the built-in labeler's now."""
    from taxonomy.classify import analyse_store, builtin_predictions

    stored = _latest(conn, model)
    missing = {(r.lower(), n) for r, n in ids if (r, n) not in stored}
    if missing:
        got_ids, analysed, _ = analyse_store(conn, missing, progress=False)
        for key, preds in zip(got_ids, builtin_predictions(analysed)):
            stored[key] = {d: {"label": p.label, "probability": p.probability, "evidence": p.evidence_json(),
                               "model": "builtin", "model_version": "computed at export"} for d, p in preds.items()}
    return stored


def export_sheet(conn: sqlite3.Connection, out: Path, *, sample: int, seed: int, model: str = "builtin",
                 all_threads: bool = False, queue_size: int | None = None) -> dict[str, Any]:
    """Write ``out.csv`` and ``out.xlsx`` for a seeded sample of the store's threads.

    The sample is drawn from the threads not yet labeled (``human_labels``: a second round never
    puts a thread on the sheet again) and, unless ``all_threads``, that ``model``'s stored filter
    kept (defects of a reengineering repository): the machine-labeled corpus, of which
    ``reeng analyze --human store`` needs a random sample for its prediction-powered estimates.

    With ``queue_size`` the sheet holds the active-learning queue's next threads from the same
    population instead (least confident first, :func:`queue`), and the store records them in
    ``queued_threads``: their labels are no random sample, and ``analyze --human store`` warns.
    """
    from reeng.outputs import spreadsheet_safe, staged_file
    from taxonomy.predictions import filter_dropped_threads

    if queue_size is None and sample < 1:
        raise ReengError(f"--sample must be at least 1, got {sample}")
    csv_path, xlsx_path = out.with_suffix(".csv"), out.with_suffix(".xlsx")
    definitions_path = out.with_name(out.name + ".definitions.csv")
    for path in (out, csv_path, xlsx_path, definitions_path):
        if path.exists() and not path.is_file():
            raise ReengError(f"--out {out}: {path} exists and is not a regular file; give a sheet path (without suffix) in a folder")
    taxonomy = load_taxonomy()
    ids = [(r["repo"], r["number"]) for r in conn.execute("SELECT repo, number FROM issues ORDER BY repo, number")]
    if not ids:
        raise ReengError("the store holds no threads to annotate")
    labeled = labeled_threads(conn)
    dropped = set() if all_threads else filter_dropped_threads(conn, model)
    excluded = labeled | dropped
    population = [k for k in ids if (k[0].lower(), int(k[1])) not in excluded]
    if not population:
        raise ReengError(f"no thread left to annotate: {len(labeled)} already labeled, {len(dropped)} dropped by "
                         f"{model!r}'s filter" + ("" if all_threads else " (--all-threads puts those on the sheet too)"))
    if queue_size is not None:
        if queue_size < 1:
            raise ReengError(f"--queue must be at least 1, got {queue_size}")
        chosen = [(q["repo"], q["number"]) for q in queue(conn, model, queue_size, exclude=dropped)]
    else:
        chosen = sorted(random.Random(seed).sample(population, min(sample, len(population))))
    stored = suggestions(conn, chosen, model)
    titles = dict(((r["repo"], r["number"]), r["title"]) for r in conn.execute("SELECT repo, number, title FROM issues"))
    rows = []
    for repo, number in chosen:
        preds = stored.get((repo, number), {})
        row: dict[str, Any] = {"URL": f"https://github.com/{repo}/issues/{number}", "Title": titles.get((repo, number))}
        for dim in LABEL_DIMENSIONS:
            p = preds.get(dim, {})
            suggestion = p.get("label") or (p.get("evidence") or {}).get("candidate")
            cat = taxonomy.dimension(dim).category(suggestion) if suggestion else None
            row[RATER_HEADERS[dim]] = None
            row[f"{dim} suggestion"] = suggestion
            row[f"{dim} probability"] = p.get("probability")
            row[f"{dim} definition"] = f"{cat.name}: {cat.definition}" if cat else None
            row[f"{dim} evidence"] = "; ".join(s["text"] for s in (p.get("evidence") or {}).get("spans", [])[:4])
        rows.append(row)
    sheet = pd.DataFrame(rows)
    definitions = pd.DataFrame([
        {"dimension": dim, "header": RATER_HEADERS[dim], "category": c.id, "name": c.name, "definition": c.definition}
        for dim in LABEL_DIMENSIONS for c in taxonomy.dimension(dim).categories if c.is_label
    ])
    sheet, definitions = spreadsheet_safe(sheet), spreadsheet_safe(definitions)
    with staged_file(csv_path) as tmp_csv, staged_file(xlsx_path) as tmp_xlsx, staged_file(definitions_path) as tmp_defs:
        sheet.to_csv(tmp_csv, index=False)
        with pd.ExcelWriter(tmp_xlsx, engine="openpyxl") as writer:
            sheet.to_excel(writer, sheet_name="labels", index=False)
            definitions.to_excel(writer, sheet_name="definitions", index=False)
        definitions.to_csv(tmp_defs, index=False)
        for tmp in (tmp_csv, tmp_xlsx, tmp_defs):
            _umask_mode(tmp)
        if queue_size is not None:
            with conn:
                record_queued(conn, chosen, f"annotate export --queue: {csv_path.name}")
    keys = {(repo.lower(), int(number)) for repo, number in ids}
    return {"threads": len(rows), "population": len(population), "queued": queue_size is not None,
            "already_labeled": len(labeled & keys),
            "dropped_by_filter": len((dropped & keys) - labeled), "files": [str(csv_path), str(xlsx_path), str(definitions_path)]}


def _umask_mode(path: Path) -> None:
    """Give a staged file the mode a plain ``open()`` would (temporary files start readable by their owner only)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def compare_sheets(path_a: Path, path_b: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Per-dimension kappa (foundation code) and the list of disagreements to adjudicate."""
    from taxonomy.agreement import agreement, read_sheet

    taxonomy = load_taxonomy()
    result = agreement(path_a, path_b, taxonomy).to_dict()
    a, b = read_sheet(path_a, taxonomy), read_sheet(path_b, taxonomy)
    merged = a.merge(b, on=["issue", "position"], suffixes=("_a", "_b"))
    rows = []
    for dim in LABEL_DIMENSIONS:
        if f"{dim}_a" not in merged or f"{dim}_b" not in merged:
            continue
        for r in merged.itertuples(index=False):
            va, vb = getattr(r, f"{dim}_a"), getattr(r, f"{dim}_b")
            if (va is None or pd.isna(va)) and (vb is None or pd.isna(vb)):
                continue
            if va != vb:
                rows.append({"issue": r.issue, "defect_index": r.position + 1, "dimension": dim,
                             "rater_a": va, "rater_b": vb, "adjudicated": None})
    return result, pd.DataFrame(rows, columns=["issue", "defect_index", "dimension", "rater_a", "rater_b", "adjudicated"])


def final_labels(path_a: Path, path_b: Path, adjudicated: Path | None) -> pd.DataFrame:
    """Agreed labels plus adjudicated ones, each with its provenance; unresolved disagreements are an error.

    An adjudicated :data:`NO_LABEL` decides that the dimension gets no label (one rater left it empty
    and the other's label does not hold, say); nothing is stored for it.
    """
    from reeng.tables import read_table
    from taxonomy.agreement import read_sheet

    taxonomy = load_taxonomy()
    a, b = read_sheet(path_a, taxonomy), read_sheet(path_b, taxonomy)
    merged = a.merge(b, on=["issue", "position"], suffixes=("_a", "_b"))
    decided: dict[tuple[str, int, str], str | None] = {}
    if adjudicated is not None:
        table = read_table(adjudicated, required=["issue", "defect_index", "dimension", "adjudicated"])
        for line, r in enumerate(table.itertuples(index=False), start=2):  # line 1 is the header
            if isinstance(r.adjudicated, str) and r.adjudicated.strip():
                where = f"{adjudicated}: line {line}"
                if str(r.dimension) not in LABEL_DIMENSIONS:
                    raise ReengError(f"{where}: unknown dimension {r.dimension!r} (one of {', '.join(LABEL_DIMENSIONS)})")
                if not str(r.defect_index).strip().isdigit():
                    raise ReengError(f"{where}: defect_index {r.defect_index!r} is not a whole number")
                dim, value = taxonomy.dimension(str(r.dimension)), r.adjudicated.strip()
                if value.casefold() != NO_LABEL and dim.lookup(value) is None:
                    raise ReengError(f"{where}, column 'adjudicated': unknown {dim.id} label {value!r} "
                                     f"(a category, or '{NO_LABEL}' for no label)")
                decided[(str(r.issue), int(r.defect_index), dim.id)] = None if value.casefold() == NO_LABEL else dim.normalize(value)
    records, open_items = [], []
    for r in merged.itertuples(index=False):
        for dim in LABEL_DIMENSIONS:
            if f"{dim}_a" not in merged:
                continue
            va, vb = getattr(r, f"{dim}_a"), getattr(r, f"{dim}_b")
            key = (r.issue, r.position + 1, dim)
            if key in decided:
                if decided[key] is not None:
                    records.append((*key, decided[key], f"adjudicated:{path_a.name}|{path_b.name}"))
            elif va == vb and va is not None and not pd.isna(va):
                records.append((*key, va, f"agreed:{path_a.name}|{path_b.name}"))
            elif not ((va is None or pd.isna(va)) and (vb is None or pd.isna(vb))):
                open_items.append(f"{r.issue}#{r.position + 1} {dim}")
    if open_items:
        raise ReengError(f"{len(open_items)} disagreement(s) not adjudicated, e.g. {', '.join(open_items[:3])}: "
                         "fill the 'adjudicated' column of the disagreements file (a category, or 'none' for no label) and pass it "
                         "with --adjudicated")
    labels = pd.DataFrame(records, columns=["issue", "defect_index", "dimension", "label", "provenance"])
    # every (issue, dimension) the two sheets decide, labeled or not: store_labels replaces what a store held for them
    labels.attrs["decides"] = sorted({(issue, dim) for issue in merged["issue"] for dim in LABEL_DIMENSIONS
                                      if f"{dim}_a" in merged})
    return labels


def store_labels(conn: sqlite3.Connection, labels: pd.DataFrame) -> int:
    """Write final human labels into the store (``human_labels``), replacing earlier ones for the same cells.

    ``labels.attrs["decides"]`` (set by :func:`final_labels`): the (issue URL, dimension) cells the sheets
    decide; what the store held for them goes first, so a label adjudicated away (``none``) or blanked by
    both raters does not linger. Every thread must be one the store holds (an error names those it does
    not), and its labels are stored under the store's spelling of the repository.
    """
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stored = {(r[0].lower(), int(r[1])): r[0] for r in conn.execute("SELECT repo, number FROM issues")}

    def thread(url: str) -> tuple[str, int]:
        m = _URL.search(str(url))
        if not m:
            raise ReengError(f"cannot store labels for {url!r}: the sheet's URL column must hold GitHub issue URLs")
        return m.group(1), int(m.group(2))

    label_keys = [thread(url) for url in labels["issue"]]
    decided = [(*thread(url), dim) for url, dim in labels.attrs.get("decides", [])]
    missing = sorted({f"{repo}#{number}" for repo, number, *_ in label_keys + decided
                      if (repo.lower(), number) not in stored})
    if missing:
        raise ReengError(f"{len(missing)} labeled thread(s) are not in the store, e.g. {', '.join(missing[:3])}: "
                         "store labels in the store the sheets were exported from")
    rows = []
    for r, (repo, number) in zip(labels.itertuples(index=False), label_keys):
        rows.append({"repo": stored[(repo.lower(), number)], "number": number, "defect_index": int(r.defect_index),
                     "dimension": r.dimension, "label": r.label, "provenance": r.provenance, "created_at": now})
    with conn:
        ensure_human_labels(conn)
        conn.executemany("DELETE FROM human_labels WHERE lower(repo) = ? AND number = ? AND dimension = ?",
                         [(repo.lower(), number, dim) for repo, number, dim in decided])
        write_human_labels(conn, rows)
    return len(rows)


def queue(conn: sqlite3.Connection, model: str, limit: int, dimensions: Iterable[str] | None = None,
          exclude: Iterable[tuple[str, int]] = ()) -> list[dict[str, Any]]:
    """Threads to label next, least confident first (uncertainty sampling), skipping those already labeled
    and the (lower-case repo, number) keys in ``exclude``.

    A thread's confidence is the lowest probability over ``dimensions`` (default: the six
    taxonomy dimensions the model predicts, or, for a model trained on a table's own label column,
    its targets): one unsure dimension is enough for a human to be worth asking. A dimension the
    model's predictions do not hold is one clear error, not an empty queue. With
    ``("issue_type",)`` it is the review queue of the defect-or-not decision: the threads the
    defect filter finds least likely defects (or least surely not) come first.

    Threads whose text the model could not read (empty, not English, an unreadable row: every
    ranked dimension abstained with no best guess) come last, with ``unreadable`` saying why: their
    probability of 0 is no uncertainty, and training skips them, so labeling them first (as the
    queue did) taught a model nothing.
    """
    if limit < 1:
        raise ReengError(f"--limit must be at least 1, got {limit}")
    done = labeled_threads(conn) | set(exclude)  # no human_labels table: nothing labeled yet
    preds = _latest(conn, model)
    if not preds:
        raise ReengError(f"the store holds no predictions of model {model!r}: run `reeng classify predict` first")
    ranked = _ranked_dimensions(model, preds, tuple(dimensions or ()))
    items = []
    for (repo, number), dims in preds.items():
        if (repo.lower(), int(number)) in done:
            continue
        probs = {d: dims[d]["probability"] or 0.0 for d in ranked if d in dims}
        if not probs:
            continue
        weakest = min(probs, key=probs.__getitem__)
        items.append({"repo": repo, "number": number, "confidence": probs[weakest], "weakest_dimension": weakest,
                      "needs_review": sum(1 for d in probs if dims[d]["needs_review"]),
                      "unreadable": _unreadable([dims[d].get("evidence") for d in probs])})
    items.sort(key=lambda x: (x["unreadable"] is not None, x["confidence"], -x["needs_review"], x["repo"], x["number"]))
    return items[:limit]


def _ranked_dimensions(model: str, preds: dict[tuple[str, int], dict[str, Any]], asked: tuple[str, ...]) -> tuple[str, ...]:
    """The dimensions :func:`queue` ranks by: those ``asked``, each one that ``model``'s predictions hold; by
    default the six taxonomy dimensions they hold, else (a model trained on a table) every one but the framework."""
    held = {dim for dims in preds.values() for dim in dims}
    unknown = [d for d in asked if d not in held]
    if unknown:
        raise ReengError(f"--dimension {', '.join(unknown)}: the predictions of model {model!r} hold no such dimension "
                         f"(they hold {', '.join(sorted(held))})")
    return asked or tuple(d for d in LABEL_DIMENSIONS if d in held) or tuple(sorted(held - {"framework"}))


def _unreadable(evidence: list[Any]) -> str | None:
    """Why no dimension of a thread has a best guess (its text's flag or error), or None when one has.

    A readable thread's abstention keeps its best guess (``candidate``); only a thread the model
    could not read abstains with none, for the text's reason (:func:`taxonomy.labelers.abstain_all`).
    """
    reasons = [e.get("reason") if isinstance(e, dict) and e.get("candidate") is None else None for e in evidence]
    return reasons[0] if reasons and all(reasons) and len(set(reasons)) == 1 else None


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
