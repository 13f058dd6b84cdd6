"""The project's own annotated threads, and the built-in labeler's text models trained on them.

Two files of labels, never text, both labelled against the taxonomy by the project's developers
-- language-model agents, not people -- working independently in batches from the category
definitions (``taxonomy/data/jiang2024.yaml``), without seeing any classifier output, any study
label or any study thread:

* ``taxonomy/data/cv_annotations.csv``: 994 Denchmark bug reports of the 17 computer-vision model
  repositories of :data:`taxonomy.defect_filter.CV_MODEL_REPOS` (every such thread that is not an
  issue of the study: its gold and non-reengineering issues are test data), in 18 batches. 35
  threads were labelled twice, by two batches, to measure the raters' agreement (``primary``
  marks the row used for training). They train the text models and the defect filter, and they
  are what ``benchmarks/classifier_annotations.py`` scores.
* ``taxonomy/data/dl_annotations.csv`` (:func:`other_annotations`): bug reports of other
  deep-learning projects of the archive (NLP and speech model toolkits, CV and medical-imaging
  libraries, reinforcement-learning algorithms), labelled by analogy in later batches from a
  written brief. Training data of the text models only: they widen what the models have seen
  beyond the 17 repositories, which is what a newly mined corpus needs; they are never scored.

A row says whether the thread is a defect and, for defects, its six taxonomy labels in the
taxonomy's own categories (the study's label space is applied when a model is trained).

:func:`default_text_models` trains, at run time from the local Denchmark archive
(``REENG_DATA_DIR``), one text model (:mod:`taxonomy.supervised`: hashed word n-grams, the
evidence-rule features and the thread's coordinates in the archive's semantic space,
:mod:`taxonomy.semantic`) per part of the thread: the reporter's part for reporter, impact and
manifestation, the whole thread for stage, root cause and code error. The models are cached
(skops, loaded with the type allow-list); the built-in labeler reads them as its first stage
(:class:`taxonomy.labelers.BuiltinLabeler`). ``benchmarks/classifier_annotations.py``
measures them by cross-validation on the annotations and prints the raters' own agreement.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taxonomy.label_space import LabelSpace
from taxonomy.rules import DIMENSION_PARTS, LABEL_DIMENSIONS, rule_features
from taxonomy.text import PREPARE_KEY

if TYPE_CHECKING:
    from taxonomy.batch import Analysed
    from taxonomy.semantic import SemanticSpace
    from taxonomy.supervised import TextModel

MODEL_VERSION = "5"  # bump when the annotations' use or the models change: cached models are then retrained
# The evidence block's weight in each part's text model (5: the whole thread's 0.15, was 0.5). Chosen by
# cross-validation on the annotations (docs/classifier.md, "The evidence block's weight (v8)"): at 0.5
# the whole thread's binary rule features outweighed its words on repositories the model never saw.
EVIDENCE_SCALES = {"opening": 0.5, "whole": 0.15}
ANNOTATION_COLUMNS = ("repo", "number", "rater", "primary", "is_defect", *LABEL_DIMENSIONS)


def _data(name: str) -> Path:
    return Path(str(resources.files("taxonomy") / "data" / name))


def read_annotations(path: Path | str | None = None) -> list[dict[str, str]]:
    """Rows of an annotation file (default: the shipped CV model repositories' one): one per thread and rater."""
    from reeng.errors import ReengError

    path = Path(path) if path is not None else _data("cv_annotations.csv")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReengError(f"{path}: not a readable annotation file ({type(exc).__name__})") from None
    missing = [c for c in ANNOTATION_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ReengError(f"{path}: no annotations" if not rows else f"{path}: missing columns {', '.join(missing)}")
    return rows


def primary_labels(rows: Iterable[dict[str, str]]) -> dict[tuple[str, int], dict[str, str | None]]:
    """(lower-case repo, number) -> labels of the primary rater, for the threads annotated as defects."""
    out: dict[tuple[str, int], dict[str, str | None]] = {}
    for row in rows:
        if row["primary"] != "yes" or row["is_defect"] != "yes":
            continue
        out[(row["repo"].lower(), int(row["number"]))] = {d: row[d] or None for d in LABEL_DIMENSIONS}
    return out


def other_annotations() -> list[dict[str, str]]:
    """Rows of the shipped annotations of other deep-learning projects' threads (training data only)."""
    return read_annotations(_data("dl_annotations.csv"))


# Reporter types are defined against a model repository (its code run on the data it was built for,
# taken to other data, extended, reimplemented); a library's or a toolkit's user does not map onto
# them (the other projects' raters called 78 % of their reporters re-users), so those annotations
# train every dimension but reporter.
OTHER_PROJECT_DIMENSIONS = tuple(d for d in LABEL_DIMENSIONS if d != "reporter")


def other_labels() -> dict[tuple[str, int], dict[str, str | None]]:
    """(lower-case repo, number) -> the other projects' defect labels as training reads them (reporter left out)."""
    return {key: {d: (labels[d] if d in OTHER_PROJECT_DIMENSIONS else None) for d in LABEL_DIMENSIONS}
            for key, labels in primary_labels(other_annotations()).items()}


def other_training_rows(threads: dict[tuple[str, int], Analysed]
                        ) -> tuple[list[tuple[str, int]], tuple[list[Analysed], list[dict[str, str | None]]]]:
    """The other projects' annotated defects among ``threads`` (:func:`shipped_threads`): their keys, and
    the threads with their training labels (:func:`other_labels`), as ``fit_temperatures``' ``extra`` takes them."""
    others = other_labels()
    keys = [k for k in sorted(threads) if k in others]
    return keys, ([threads[k] for k in keys], [others[k] for k in keys])


def annotated_threads(archive: Path | str, keys: Iterable[tuple[str, int]], progress: bool = False) -> dict[tuple[str, int], Analysed]:
    """The annotated threads read from the Denchmark archive exactly as the labeler reads a store's."""
    from miner.denchmark import read_archive
    from taxonomy.batch import analyse_many
    from taxonomy.thread import RawThread

    wanted = set(keys)
    threads, _ = read_archive(archive, repos=sorted({repo for repo, _ in wanted}))
    rows, found = [], []
    for issue in threads:
        if (issue["repo"].lower(), issue["number"]) in wanted:
            rows.append(RawThread(issue["title"], issue["body"], issue["comments"], issue["author"]))
            found.append((issue["repo"].lower(), issue["number"]))
    analysed = analyse_many(rows, total=len(rows), progress=progress, label="annotated threads")
    return dict(zip(found, analysed))


def train_text_models(analysed: list[Analysed], labels: list[dict[str, str | None]], space: LabelSpace,
                      embedding_model: Path | str | None = None, semantic_space: SemanticSpace | None = None
                      ) -> dict[str, TextModel]:
    """One text model per part of the thread, each for the dimensions that part decides.

    Features: the fast model's hashed word 1-2-grams of the part's first 2,000 characters plus
    the evidence and rule features, weighted per part (:data:`EVIDENCE_SCALES`); fitted by SGD
    with logistic loss and balanced class weights.
    Chosen by 5-fold cross-validation on the annotations (``docs/classifier.md`` gives the
    comparison): on the four dimensions compared, the full feature set (with character
    n-grams) was within 0.03 κ and lbfgs logistic regression within 0.02, and both were 5-10x
    slower to train (the full features also to predict). Labels are mapped into ``space``
    (rare or out-of-space categories into the bucket, as the study counted them); rows without
    a label for a dimension are left out of that dimension. With ``semantic_space`` (the default
    labeler's: :func:`taxonomy.semantic.default_space`) each part's coordinates in that space
    join the features; with ``embedding_model`` (a local sentence-transformers folder) each
    part's sentence embedding.
    """
    from taxonomy.supervised import train

    models = {}
    evidence = [rule_features(a.evidence) for a in analysed]  # the whole thread's, the same for every part
    for part, dims in text_parts().items():
        prepared = [a.part(part) or a.prepared for a in analysed]
        targets = {d: [space.map(d, lab.get(d)) for lab in labels] for d in dims}
        models[part] = train(prepared, evidence, targets, fast=True, evidence_features=True, sgd=True,  # type: ignore[arg-type]
                             evidence_scale=EVIDENCE_SCALES[part],
                             params={"source": "the project's annotations", "part": part},
                             embedding_model=Path(embedding_model) if embedding_model is not None else None,
                             semantic_space=semantic_space)
    return models


def fit_temperatures(analysed: list[Analysed], labels: list[dict[str, str | None]], groups: list[str],
                     space: LabelSpace, embedding_model: Path | str | None = None,
                     semantic_space: SemanticSpace | None = None, folds: int = 5,
                     extra: tuple[list[Analysed], list[dict[str, str | None]]] = ([], [])) -> dict[str, float]:
    """dimension -> the temperature that makes the built-in labeler's reported probabilities calibrated.

    The labeler's decoded posterior is overconfident on unseen repositories (its text models,
    and the joint decoding that multiplies three whole-thread models' evidence as if
    independent). Text models are trained on all but one fold of repositories (``groups``),
    the labeler (the study's labels, as the default one) decodes the held-out threads, and per
    dimension the temperature of :func:`taxonomy.labelers.temper` that minimises the held-out
    negative log-likelihood of the annotated category is kept
    (:func:`taxonomy.labelers.fit_temperature`, bounded to [0.25, 25]). ``extra`` (threads and their
    labels) joins every fold's training and is never held out: the other projects' annotations.
    Fewer repositories than ``folds`` give as many folds as there are repositories; fewer than
    two, no temperatures (an empty dict).
    """
    from sklearn.model_selection import GroupKFold

    from taxonomy.labelers import BuiltinLabeler, fit_temperature

    folds = min(folds, len(set(groups)))
    if folds < 2:
        return {}
    held_out: dict[str, list[tuple[np.ndarray, int]]] = {d: [] for d in LABEL_DIMENSIONS}
    for train, test in GroupKFold(folds).split(analysed, groups=groups):
        models = train_text_models([analysed[i] for i in train] + extra[0], [labels[i] for i in train] + extra[1],
                                   space, embedding_model, semantic_space)
        labeler = BuiltinLabeler(filter=False, text_models=models, calibrate=False)
        posterior = labeler.predict_proba([analysed[i] for i in test])
        for dim in LABEL_DIMENSIONS:
            classes = labeler.classes(dim)
            for row, i in enumerate(test):
                truth = space.map(dim, labels[i].get(dim))
                if truth in classes:
                    held_out[dim].append((posterior[dim][row], classes.index(truth)))
    return {dim: fit_temperature(np.stack([p for p, _ in rows]), [t for _, t in rows])
            for dim, rows in held_out.items() if len(rows) >= 20}  # fewer held-out labels fit nothing


def text_parts() -> dict[str, tuple[str, ...]]:
    """part of the thread -> the label dimensions it decides (:data:`taxonomy.rules.DIMENSION_PARTS`)."""
    parts: dict[str, tuple[str, ...]] = {}
    for dim in LABEL_DIMENSIONS:
        parts[DIMENSION_PARTS[dim]] = (*parts.get(DIMENSION_PARTS[dim], ()), dim)
    return parts


def defect_labels(rows: Iterable[dict[str, str]]) -> dict[tuple[str, int], str]:
    """(lower-case repo, number) -> ``yes`` / ``no``: whether the primary rater called the thread a defect."""
    return {(row["repo"].lower(), int(row["number"])): row["is_defect"] for row in rows if row["primary"] == "yes"}


def annotations_fingerprint() -> str:
    """What identifies the shipped annotations in a cache key: models trained on other annotations are retrained."""
    digest = hashlib.sha256()
    for name in ("cv_annotations.csv", "dl_annotations.csv"):
        digest.update(_data(name).read_bytes())
    return digest.hexdigest()


@cache
def shipped_threads(archive: Path) -> dict[tuple[str, int], Analysed]:
    """Every thread of both shipped annotation files with English text, read once per process (text models and defect filter)."""
    threads = annotated_threads(archive, {**defect_labels(read_annotations()), **defect_labels(other_annotations())})
    return {k: a for k, a in threads.items() if a.prepared is not None and a.prepared.english}


def _cache_paths(archive: Path, space: LabelSpace, semantic: dict[str, str] | None, encoder: dict[str, str] | None) -> dict[str, Path]:
    """The cached models' files, keyed by the archive, the annotations, the label space, the semantic
    space, the sentence encoder (its identity, never its path; None: no embeddings) and the model version."""
    from reeng.settings import keyed_cache_file
    from taxonomy.defect_filter import archive_fingerprint

    key = (archive_fingerprint(archive), annotations_fingerprint(), json.dumps(space.to_dict(), sort_keys=True),
           json.dumps(semantic, sort_keys=True), PREPARE_KEY,
           *([json.dumps(encoder, sort_keys=True)] if encoder else []))
    return {part: keyed_cache_file("labelers", f"annotations-{part}", MODEL_VERSION, key, ".skops") for part in text_parts()}


@cache
def _default_text_models(space_json: str, embedding_model: str | None) -> dict[str, TextModel] | None:
    from reeng.errors import ReengError
    from taxonomy.defect_filter import local_archive
    from taxonomy.embeddings import identity
    from taxonomy.semantic import default_space
    from taxonomy.supervised import load, save

    archive = local_archive()
    if archive is None:
        return None
    space = LabelSpace(**json.loads(space_json))
    semantic = default_space()
    paths = _cache_paths(archive, space, semantic.identity if semantic is not None else None,
                         identity(embedding_model) if embedding_model is not None else None)
    if all(p.is_file() for p in paths.values()):
        try:
            models = {part: load(p, embedding_model) for part, p in paths.items()}
            for model in models.values():
                model.semantic_space = semantic
            return models
        except ReengError:
            pass  # a damaged cache file: train again
    keys, (analysed, annotated), more = _shipped_training(archive)
    if not keys:
        return None
    models = train_text_models(analysed + more[0], annotated + more[1], space, embedding_model, semantic)
    # calibrated on held-out CV model repositories, the labeler's use; the other projects always train
    temperatures = fit_temperatures(analysed, annotated, [repo for repo, _ in keys], space, embedding_model, semantic,
                                    extra=more)
    for part, model in models.items():
        model.meta["temperatures"] = temperatures
        paths[part].parent.mkdir(parents=True, exist_ok=True)
        save(model, paths[part])
    return models


def _shipped_training(archive: Path) -> tuple[list[tuple[str, int]], tuple[list[Analysed], list[dict[str, str | None]]],
                                              tuple[list[Analysed], list[dict[str, str | None]]]]:
    """The default text models' training rows: the CV annotations' keys, their threads and labels, and the other
    projects' threads and labels (:func:`other_training_rows`)."""
    labels = primary_labels(read_annotations())
    threads = shipped_threads(archive)
    keys = sorted(k for k in threads if k in labels)
    return keys, ([threads[k] for k in keys], [labels[k] for k in keys]), other_training_rows(threads)[1]


def adapted_text_models(space: LabelSpace, analysed: list[Analysed], labels: list[dict[str, str | None]],
                        embedding_model: Path | str | None = None) -> dict[str, TextModel]:
    """The default text models trained once more with ``analysed`` threads and their ``labels`` added (a
    corpus's own adjudicated labels, one row per defect): the built-in labeler adapted to that corpus.

    Measured (docs/classifier.md, "Adapting to a corpus"): on annotated repositories the models never
    saw, 100 labeled threads of them added κ +0.007 to +0.044 on the rest of their threads (mean of
    4 draws; manifestation and root cause up in every draw); 25 or 50 added nothing dependable. The temperatures are the default models' (fitted on the annotations). Needs
    the local Denchmark archive, like the default models.
    """
    from reeng.errors import ReengError
    from taxonomy.defect_filter import local_archive
    from taxonomy.semantic import default_space

    base = default_text_models(space, embedding_model)
    archive = local_archive()
    if base is None or archive is None:
        raise ReengError("adapting the built-in labeler needs its training threads, in the local Denchmark archive "
                         "(REENG_DATA_DIR); without it the labeler reads the evidence rules alone")
    _, (shipped, annotated), more = _shipped_training(archive)
    models = train_text_models(shipped + more[0] + list(analysed), annotated + more[1] + list(labels), space,
                               embedding_model, default_space())
    temperatures = next(iter(base.values())).meta.get("temperatures")
    for model in models.values():
        model.meta["temperatures"] = temperatures
    return models


def default_text_models(space: LabelSpace, embedding_model: Path | str | None = None) -> dict[str, TextModel] | None:
    """The text models trained on the shipped annotations for ``space``: cached, else trained now (seconds;
    the first time in a cache folder also the archive's semantic space, :func:`taxonomy.semantic.default_space`).

    ``embedding_model``: a local sentence-transformers folder whose embeddings join the features
    (encoding the annotated threads on first use takes a minute or two on a CPU; the models are
    cached per encoder version). None when the Denchmark archive is not on this machine
    (``REENG_DATA_DIR``): the built-in labeler then reads the evidence rules alone. Memoised per
    process, label space and encoder.
    """
    if embedding_model is not None:
        from taxonomy.embeddings import check_model

        embedding_model = str(check_model(embedding_model))
    return _default_text_models(json.dumps(space.to_dict(), sort_keys=True), embedding_model)


def text_probabilities(models: dict[str, TextModel], analysed: list[Analysed]) -> dict[str, tuple[list[str], np.ndarray]]:
    """dimension -> (the model's classes, probabilities per thread) from the part of each thread that decides it."""
    from taxonomy.supervised import predict_proba

    evidence = [rule_features(a.evidence) for a in analysed]
    out = {}
    for part, model in models.items():
        probs = predict_proba(model, [a.part(part) or a.prepared for a in analysed], evidence)  # type: ignore[misc]
        for dim, p in probs.items():
            out[dim] = (model.classes(dim), p)
    return out
