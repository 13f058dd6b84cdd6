"""The classifier's workflows over tables and stores: train, predict, weak supervision, gold evaluation.

The CLI (:mod:`taxonomy.classify_cli`) and the study stage call these; they take paths and
connections and return plain dicts and frames, so every workflow is testable without a shell.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reeng.errors import ReengError
from taxonomy.batch import Analysed, analyse_many
from taxonomy.evidence import evidence_keys
from taxonomy.gold import DEFECT_SCHEMA, canonical_issue_url
from taxonomy.labelers import DEFAULT_THRESHOLD, KnowledgeLabeler, Prediction, abstain_all, label_categories, supporting_evidence
from taxonomy.models import TextModel, predict_proba, top_terms, train
from taxonomy.rules import ALL_DIMENSIONS, LABEL_DIMENSIONS, firing_rules

BUILTIN_VERSION = "1"


@dataclass
class TableData:
    """Rows of a user's table as analysed threads, with their labels (if a label column was named)."""

    analysed: list[Analysed]
    labels: list[str | None]
    frame: pd.DataFrame


def read_labeled_table(path: Path | str, text_cols: list[str], label_col: str | None, *, with_evidence: bool = True,
                       progress: bool = True) -> TableData:
    """Read a CSV/Parquet; the first text column is the title, the others the body, in order."""
    from reeng.tables import read_table

    if not text_cols:
        raise ReengError("--text-cols: name at least one text column")
    frame = read_table(path, required=[*text_cols, *([label_col] if label_col else [])])
    if frame.empty:
        raise ReengError(f"{path}: the table has no rows")

    def cell(value: object) -> object:
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    rows = [(cell(r[0]), [cell(v) for v in r[1:]]) for r in frame[text_cols].itertuples(index=False)]
    analysed = analyse_many(rows, total=len(rows), progress=progress, with_evidence=with_evidence)
    labels = [None if cell(v) is None or not str(v).strip() else str(v).strip() for v in frame[label_col]] if label_col else []
    return TableData(analysed, labels, frame)


def usable(data: TableData) -> list[int]:
    """Rows whose text could be analysed and is English prose (the others are reported, not trained on)."""
    return [i for i, a in enumerate(data.analysed) if a.prepared is not None and a.prepared.english]


def train_table(data: TableData, target: str, *, fast: bool, params: dict[str, Any],
                embedding_model: Path | None = None) -> tuple[TextModel, dict[str, int]]:
    """A one-target model from a labeled table, skipping rows with unusable text."""
    rows = usable(data)
    labeled = [i for i in rows if data.labels[i] is not None]
    model = train([data.analysed[i].prepared for i in labeled],  # type: ignore[misc]
                  None if fast else [evidence_keys(data.analysed[i].evidence) for i in labeled],
                  {target: [data.labels[i] for i in labeled]}, fast=fast, params=params, embedding_model=embedding_model)
    return model, {"rows": len(data.analysed), "trained_on": len(labeled), "skipped_text": len(data.analysed) - len(rows)}


def model_predictions(model: TextModel, analysed: list[Analysed], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Prediction]]:
    """Predictions of a trained model for analysed threads; unusable rows abstain, the others are labeled."""
    ok = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english]
    out: list[dict[str, Prediction]] = [
        abstain_all(a.error or (a.prepared.flags[0] if a.prepared and a.prepared.flags else "unreadable"), tuple(model.targets))
        for a in analysed
    ]
    if not ok:
        return out
    prepared = [analysed[i].prepared for i in ok]
    evidence = None if model.fast else [evidence_keys(analysed[i].evidence) for i in ok]
    probs = predict_proba(model, prepared, evidence)  # type: ignore[arg-type]
    for target, matrix in probs.items():
        classes = model.classes(target)
        for row, i in enumerate(ok):
            best = int(np.argmax(matrix[row]))
            cand, prob = classes[best], float(matrix[row, best])
            ev = analysed[i].evidence
            spans = supporting_evidence(ev, firing_rules(evidence_keys(ev)), target, cand)
            terms = top_terms(model, target, cand, analysed[i].prepared) if prob >= threshold else []  # type: ignore[arg-type]
            spans += [{"kind": "term", "label": t, "text": t, "section": "model"} for t in terms]
            confident = prob >= threshold
            out[i][target] = Prediction(target, cand if confident else None, round(prob, 4), cand, spans,
                                        None if confident else "below threshold")
    return out


def store_threads(conn: sqlite3.Connection, keys: set[tuple[str, int]] | None = None) -> Iterator[Any]:
    """Threads of a store, optionally only those whose (lower-case repo, number) is in ``keys``."""
    from miner.store import iter_threads

    for thread in iter_threads(conn):
        if keys is None or (thread.repo.lower(), int(thread.number)) in keys:
            yield thread


