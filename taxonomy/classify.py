"""The classifier's workflows over tables and stores: train, predict, weak supervision, gold training and evaluation.

The CLI (:mod:`taxonomy.cli`) and the study stage call these; they take paths and
connections and return plain dicts and frames, so every workflow is testable without a shell.
"""

from __future__ import annotations

import numbers
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reeng.errors import ReengError
from reeng.progress import progress_bar, working
from taxonomy.batch import Analysed, analyse_many
from taxonomy.labelers import DEFAULT_DECISION, DEFAULT_THRESHOLD, BuiltinLabeler, Prediction, abstain_all, reason_of, supporting_evidence
from taxonomy.rules import ALL_DIMENSIONS, DIMENSION_PARTS, LABEL_DIMENSIONS, rule_features
from taxonomy.supervised import TextModel, predict_proba, top_terms, train

BUILTIN_VERSION = "11"
# What the bar says while a model is fitted (a full model also chooses C and the evidence weight by 3-fold CV).
FITTING = "fitting the model"
# gold_eval's splits. The development set: gold issues whose threads are in the Denchmark archive,
# the only gold threads readable offline, on which the built-in labeler was developed and measured
# (docs/classifier.md). Held out: every other gold issue (``reeng gold fetch-threads``), the test set
# of the labeler's goals.
GOLD_SPLIT_NAMES = {"development": "development set (gold threads in the Denchmark archive)",
                    "held_out": "held-out gold threads (not in the Denchmark archive: the goals' test set)"}
GOLD_SPLITS = tuple(GOLD_SPLIT_NAMES)
# gold_eval's splits when the reference is the store's own adjudicated labels: the threads among the project's
# annotations, which trained the built-in labeler's text models and filters (its scores there are optimistic),
# and every other thread, new to it.
HUMAN_SPLIT_NAMES = {"annotated": "threads the built-in labeler was trained on (the project's annotations)",
                     "unannotated": "threads new to the built-in labeler"}
# What gold_eval scores against: the study's gold CSV, or the store's adjudicated labels (human_labels).
REFERENCES = ("gold", "human_labels")
SUMMARY_KEYS = ("n", "coverage", "kappa", "kappa_ci", "kappa_abstain_wrong", "kappa_abstain_wrong_ci", "macro_f1", "macro_f1_ci")
LABEL_CHUNK = 500  # threads per step of the labeling progress bar (about 1 s each; a minute with sentence embeddings)


@dataclass
class TableData:
    """Rows of a user's table as analysed threads, with their labels (if a label column was named)."""

    analysed: list[Analysed]
    labels: list[str | None]
    frame: pd.DataFrame


def read_labeled_table(path: Path | str, text_cols: list[str], label_col: str | None, *, with_evidence: bool = True,
                       progress: bool = True) -> TableData:
    """Read a CSV/Parquet; the first text column is the title, the others the body, in order.

    The body is cleaned as a store's posts are (:func:`taxonomy.thread.clean`: HTML comments, quoted
    replies, URLs, link targets, images go), so that a model trained on a table of issues reads them
    as it will read a mined store's threads.
    """
    from reeng.tables import read_table
    from taxonomy.thread import clean

    if not text_cols:
        raise ReengError("--text-cols: name at least one text column")
    if label_col in text_cols:
        raise ReengError(f"--label-col {label_col!r} is also a text column: a model would read the label it is scored on")
    frame = read_table(path, required=[*text_cols, *([label_col] if label_col else [])])
    if frame.empty:
        raise ReengError(f"{path}: the table has no rows")

    def cell(value: object) -> object:
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    def body(value: object) -> object:
        return clean(value) if isinstance(value, str) else cell(value)  # a cell that is not text stays, and is refused

    rows = [(cell(r[0]), [body(v) for v in r[1:]]) for r in frame[text_cols].itertuples(index=False)]
    analysed = analyse_many(rows, total=len(rows), progress=progress, with_evidence=with_evidence)
    labels = [table_label(cell(v)) for v in frame[label_col]] if label_col else []
    return TableData(analysed, labels, frame)


# How tools write a missing cell (pandas' na_rep "NaN", R's "NA", spreadsheets' "#N/A", "null"): no class of its
# own. ("None" stays a label: a rater's "no such defect" may be spelt so.)
MISSING_LABELS = frozenset({"nan", "-nan", "na", "n/a", "#n/a", "<na>", "null"})


def table_label(value: object) -> str | None:
    """A label cell of a user's table, trimmed; None when it is empty or a missing-value marker (:data:`MISSING_LABELS`)."""
    text = "" if value is None else str(value).strip()
    return None if not text or text.casefold() in MISSING_LABELS else text


def file_record(path: Path) -> dict[str, str]:
    """A training file as a model records it: its name and SHA-256, never its path (a model file is
    shared, and a path names the trainer's folders)."""
    from reeng.datasets import sha256_file

    return {"name": Path(path).name, "sha256": sha256_file(Path(path))}