def analyse_store(conn: sqlite3.Connection, keys: set[tuple[str, int]] | None = None, *, with_evidence: bool = True,
                  progress: bool = True) -> tuple[list[tuple[str, int]], list[Analysed], list[Any]]:
    """Every (selected) thread of a store, analysed: ids, analyses and the threads themselves."""
    threads = list(store_threads(conn, keys))
    rows = ((t.title, [t.body, *(c.get("body") for c in t.comments)]) for t in threads)
    analysed = analyse_many(rows, total=len(threads), progress=progress, with_evidence=with_evidence)
    return [(t.repo, int(t.number)) for t in threads], analysed, threads


def builtin_predictions(analysed: list[Analysed], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Prediction]]:
    labeler = KnowledgeLabeler(threshold=threshold)
    return labeler.label_many([(a.prepared, a.evidence, a.error) for a in analysed])


WEAK_METHODS = ("weighted", "label-model")


def weak_model(analysed: list[Analysed], *, fast: bool = True, exclude: set[int] | None = None,
               method: str = "weighted", min_confidence: float = 0.5,
               embedding_model: Path | None = None) -> tuple[TextModel, dict[str, Any]]:
    """Train one classifier per dimension on weak labels from the rules, over every usable thread.

    ``method`` combines the labeling functions: ``weighted`` is the built-in labeler's weighted
    vote (rule weights plus definition similarity, kept where it is confident);
    ``label-model`` estimates each rule's accuracy from agreements (:mod:`taxonomy.weak`).
    ``exclude`` drops rows from training (gold threads during gold evaluation, so none of them is
    later scored by a model that saw it).
    """
    from taxonomy.weak import weak_labels

    if method not in WEAK_METHODS:
        raise ReengError(f"unknown weak-supervision method {method!r} (known: {', '.join(WEAK_METHODS)})")
    rows = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english and i not in (exclude or set())]
    categories = label_categories()
    if method == "weighted":
        voted = builtin_predictions([analysed[i] for i in rows], threshold=min_confidence)
        per_dim = {dim: [p[dim].label for p in voted] for dim in ALL_DIMENSIONS}
    else:
        keys = [set(evidence_keys(analysed[i].evidence)) for i in rows]
        per_dim = {dim: weak_labels(keys, dim, categories[dim], min_confidence)[0] for dim in ALL_DIMENSIONS}
    labels, report = {}, {}
    for dim, y in per_dim.items():
        named = [v for v in y if v is not None]
        if len(set(named)) < 2:
            report[dim] = {"labeled": len(named), "skipped": "fewer than two classes"}
            continue
        labels[dim] = y
        report[dim] = {"labeled": len(named), "classes": {k: int(v) for k, v in pd.Series(named).value_counts().items()}}
    model = train([analysed[i].prepared for i in rows], None if fast else [evidence_keys(analysed[i].evidence) for i in rows],  # type: ignore[misc]
                  labels, fast=fast, params={"source": "weak supervision", "method": method, "min_confidence": min_confidence},
                  embedding_model=embedding_model)
    return model, {"threads": len(rows), "method": method, "dimensions": report}


# The machine-labeled table has exactly the gold defect table's columns (docs/schemas.md).
DEFECT_COLUMNS = list(DEFECT_SCHEMA)
FRAMEWORK_BY_LIBRARY = {"torch": "pytorch", "torchvision": "pytorch", "mmcv": "pytorch", "mmdet": "pytorch",
                        "tensorflow": "tensorflow", "keras": "keras", "caffe": "caffe", "mxnet": "mxnet"}


def framework_of(analysed: Analysed) -> str | None:
    """The framework most mentioned in the thread's evidence (libraries and versions), if any."""
    counts: dict[str, int] = {}
    for e in analysed.evidence:
        fw = FRAMEWORK_BY_LIBRARY.get(e.label) if e.kind in ("library", "version") else None
        if fw:
            counts[fw] = counts.get(fw, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def machine_defects(ids: list[tuple[str, int]], analysed: list[Analysed], threads: list[Any],
                    predictions: list[dict[str, Prediction]], provenance: str) -> pd.DataFrame:
    """Machine labels as a defect table (the gold schema): one row per thread the filter keeps.

    A thread is kept unless it was confidently called a feature request or question, or not a
    reengineering defect; abstained dimensions are null, as a missing human label would be.
    """
    records = []
    for (repo, number), a, thread, preds in zip(ids, analysed, threads, predictions):
        kind, reeng = preds.get("issue_type"), preds.get("reengineering")
        if (kind and kind.label in ("feature", "question")) or (reeng and reeng.label == "no"):
            continue
        owner, _, name = repo.partition("/")
        record: dict[str, Any] = dict.fromkeys(DEFECT_COLUMNS)
        record.update({
            "issue_url": canonical_issue_url(owner, name, number), "owner": owner, "repo": name, "number": number,
            "defect_index": 1, "framework": framework_of(a), "issue_created_at": thread.issue.get("created_at"),
            "issue_labels": thread.issue.get("labels"), "provenance": provenance,
        })
        for dim in LABEL_DIMENSIONS:
            record[dim] = preds[dim].label if dim in preds else None
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=DEFECT_COLUMNS)
    for col in DEFECT_COLUMNS:
        if col not in ("number", "defect_index", "research_prototype"):
            frame[col] = frame[col].astype("string")  # typed even when a column is all null
    frame["number"] = frame["number"].astype("int64")
    frame["defect_index"] = frame["defect_index"].astype("int64")
    frame["research_prototype"] = frame["research_prototype"].astype("boolean")
    return frame


def gold_eval(conn: sqlite3.Connection, gold_csv: Path | str, *, weak: bool = True, folds: int = 5,
              progress: bool = True) -> dict[str, Any]:
    """Machine vs human labels for every gold defect whose thread is in the store, per dimension.

    Three systems: the built-in labeler (no training); supervised models cross-validated over
    the gold threads themselves (grouped by thread, so no thread is scored by a model that saw
    it); and, with ``weak``, a model trained on weak labels of every *other* thread in the store.
    """
    from taxonomy.evaluation import cross_validate, scores
    from taxonomy.gold import import_defects

    gold = import_defects(gold_csv)
    gold_keys = {(f"{o}/{r}".lower(), int(n)) for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)}
    ids, analysed, _ = analyse_store(conn, None if weak else gold_keys, progress=progress)
    position = {(repo.lower(), number): i for i, (repo, number) in enumerate(ids)}
    gold = gold[[(f"{o}/{r}".lower(), int(n)) in position for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)]]
    if gold.empty:
        return {"threads": 0, "defects": 0, "dimensions": {},
                "note": "no gold issue has its thread in this store"}
    rows = [position[(f"{o}/{r}".lower(), int(n))] for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)]
    builtin = builtin_predictions([analysed[i] for i in sorted(set(rows))])
    builtin_by_row = dict(zip(sorted(set(rows)), builtin))
    weak_by_row: dict[int, dict[str, Prediction]] = {}
    weak_report = None
    if weak:
        model, weak_report = weak_model(analysed, fast=True, exclude=set(rows))
        gold_rows = sorted(set(rows))
        weak_by_row = dict(zip(gold_rows, model_predictions(model, [analysed[i] for i in gold_rows])))
    result: dict[str, Any] = {"threads": len(set(rows)), "defects": len(gold), "dimensions": {}, "systems": {},
                              "note": "development set: the gold issues found in the store; not a measure of generalization"}
    prepared = [analysed[i].prepared for i in rows]
    evidence = [evidence_keys(analysed[i].evidence) for i in rows]
    for dim in LABEL_DIMENSIONS:
        human = [None if pd.isna(v) else str(v) for v in gold[dim]]
        have = [j for j, h in enumerate(human) if h is not None and prepared[j] is not None]
        truth = [human[j] for j in have]
        systems = {"builtin": scores(truth, [builtin_by_row[rows[j]][dim].label for j in have])}
        systems["builtin_candidate"] = scores(truth, [builtin_by_row[rows[j]][dim].candidate for j in have])
        if weak and dim in (weak_report or {}).get("dimensions", {}) and "skipped" not in weak_report["dimensions"][dim]:
            systems["weak_supervised"] = scores(truth, [weak_by_row[rows[j]][dim].candidate for j in have])
        try:
            idx, pred = cross_validate([prepared[j] for j in have], [evidence[j] for j in have], truth, dim,
                                       folds=min(folds, len(set(rows[j] for j in have))),
                                       groups=[str(rows[j]) for j in have])
            systems["gold_cv"] = scores([truth[i] for i in idx], pred)
        except ReengError as exc:
            systems["gold_cv"] = {"n": len(truth), "skipped": str(exc)}
        main = systems["builtin"]
        result["dimensions"][dim] = {"macro_f1": main["macro_f1"], "kappa": main["kappa"], "n": main["n"],
                                     "accuracy": main["accuracy"], "coverage": main["coverage"], "system": "builtin"}
        result["systems"][dim] = systems
    if weak_report:
        result["weak_training"] = weak_report
    return result