def usable(data: TableData) -> list[int]:
    """Rows whose text could be analysed and is English prose (the others are reported, not trained on)."""
    return [i for i, a in enumerate(data.analysed) if a.prepared is not None and a.prepared.english]


def train_table(data: TableData, target: str, *, fast: bool, params: dict[str, Any],
                embedding_model: Path | None = None, evidence_features: bool = True) -> tuple[TextModel, dict[str, int]]:
    """A one-target model from a labeled table, skipping rows with unusable text."""
    rows = usable(data)
    labeled = [i for i in rows if data.labels[i] is not None]
    if not labeled:
        n = len(rows) or len(data.analysed)  # the English rows, or, when there are none, every row
        why = "with English text has a label" if rows else "has English text to learn from"
        raise ReengError(f"no training rows: none of the table's {n} row{'s' * (n != 1)} {why}")
    model = train([data.analysed[i].prepared for i in labeled],  # type: ignore[misc]
                  None if fast else [rule_features(data.analysed[i].evidence) for i in labeled],
                  {target: [data.labels[i] for i in labeled]}, fast=fast, evidence_features=evidence_features and not fast, params=params,
                  embedding_model=embedding_model)
    return model, {"rows": len(data.analysed), "trained_on": len(labeled), "skipped_text": len(data.analysed) - len(rows)}


def model_predictions(model: TextModel, analysed: list[Analysed], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Prediction]]:
    """Predictions of a trained model for analysed threads; unusable rows abstain, the others are labeled."""
    ok = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english]
    out: list[dict[str, Prediction]] = [abstain_all(reason_of(a), tuple(model.targets)) for a in analysed]
    if not ok:
        return out
    prepared = [analysed[i].prepared for i in ok]
    evidence = None if not model.uses_evidence else [rule_features(analysed[i].evidence) for i in ok]
    probs = predict_proba(model, prepared, evidence)  # type: ignore[arg-type]
    for target, matrix in probs.items():
        classes = model.classes(target)
        for row, i in enumerate(ok):
            best = int(np.argmax(matrix[row]))
            cand, prob = classes[best], float(matrix[row, best])
            ev = analysed[i].evidence
            spans = supporting_evidence(ev, target, cand) if target in DIMENSION_PARTS else []
            terms = top_terms(model, target, cand, analysed[i].prepared) if prob >= threshold else []  # type: ignore[arg-type]
            spans += [{"kind": "term", "label": t, "text": t, "section": "model"} for t in terms]
            confident = prob >= threshold
            out[i][target] = Prediction(target, cand if confident else None, round(prob, 4), cand, spans,
                                        None if confident else "below threshold")
    return with_framework(analysed, out)


def check_threshold(value: object) -> float:
    """A labeling threshold: a probability in [0, 1], or one clear error (the CLI and the notebook API say the same)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ReengError(f"--threshold {value}: a probability between 0 and 1")
    return float(value)


def check_has_threads(conn: sqlite3.Connection, source: Path | str) -> None:
    """One clear error when the store holds no thread: nothing to label or learn from."""
    from miner.store import thread_keys

    if not thread_keys(conn):
        raise ReengError(f"{source}: the store holds no threads (mine or import some first)")


def store_threads(conn: sqlite3.Connection, keys: set[tuple[str, int]] | None = None) -> Iterator[Any]:
    """Threads of a store, optionally only those whose (lower-case repo, number) is in ``keys``."""
    from miner.store import iter_threads

    for thread in iter_threads(conn):
        if keys is None or (thread.repo.lower(), int(thread.number)) in keys:
            yield thread


def analyse_store(conn: sqlite3.Connection, keys: set[tuple[str, int]] | None = None, *, with_evidence: bool = True,
                  progress: bool = True) -> tuple[list[tuple[str, int]], list[Analysed], list[Any]]:
    """Every (selected) thread of a store, analysed: ids, analyses and the threads themselves.

    Bot and template comments are dropped and the reporter's part is kept apart from the
    discussion (:mod:`taxonomy.thread`) before anything is read.
    """
    from taxonomy.thread import RawThread

    threads = list(store_threads(conn, keys))
    # The workers split each thread by role themselves (taxonomy.batch.analyse_row).
    rows = (RawThread.of(t) for t in threads)
    analysed = analyse_many(rows, total=len(threads), progress=progress, with_evidence=with_evidence)
    return [(t.repo, int(t.number)) for t in threads], analysed, threads


def builtin_predictions(analysed: list[Analysed], threshold: float = DEFAULT_THRESHOLD, decision: str = DEFAULT_DECISION,
                        embedding_model: Path | None = None, progress: bool = True,
                        workers: int | None = None, issue_type_model: TextModel | None = None,
                        text_models: dict[str, TextModel] | None = None) -> list[dict[str, Prediction]]:
    """The built-in labeler's predictions, with each thread's framework (``embedding_model``: its text models
    also read sentence embeddings from that local folder; ``issue_type_model``: a user's issue-type model,
    :func:`taxonomy.defect_filter.load_issue_type_model`, decides defect or not where the rules leave a
    defect; ``text_models``: its text models in the default ones' place, e.g.
    :func:`taxonomy.annotations.adapted_text_models`), in chunks behind a progress bar on stderr.

    The chunks are labeled in ``workers`` processes (default: as many as the evidence pass uses),
    thread by thread, so neither the chunks nor the workers change a label. With sentence
    embeddings the labeling stays in this process: the encoder already uses every core, and a
    process forked from one that runs torch can hang.
    """
    from taxonomy.batch import chunked, default_workers, map_chunks

    check_threshold(threshold)

    own = text_models is not None  # models of one's own carry their encoder
    labeler = BuiltinLabeler(threshold=threshold, decision=decision, issue_type_model=issue_type_model,
                             text_models=text_models if own else "annotations", embedding_model=None if own else embedding_model
                             ).ready(progress)
    if embedding_model is not None or len(analysed) <= LABEL_CHUNK:
        workers = 1
    preds: list[dict[str, Prediction]] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("labels", total=len(analysed))
        for done in map_chunks(labeler.label_many, chunked(analysed, LABEL_CHUNK), workers or default_workers()):
            preds.extend(done)
            bar.advance(task, len(done))
    return with_framework(analysed, preds)


ADAPT_FOLDS = 5  # cross-fitting folds over the adjudicated threads when the labeler is adapted to a store


def adapted_predictions(conn: sqlite3.Connection, ids: list[tuple[str, int]], analysed: list[Analysed],
                        threshold: float = DEFAULT_THRESHOLD, decision: str = DEFAULT_DECISION,
                        embedding_model: Path | None = None, issue_type_model: TextModel | None = None,
                        progress: bool = True, labels: list[tuple[int, dict[str, str | None]]] | None = None,
                        by_repository: bool = False, max_folds: int | None = None
                        ) -> tuple[list[dict[str, Prediction]], dict[str, Any]]:
    """``classify predict --builtin --adapt``: the built-in labeler with its text models trained also on the
    store's adjudicated labels (:func:`taxonomy.annotations.adapted_text_models`), one row per defect.

    The threads that carry those labels are labeled by models trained without them
    (cross-fitting: :data:`ADAPT_FOLDS` folds of those threads, each labeled by models trained on
    the others'), so their predictions stay out of sample: ``gold-eval --labels human`` and the
    prediction-powered estimates of ``analyze --human store``, which read exactly those threads'
    predictions, stay honest. Returns the predictions in ``analysed``'s order and what they learned
    from (``defects``, ``threads``, ``folds``, ``folds_by``, ``labels_sha256``).

    ``labels`` (``(index into analysed, labels by dimension)``, one per defect) replaces the store's
    adjudicated labels, e.g. the gold defects of ``gold-eval --adapt``; ``by_repository`` makes the folds
    whole repositories (one each, or at most ``max_folds``), so each repository's threads are labeled
    by models that never saw a label of that repository: the labeler adapted to labels of *other*
    repositories, as on a new corpus.
    """
    check_threshold(threshold)
    from sklearn.model_selection import GroupKFold, KFold

    from taxonomy.annotations import adapted_text_models

    rows = _human_label_rows(conn, ids, analysed) if labels is None else [
        (i, y) for i, y in labels if analysed[i].prepared is not None and analysed[i].prepared.english]
    if not rows:
        raise ReengError("--adapt learns from the store's adjudicated labels (human_labels), and none labels a stored "
                         "thread with English text: label a sample first (`reeng annotate export` and `import --store`)"
                         if labels is None else "--adapt: no labeled defect has a stored thread with English text")
    space = BuiltinLabeler(filter=False, text_models=None).space

    def models_without(held: set[int]) -> dict[str, TextModel]:
        kept = [(i, y) for i, y in rows if i not in held]
        return adapted_text_models(space, [analysed[i] for i, _ in kept], [y for _, y in kept], embedding_model)

    options = {"threshold": threshold, "decision": decision, "issue_type_model": issue_type_model,
               "embedding_model": embedding_model}
    threads = sorted({i for i, _ in rows})
    others = sorted(set(range(len(analysed))) - set(threads))
    # the model of every label is trained only when a thread it would label has text to read (gold-eval: none)
    readable = any(analysed[i].prepared is not None and analysed[i].prepared.english for i in others)
    if by_repository:
        repos = [ids[i][0].lower() for i in threads]
        folds = n_repos = len(set(repos))
        if max_folds:
            folds = min(max_folds, n_repos)
        if folds < 2:
            raise ReengError(f"--adapt by repository needs labeled threads of two repositories or more (found {n_repos})")
        splits = list(GroupKFold(folds).split(threads, groups=repos))
    else:
        folds = min(ADAPT_FOLDS, len(threads))
        splits = list(KFold(folds, shuffle=True, random_state=0).split(threads)) if folds >= 2 else [((), range(len(threads)))]
    preds: list[dict[str, Prediction]] = [{} for _ in analysed]
    with progress_bar(progress) as bar:  # each step trains the text models once more (seconds each)
        task = bar.add_task("adapting", total=len(splits) + int(readable))
        for _, test in splits:
            held = sorted(threads[j] for j in test)
            # one labeled thread alone: the default models, which never saw it
            fold_models = models_without(set(held)) if folds >= 2 else None
            for i, pred in zip(held, builtin_predictions([analysed[i] for i in held], text_models=fold_models,
                                                         progress=False, workers=1, **options)):
                preds[i] = pred
            bar.advance(task)
        models = models_without(set()) if readable else None
        bar.advance(task, int(readable))
    if others:
        for i, pred in zip(others, builtin_predictions([analysed[i] for i in others], text_models=models, progress=progress,
                                                       **options)):
            preds[i] = pred
    return preds, {"defects": len(rows), "threads": len(threads), "folds": folds,
                   "folds_by": "repository" if by_repository else "thread",
                   "labels_sha256": labels_digest([(ids[i], y) for i, y in rows])}


def _human_label_rows(conn: sqlite3.Connection, ids: list[tuple[str, int]],
                      analysed: list[Analysed]) -> list[tuple[int, dict[str, str | None]]]:
    """The store's adjudicated labels of stored threads with English text: (index into ``analysed``, labels), one per defect."""
    position = {(repo.lower(), number): i for i, (repo, number) in enumerate(ids)}
    rows: list[tuple[int, dict[str, str | None]]] = []
    for record in human_label_table(conn).itertuples(index=False):
        i = position.get(_key(record.owner, record.repo, record.number))
        if i is not None and analysed[i].prepared is not None and analysed[i].prepared.english:
            rows.append((i, {d: None if pd.isna(getattr(record, d)) else str(getattr(record, d)) for d in LABEL_DIMENSIONS}))
    return rows


def adapted_version(version: str, adapted: dict[str, Any]) -> str:
    """The built-in labeler's version (:func:`builtin_version`) once adapted (:func:`adapted_predictions`):
    ``+adapted-<the labels' digest, 12 hex digits>``."""
    return f"{version}+adapted-{adapted['labels_sha256'][:12]}"


def labels_digest(rows: list[tuple[tuple[str, int], dict[str, str | None]]]) -> str:
    """SHA-256 of labeled defects ((repo, number), labels by dimension), whatever their order: what an
    adapted labeler learned from, for its version."""
    import hashlib
    import json

    records = sorted(json.dumps([list(key), labels], sort_keys=True) for key, labels in rows)
    return hashlib.sha256("\n".join(records).encode()).hexdigest()


def builtin_version(embedding_model: Path | None = None, issue_type_model: TextModel | None = None) -> str:
    """The built-in labeler's version as the predictions table records it: with sentence embeddings,
    ``11+<encoder>-<encoder version>`` (the encoder's name and config digest, never its path); with an
    issue-type model, ``+issue-types-<its training data's digest>``. Labels made with less than the
    labeler needs say so: ``+rules-only`` without the local Denchmark archive (no text models, no
    trained filters), ``+no-study-labels`` without the study's labels (uniform priors)."""
    from taxonomy.defect_filter import local_archive
    from taxonomy.labelers import study_labels

    version = BUILTIN_VERSION
    if embedding_model is not None:
        from taxonomy.embeddings import identity

        encoder = identity(embedding_model)
        version += f"+{encoder['name']}-{encoder['version']}"
    if issue_type_model is not None:
        from taxonomy.defect_filter import issue_type_model_id

        version += f"+{issue_type_model_id(issue_type_model)}"
    if local_archive() is None:
        version += "+rules-only"
    if study_labels() is None:
        version += "+no-study-labels"
    return version


def weak_model(analysed: list[Analysed], *, fast: bool = True, exclude: set[int] | None = None,
               min_confidence: float = 0.5, embedding_model: Path | None = None) -> tuple[TextModel, dict[str, Any]]:
    """Train one classifier per dimension on the built-in labeler's confident labels, over every usable thread.

    ``exclude`` drops rows from training (gold threads during gold evaluation, so none of them is
    later scored by a model that saw it). A store whose threads give no dimension two confident
    classes cannot be learned from: that is one clear error, not a traceback.
    """
    rows = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english and i not in (exclude or set())]
    if not rows:
        raise ReengError("no usable thread to learn weak labels from (the store is empty, or every thread is "
                         "excluded, empty or non-English)")
    voted = builtin_predictions([analysed[i] for i in rows], threshold=min_confidence)
    per_dim = {dim: [p[dim].label for p in voted] for dim in ALL_DIMENSIONS}
    labels, report = {}, {}
    for dim, y in per_dim.items():
        named = [v for v in y if v is not None]
        if len(set(named)) < 2:
            report[dim] = {"labeled": len(named), "skipped": "fewer than two classes"}
            continue
        labels[dim] = y
        report[dim] = {"labeled": len(named), "classes": {k: int(v) for k, v in pd.Series(named).value_counts().items()}}
    if not labels:
        raise ReengError(f"weak labels of {len(rows)} threads give no dimension two confident classes: nothing to learn")
    model = train([analysed[i].prepared for i in rows], None if fast else [rule_features(analysed[i].evidence) for i in rows],  # type: ignore[misc]
                  labels, fast=fast, params={"source": "weak supervision", "min_confidence": min_confidence},
                  embedding_model=embedding_model)
    return model, {"threads": len(rows), "dimensions": report}


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


def with_framework(analysed: list[Analysed], predictions: list[dict[str, Prediction]]) -> list[dict[str, Prediction]]:
    """Add each thread's framework (from its library and version evidence) as one more prediction."""
    for a, preds in zip(analysed, predictions):
        if a.prepared is None:
            continue
        fw = framework_of(a)
        spans = [e.to_dict() for e in a.evidence if e.kind in ("library", "version") and FRAMEWORK_BY_LIBRARY.get(e.label) == fw][:8]
        preds["framework"] = Prediction("framework", fw, 1.0 if fw else 0.0, fw, spans, None if fw else "no evidence")
    return predictions


def human_label_table(conn: sqlite3.Connection) -> pd.DataFrame:
    """The store's adjudicated labels (``human_labels``, from ``reeng annotate import``) as one row per defect."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'human_labels'").fetchone()
    if not has:
        return pd.DataFrame(columns=["owner", "repo", "number", "defect_index", *LABEL_DIMENSIONS])
    raw = pd.read_sql_query("SELECT repo, number, defect_index, dimension, label FROM human_labels", conn)
    if raw.empty:
        return pd.DataFrame(columns=["owner", "repo", "number", "defect_index", *LABEL_DIMENSIONS])
    wide = raw.pivot_table(index=["repo", "number", "defect_index"], columns="dimension", values="label",
                           aggfunc="first").reset_index()
    owner_repo = wide["repo"].str.split("/", n=1, expand=True)
    wide["owner"], wide["repo"] = owner_repo[0], owner_repo[1]
    for dim in LABEL_DIMENSIONS:
        if dim not in wide:
            wide[dim] = None
    return wide[["owner", "repo", "number", "defect_index", *LABEL_DIMENSIONS]]


@dataclass
class GoldJoin:
    """Labeled defects joined to their stored threads: one row per defect (an issue may hold several)."""

    defects: pd.DataFrame  # owner, repo, number, defect_index, the label columns, source
    rows: list[int]  # per defect, its thread's position in ``analysed``
    ids: list[tuple[str, int]]
    analysed: list[Analysed]
    missing: int  # labeled defects whose thread is not in the store

    @property
    def groups_issue(self) -> list[str]:
        return [f"{o}/{r}#{n}".lower() for o, r, n in self.defects[["owner", "repo", "number"]].itertuples(index=False)]

    @property
    def groups_repo(self) -> list[str]:
        return [f"{o}/{r}".lower() for o, r in self.defects[["owner", "repo"]].itertuples(index=False)]


def _key(owner: object, repo: object, number: object) -> tuple[str, int]:
    return f"{owner}/{repo}".lower(), int(number)  # type: ignore[call-overload]


def join_gold(conn: sqlite3.Connection, gold_csv: Path | str | None, *, human: bool = True,
              progress: bool = True) -> GoldJoin:
    """Gold defects (a CSV in the study's format) and the store's adjudicated labels, joined to stored threads.

    The join is by (owner/repo, number), case-insensitive. Adjudicated human labels of a defect
    replace the gold CSV's row for the same defect. Threads are analysed once each.
    """
    from taxonomy.gold import import_defects

    frames = []
    if gold_csv is not None:
        gold = import_defects(gold_csv)
        frames.append(gold.assign(source="gold")[["owner", "repo", "number", "defect_index", *LABEL_DIMENSIONS, "source"]])
    if human:
        labels = human_label_table(conn)
        if not labels.empty:
            frames.append(labels.assign(source="human_labels"))
    if not frames:
        return GoldJoin(pd.DataFrame(columns=["owner", "repo", "number", "defect_index", *LABEL_DIMENSIONS]), [], [], [], 0)
    defects = pd.concat(frames, ignore_index=True)
    defects["number"] = defects["number"].astype(int)
    defects["_key"] = [_key(o, r, n) for o, r, n in defects[["owner", "repo", "number"]].itertuples(index=False)]
    defects = defects.drop_duplicates(subset=["_key", "defect_index"], keep="last")
    keys = set(defects["_key"])
    ids, analysed, _ = analyse_store(conn, keys, progress=progress)
    position = {(repo.lower(), number): i for i, (repo, number) in enumerate(ids)}
    have = defects["_key"].map(lambda k: k in position)
    found = defects[have].reset_index(drop=True)
    return GoldJoin(found.drop(columns="_key"), [position[k] for k in found["_key"]], ids, analysed, int((~have).sum()))


def gold_training_labels(join: GoldJoin, dims: tuple[str, ...] = LABEL_DIMENSIONS) -> dict[str, list[str | None]]:
    """One label list per dimension, one entry per defect, mapped into the study's label space."""
    space = BuiltinLabeler().space
    return {dim: [None if pd.isna(v) else space.map(dim, str(v)) for v in join.defects[dim]] for dim in dims}


def train_gold(conn: sqlite3.Connection, gold_csv: Path | str | None, *, fast: bool = False, human: bool = True,
               progress: bool = True, embedding_model: Path | None = None) -> tuple[TextModel, dict[str, Any]]:
    """``reeng classify train --gold`` (the gold CSV and the store's adjudicated labels) or ``--store`` with human
    labels (``gold_csv`` None: the adjudicated labels alone): a model per dimension on the labeled defects whose
    threads are stored. ``embedding_model``: a local sentence encoder whose embeddings join the features."""
    join = join_gold(conn, gold_csv, human=human, progress=progress)
    if join.defects.empty:
        if gold_csv is None:
            raise ReengError("the store holds no adjudicated label of a stored thread (human_labels): label threads "
                             "first (`reeng annotate export` and `import --store`, or `annotate pull`)")
        raise ReengError(f"no labeled defect has its thread in the store ({join.missing} defects without a stored thread): "
                         "mine or import the issues first (`reeng gold fetch-threads`, `reeng import denchmark`)")
    usable_rows = [j for j, i in enumerate(join.rows) if join.analysed[i].prepared is not None and join.analysed[i].prepared.english]
    if not usable_rows:
        raise ReengError("none of the joined threads has usable (English) text")
    labels = gold_training_labels(join)
    skipped = {d: "fewer than two classes" for d, y in labels.items() if len({y[j] for j in usable_rows} - {None}) < 2}
    labels = {d: y for d, y in labels.items() if d not in skipped}
    if not labels:
        raise ReengError("every dimension of the joined labels has fewer than two classes: nothing to learn")
    prepared = [join.analysed[join.rows[j]].prepared for j in usable_rows]
    evidence = None if fast else [rule_features(join.analysed[join.rows[j]].evidence) for j in usable_rows]
    source = "gold" if gold_csv is not None else "human_labels"
    with working(FITTING, progress):
        model = train(prepared, evidence, {d: [labels[d][j] for j in usable_rows] for d in labels},  # type: ignore[misc]
                      fast=fast, params={"source": source, "gold": file_record(gold_csv) if gold_csv else None, "human_labels": human},
                      embedding_model=embedding_model)
    summary = {"labels": source, "defects": len(join.defects), "trained_on": len(usable_rows), "missing_threads": join.missing,
               "threads": len(set(join.rows)), "from_human_labels": int((join.defects["source"] == "human_labels").sum()),
               "skipped_dimensions": skipped}
    return model, summary


def _without_bucket(truth: list[str], pred: list[str | None]) -> tuple[list[str], list[str | None]]:
    keep = [i for i, t in enumerate(truth) if t != "low_frequency"]
    return [truth[i] for i in keep], [pred[i] for i in keep]


def gold_eval(conn: sqlite3.Connection, gold_csv: Path | str | None, *, folds: int | None = None, threshold: float = DEFAULT_THRESHOLD,
              cv: bool = True, progress: bool = True, decision: str = DEFAULT_DECISION,
              embedding_model: Path | None = None, reference: str = "gold", adapt: bool = False) -> dict[str, Any]:
    """Machine vs human labels for every gold defect whose thread is in the store, per dimension.

    ``reference``: ``gold`` (the defects of ``gold_csv``, the study's format) or ``human_labels``
    (the store's adjudicated labels from ``reeng annotate``, ``gold_csv`` unused): a researcher's
    own labeled sample of a new corpus. ``adapt``: the built-in labeler adapted to the reference's
    labels (:func:`adapted_predictions`). Against human labels each thread is labeled by models
    trained without its own labels: what the adapted labeler can be expected to reach on the
    corpus's other threads. Against gold each repository's threads are labeled by models trained
    with the gold labels of the other repositories (leave-one-repository-out, at most ``folds``
    folds): the built-in labeler trained on gold, measured on repositories whose labels it never saw.

    Two systems: the built-in labeler (no training on text; abstains below ``threshold``; best
    guess by ``decision``, :func:`taxonomy.labelers.decide`) and a
    supervised model cross-validated on the gold threads themselves, grouped by repository
    (leave-one-repository-out, the headline: new repositories are the real use) and by issue;
    ``embedding_model`` (a local sentence-transformers folder) adds sentence embeddings to the
    features of both: the built-in labeler's text models and the cross-validated model.
    Every score has a bootstrap 95 % interval (issues resampled); dimensions with the study's
    ``low_frequency`` bucket are also scored without the bucket's rows.

    ``splits`` scores the built-in labeler apart on the development set and on the held-out
    gold threads (:data:`GOLD_SPLITS`), when the Denchmark archive is on this machine; against
    human labels, apart on the threads it was trained on and the others (:data:`HUMAN_SPLIT_NAMES`).
    """
    from taxonomy.embeddings import identity
    from taxonomy.evaluation import cross_validate, scores

    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}")
    check_threshold(threshold)
    human = reference == "human_labels"
    join = join_gold(conn, None if human else gold_csv, human=human, progress=progress)
    if join.defects.empty:
        return {"reference": reference, "threads": 0, "defects": 0, "dimensions": {}, "systems": {}, "splits": None,
                "note": "no adjudicated label of a stored thread in this store" if human
                else "no gold issue has its thread in this store"}
    labeler = BuiltinLabeler(threshold=threshold, decision=decision, embedding_model=embedding_model).ready(progress)
    unique = sorted(set(join.rows))
    adapted = None
    labels = gold_training_labels(join)
    if adapt:  # every thread of the join is a labeled one: its predictions are all cross-fitted
        gold_rows = None if human else [(i, {d: labels[d][j] for d in LABEL_DIMENSIONS}) for j, i in enumerate(join.rows)]
        preds, adapted = adapted_predictions(conn, join.ids, join.analysed, threshold, decision, embedding_model,
                                             progress=progress, labels=gold_rows,
                                             by_repository=not human, max_folds=folds)
        builtin = {i: preds[i] for i in unique}
    else:
        builtin = dict(zip(unique, labeler.label_many([join.analysed[i] for i in unique])))
    groups = join.groups_issue
    repos = join.groups_repo
    result: dict[str, Any] = {
        "reference": reference, "adapted": adapted, "threads": len(unique), "defects": len(join.defects), "repositories": len(set(repos)),
        "missing_threads": join.missing, "threshold": threshold, "decision": decision,
        "label_source": labeler.source + ("" if not adapted else
                                          f"; adapted to the store's {adapted['defects']} adjudicated defects, each "
                                          "thread labeled by models trained without its own labels" if human else
                                          f"; adapted to {adapted['defects']} gold defects, each repository's threads "
                                          f"labeled by models trained with the other repositories' ({adapted['folds']} folds)"),
        "embedding_model": identity(embedding_model) if embedding_model is not None else None,
        "dimensions": {}, "systems": {},
        "note": "the store's adjudicated labels; on threads among the project's annotations the built-in labeler's "
                "scores are optimistic: its text models trained on them" if human else
                "gold issues found in the store; rules were written without reading gold threads, "
                "but with 25-28 rows every interval is wide",
    }
    prepared = [join.analysed[i].prepared for i in join.rows]
    evidence = [rule_features(join.analysed[i].evidence) for i in join.rows]
    keys = [_key(o, r, n) for o, r, n in join.defects[["owner", "repo", "number"]].itertuples(index=False)]
    split_of, split_names = _reference_splits(keys, human)
    result["splits"] = None if split_of is None else {
        name: {"issues": len({k for k, of in zip(keys, split_of) if of == name}), "defects": split_of.count(name),
               "dimensions": {}} for name in split_names}
    # the cross-validated models take most of the time (minutes on a few hundred defects): a bar counts them
    with progress_bar(progress and cv) as bar:
        task = bar.add_task("models trained on the reference labels, cross-validated", total=2 * len(LABEL_DIMENSIONS))
        for dim in LABEL_DIMENSIONS:
            have = [j for j, h in enumerate(labels[dim]) if h is not None and prepared[j] is not None]
            if not have:  # a dimension the raters left unlabeled: nothing to score
                bar.advance(task, 2 if cv else 0)
                continue
            truth = [str(labels[dim][j]) for j in have]
            preds = [builtin[join.rows[j]][dim] for j in have]
            g = [groups[j] for j in have]
            systems: dict[str, Any] = {
                "builtin": scores(truth, [p.label for p in preds], probability=[p.probability for p in preds], groups=g),
                "builtin_best_guess": scores(truth, [p.candidate for p in preds], probability=[p.probability for p in preds], groups=g),
            }
            if labeler.space.bucket.get(dim):
                t2, p2 = _without_bucket(truth, [p.candidate for p in preds])
                systems["builtin_best_guess_without_bucket"] = scores(t2, p2, ci=False)
            for name, grouping in (("gold_cv_by_repository", [repos[j] for j in have]), ("gold_cv_by_issue", g)) if cv else ():
                k = len(set(grouping)) if name == "gold_cv_by_repository" else min(folds or 5, len(set(grouping)))
                if folds and name == "gold_cv_by_repository":
                    k = min(folds, k)
                try:
                    idx, pred, conf = cross_validate([prepared[j] for j in have], [evidence[j] for j in have], truth, dim,  # type: ignore[misc]
                                                     folds=k, groups=grouping, embedding_model=embedding_model)
                    systems[name] = scores([truth[i] for i in idx], pred, probability=conf, groups=[g[i] for i in idx])
                    systems[name]["folds"] = k
                except ReengError as exc:
                    systems[name] = {"n": len(truth), "skipped": str(exc)}
                bar.advance(task)
            main = systems["builtin"]
            result["dimensions"][dim] = {key: main.get(key) for key in SUMMARY_KEYS} | {"system": "builtin"}
            result["systems"][dim] = systems
            for name in split_names if split_of is not None else ():
                part = [i for i, j in enumerate(have) if split_of[j] == name]
                if len(part) == len(have):  # the whole comparison is this split's: its scores, not bootstrapped again
                    by_system = {system: systems[system] for system in ("builtin", "builtin_best_guess")}
                else:
                    part_truth, part_groups = [truth[i] for i in part], [g[i] for i in part]
                    by_system = {"builtin": scores(part_truth, [preds[i].label for i in part], groups=part_groups),
                                 "builtin_best_guess": scores(part_truth, [preds[i].candidate for i in part], groups=part_groups)}
                result["splits"][name]["dimensions"][dim] = {
                    system: {key: m.get(key) for key in SUMMARY_KEYS} for system, m in by_system.items()}
    return result


def _reference_splits(keys: list[tuple[str, int]], human: bool) -> tuple[list[str] | None, tuple[str, ...]]:
    """Each scored defect's split (None: no splits) and the splits' names, in order.

    Gold: the development set (threads in the local Denchmark archive) and the held-out threads;
    no archive, no splits. Human labels: the threads among the project's annotations (the built-in
    labeler's training data, shipped with the package) and the others.
    """
    if human:
        from taxonomy.annotations import defect_labels, other_annotations, read_annotations

        annotated = {**defect_labels(read_annotations()), **defect_labels(other_annotations())}
        names = tuple(HUMAN_SPLIT_NAMES)
        return [names[0] if k in annotated else names[1] for k in keys], names
    from miner.denchmark import archived_issues
    from taxonomy.defect_filter import local_archive

    archive = local_archive()
    try:
        development = archived_issues(archive, set(keys)) if archive is not None else None
    except ReengError:  # an unreadable archive: the comparison stands without the splits
        development = None
    if development is None:
        return None, GOLD_SPLITS
    return [GOLD_SPLITS[0] if k in development else GOLD_SPLITS[1] for k in keys], GOLD_SPLITS


def gold_split_lines(result: dict[str, Any]) -> list[str]:
    """What :func:`gold_eval`'s ``splits`` say, as lines for a terminal: each split's size and, when the store
    holds both, each split's scores per dimension (otherwise the whole comparison is the one split's)."""
    from taxonomy.evaluation import format_score

    splits = result.get("splits")
    if splits is None:
        return ["no readable local Denchmark archive: the development set and the held-out gold threads are not told apart"]
    lines = []
    names = {**GOLD_SPLIT_NAMES, **HUMAN_SPLIT_NAMES}
    both = all(split["defects"] for split in splits.values())
    for name, split in splits.items():
        lines.append(f"{names.get(name, name)}: {split['defects']} defects in {split['issues']} issues")
        for dim, systems in split["dimensions"].items() if both else ():
            best, answered = systems["builtin_best_guess"], systems["builtin"]
            if best["n"]:
                lines.append(f"  {dim:<14} n {best['n']:>3}  best guess k {format_score(best['kappa'], best.get('kappa_ci'))} "
                             f"cov {best['coverage']:.2f}; answered k {format_score(answered['kappa'], answered.get('kappa_ci'))} "
                             f"cov {answered['coverage']:.2f}")
    if GOLD_SPLITS[1] in splits and not splits[GOLD_SPLITS[1]]["defects"]:
        lines.append("  (no held-out gold thread in this store: `reeng gold fetch-threads` fetches them with a GitHub token)")
    return lines
