"""Supervised text classifiers: hashed n-grams plus evidence-rule features, logistic regression, probabilities.

One model file holds one shared vectorizer and one classifier per target (a label column, a
taxonomy dimension trained on gold defects, or weak labels). Two feature sets:

* ``full``: hashed word 1-2-grams and character 3-5-grams (TF-IDF weighted) plus the binary
  evidence and rule features of :func:`taxonomy.rules.rule_features`, per part of the thread;
  it needs the spaCy evidence pass.
* ``fast``: hashed word 1-2-grams only; no spaCy, for labeling hundreds of thousands of threads.

The n-gram spaces are hashed, never a vocabulary: a model trained on 1,500 issues stays about
3 MB and saves in about 0.3 s and loads in about 0.1 s once skops is imported (a 300,000-term
vocabulary made files of 21-97 MB that took 10 s to load; see benchmarks/classifier_speed.py). The regularisation of the logistic regression, and
in a full model the evidence block's weight (off among the choices), are chosen by
cross-validation on the training data.

Models are saved with skops, never pickle: loading checks every type in the file against the
libraries a model may contain before anything is instantiated. A model records the hash of its
training data, its parameters and the library versions it was built with; a file written by a
different format version is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reeng.errors import ReengError
from taxonomy.text import PreparedText

MODEL_FORMAT = "reeng-text-classifier"
FORMAT_VERSION = 3  # 3: evidence features stored as a JSON list of names
# The evidence block's weight beside the n-grams in a trained model, unless chosen otherwise. At 0.5 (before
# builtin@10) a thread's few binary rule features outweighed its L2-normalised n-grams: on the NLBSE'24 issue
# types (5-fold CV on the training split) 0.15 scored 0.740 against 0.718 at 0.5 and 0.722 without them.
EVIDENCE_SCALE = 0.15
UNRECORDED_EVIDENCE_SCALE = 0.5  # the weight of model files that record none (written before builtin@8)
# The weights a full model chooses from by cross-validation (0: no evidence features). The first is the
# default and stands unless the other scores higher in every CV fold: chosen on the higher mean alone, the
# choice switched the evidence off in 6 of 25 nested folds of the NLBSE training split and scored 0.006
# below the fixed 0.15 (0.747 vs 0.754); on those folds "higher in every fold" never switched (docs/classifier.md).
EVIDENCE_SCALE_GRID = (EVIDENCE_SCALE, 0.0)
FOLDS_WON_KEY = f"folds_won_by_{EVIDENCE_SCALE_GRID[1]}"  # in a model's evidence_search: the CV folds the other weight won
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
# C is chosen by cross-validation from this many training rows on (and 3 per class); below, the default C.
MIN_ROWS_FOR_C_SEARCH = 150
MIN_PER_CLASS_FOR_CV = 3
# The fast model reads the start of each thread's model text only: hashing is its whole cost.
FAST_TEXT_CHARS = 2_000
# Above this many rows (weak labels over a whole corpus) SGD with logistic loss replaces lbfgs and
# the cross-validated choice of C: it fits 26,000 threads in seconds.
MAX_ROWS_FOR_LBFGS = 5_000


@dataclass
class TextModel:
    """A fitted vectorizer and one classifier per target, with what is needed to trust it later."""

    vectorizer: Any
    evidence_vectorizer: Any | None
    classifiers: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    embedding_folder: str | None = None  # where the sentence encoder is on this machine (not saved)
    semantic_space: Any | None = None  # the taxonomy.semantic.SemanticSpace it reads (not saved: the caller's)

    @property
    def fast(self) -> bool:
        return self.meta.get("features") == "fast"

    @property
    def uses_evidence(self) -> bool:
        """Whether predicting needs the spaCy evidence pass (full models trained with evidence features)."""
        return self.evidence_vectorizer is not None

    @property
    def targets(self) -> list[str]:
        return list(self.classifiers)

    def classes(self, target: str) -> list[str]:
        return [str(c) for c in self.classifiers[target].classes_]



def library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import sklearn
    import spacy

    return {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "spacy": spacy.__version__}


def data_hash(texts: list[str], labels: dict[str, list[str | None]]) -> str:
    """SHA-256 of the training texts and labels, so a model names exactly what it learned from."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\x00")
    digest.update(json.dumps(labels, sort_keys=True).encode())
    return digest.hexdigest()


WORD_FEATURES = 2**17
CHAR_FEATURES = 2**16
C_GRID = (0.5, 2.0, 8.0)


def build_vectorizer(fast: bool) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import FeatureUnion, make_pipeline

    if fast:
        return HashingVectorizer(ngram_range=(1, 2), n_features=2**18, alternate_sign=False, norm="l2")
    hashed = FeatureUnion([
        ("word", HashingVectorizer(ngram_range=(1, 2), n_features=WORD_FEATURES, alternate_sign=False, norm=None)),
        ("char", HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=CHAR_FEATURES,
                                   alternate_sign=False, norm=None)),
    ])
    return make_pipeline(hashed, TfidfTransformer(sublinear_tf=True))


def searchable(labels: list[str]) -> bool:
    """Whether rows this many, with every class this frequent, are enough to choose C (and the evidence weight) by CV."""
    counts = np.unique(labels, return_counts=True)[1]
    return MIN_ROWS_FOR_C_SEARCH <= len(labels) <= MAX_ROWS_FOR_LBFGS and counts.min() >= MIN_PER_CLASS_FOR_CV


def choose_c(matrix: Any, labels: list[str]) -> tuple[float, np.ndarray]:
    """The C of :data:`C_GRID` with the best mean 3-fold cross-validated macro-F1 on these rows, and its fold scores."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        cv = {c: cross_val_score(LogisticRegression(C=c, class_weight="balanced", max_iter=300), matrix, labels,
                                 cv=3, scoring="f1_macro") for c in C_GRID}
    best = max(cv, key=lambda c: cv[c].mean())
    return best, cv[best]


def make_classifier(labels: list[str], matrix: Any = None, search: bool = True, sgd: bool = False,
                    c: float | None = None) -> Any:
    """Logistic regression, its C given or chosen by 3-fold cross-validation on the training rows when every class allows it.

    Large (weakly labeled) sets, and any set when ``sgd`` is asked for, are fitted by SGD with
    logistic loss, whose cost follows the non-zero features rather than the hashed columns
    times the classes (lbfgs took 20-90 s for one 14-class target of 900 threads, SGD about a
    second); a few thousand rows get more passes and a stronger penalty than a corpus.
    """
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    if sgd or len(labels) > MAX_ROWS_FOR_LBFGS:
        few = len(labels) <= MAX_ROWS_FOR_LBFGS
        return SGDClassifier(loss="log_loss", alpha=1e-4 if few else 1e-5, max_iter=50 if few else 5, tol=None,
                             class_weight="balanced", random_state=0, n_jobs=2)
    if c is None:
        c = choose_c(matrix, labels)[0] if search and matrix is not None and searchable(labels) else 2.0
    return LogisticRegression(C=c, class_weight="balanced", max_iter=300)


def model_texts(prepared: list[PreparedText], fast: bool) -> list[str]:
    """What the vectorizer reads: the whole model text, or its start for the fast model."""
    return [p.model_text[:FAST_TEXT_CHARS] if fast else p.model_text for p in prepared]


def features(model: TextModel, prepared: list[PreparedText], evidence: list[dict[str, float]] | None) -> Any:
    """The feature matrix of some threads under a fitted model."""
    from scipy.sparse import hstack

    blocks = [model.vectorizer.transform(model_texts(prepared, model.fast))]
    if model.evidence_vectorizer is not None:
        if evidence is None:
            raise ReengError("this model uses evidence features: extract evidence before predicting")
        blocks.append(model.meta.get("evidence_scale", UNRECORDED_EVIDENCE_SCALE) * model.evidence_vectorizer.transform(evidence))
    if model.meta.get("embedding_model"):
        check_encoder_given(model)
        blocks.append(_embedding_block(model.embedding_folder, prepared))  # type: ignore[arg-type]
    if model.meta.get("semantic_space"):
        wanted = model.meta["semantic_space"]
        space = model.semantic_space
        if space is None or space.identity != wanted:
            raise ReengError(f"this model reads the semantic space {wanted['name']} {wanted['version']}, "
                             f"{'which is not given' if space is None else 'not ' + space.identity['version']}")
        blocks.append(_semantic_block(space, prepared))
    return hstack(blocks).tocsr()


def check_encoder_given(model: TextModel) -> None:
    """One clear error when ``model`` reads sentence embeddings and no local folder of its encoder was given
    (:func:`load`'s ``embedding_model``): the commands call it before their long pass, not at the first prediction."""
    wanted = model.meta.get("embedding_model")
    if wanted and model.embedding_folder is None:
        raise ReengError(f"this model uses the sentence encoder {wanted['name']} (version {wanted['version']}): "
                         "pass its local folder with --embedding-model")


def _embedding_block(folder: str, prepared: list[PreparedText]) -> Any:
    from scipy.sparse import csr_matrix

    from taxonomy.embeddings import embed

    return csr_matrix(embed(folder, [p.model_text for p in prepared]))


def _semantic_block(space: Any, prepared: list[PreparedText]) -> Any:
    from scipy.sparse import csr_matrix

    return csr_matrix(space.transform([p.model_text for p in prepared]))


def check_labels(target: str, labels: list[str | None]) -> list[int]:
    """Rows with a label; a target with fewer than two classes cannot be learned."""
    rows = [i for i, y in enumerate(labels) if y is not None and str(y).strip()]
    classes = {labels[i] for i in rows}
    if len(classes) < 2:
        only = f" (only {next(iter(classes))!r})" if classes else ""
        raise ReengError(f"label column {target!r} has {len(classes)} class{'es' if len(classes) != 1 else ''}{only}:"
                         " a classifier needs at least two")
    return rows


def train(prepared: list[PreparedText], evidence: list[dict[str, float]] | None,
          labels: dict[str, list[str | None]], *, fast: bool = False, evidence_features: bool | None = None,
          params: dict[str, Any] | None = None,
          embedding_model: Path | None = None, sgd: bool = False, semantic_space: Any | None = None,
          evidence_scale: float | None = None) -> TextModel:
    """Fit the vectorizer on all given threads and one classifier per target on its labeled rows.

    ``evidence_features``: the evidence and rule features join the n-grams (default: in full
    models only; True also in a fast model). ``sgd`` fits by SGD with logistic loss whatever the
    number of rows (:func:`make_classifier`). ``evidence_scale`` weighs the evidence block beside
    the n-grams (recorded in the model, which predicts with the same weight). Left ``None``, a
    full model chooses it from :data:`EVIDENCE_SCALE_GRID`, together with each target's C, by 3-fold
    cross-validated macro-F1 (each fold's score averaged over targets, each target at its best C): the
    default weight stands unless 0 scores higher in every fold, and then the model has no evidence
    features; where the rows are too few to cross-validate (:func:`searchable`), or
    for a fast or SGD model, it is :data:`EVIDENCE_SCALE`.

    With ``embedding_model`` (a local sentence-transformers folder) the features also hold each
    thread's sentence embedding; the model records the folder and needs it again to predict.
    With ``semantic_space`` (a fitted :class:`taxonomy.semantic.SemanticSpace`) they hold each
    thread's coordinates in it; the model records the space's identity and needs the same space
    again to predict (``model.semantic_space``).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction import DictVectorizer

    if not prepared:
        raise ReengError("no training rows")
    rows_per_target = {t: check_labels(t, y) for t, y in labels.items()}
    with_evidence = (not fast) if evidence_features is None else evidence_features
    model = TextModel(build_vectorizer(fast), DictVectorizer() if with_evidence else None, {}, {"features": "fast" if fast else "full"})
    texts = model_texts(prepared, fast)
    text_matrix = model.vectorizer.fit_transform(texts) if not fast else model.vectorizer.transform(texts)
    from scipy.sparse import hstack

    evidence_matrix = model.evidence_vectorizer.fit_transform(evidence or [{} for _ in prepared]) if with_evidence else None
    other_blocks = []
    embedding_folder, embedding_id = None, None
    if embedding_model is not None:
        from taxonomy.embeddings import check_model, identity

        embedding_folder, embedding_id = str(check_model(embedding_model)), identity(embedding_model)
        other_blocks.append(_embedding_block(embedding_folder, prepared))
    model.embedding_folder = embedding_folder
    if semantic_space is not None:
        other_blocks.append(_semantic_block(semantic_space, prepared))
    model.semantic_space = semantic_space

    def assemble(scale: float) -> Any:
        weighted = [scale * evidence_matrix] if evidence_matrix is not None and scale else []
        return hstack([text_matrix, *weighted, *other_blocks]).tocsr()

    targets_y = {t: [str(labels[t][i]) for i in rows] for t, rows in rows_per_target.items()}
    chosen_c: dict[str, float] = {}
    search: dict[str, float] | None = None
    if evidence_scale is None:
        evidence_scale = EVIDENCE_SCALE
        if with_evidence and not fast and not sgd and all(map(searchable, targets_y.values())):
            search, choices, folds = {}, {}, {}
            for scale in EVIDENCE_SCALE_GRID:
                matrix = assemble(scale)
                best = {t: choose_c(matrix[rows_per_target[t]], y) for t, y in targets_y.items()}
                folds[scale] = np.mean([scores for _, scores in best.values()], axis=0)
                search[str(scale)] = round(float(folds[scale].mean()), 4)
                choices[scale] = {t: c for t, (c, _) in best.items()}
            default, other = EVIDENCE_SCALE_GRID
            wins = int((folds[other] > folds[default]).sum())
            search[FOLDS_WON_KEY] = wins
            evidence_scale = other if wins == len(folds[default]) else default
            chosen_c = choices[evidence_scale]
    if not evidence_scale:
        with_evidence, model.evidence_vectorizer = False, None
    matrix = assemble(evidence_scale)
    for target, rows in rows_per_target.items():
        y = targets_y[target]
        # The fast model keeps the default C: speed first.
        clf = make_classifier(y, matrix[rows], search=not fast, sgd=sgd, c=chosen_c.get(target))
        with warnings.catch_warnings():
            # Few iterations on purpose (speed); a not-quite-converged linear model predicts fine.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.filterwarnings("ignore", message="The least populated class")
            clf.fit(matrix[rows], y)
        model.classifiers[target] = clf
    model.meta = {
        "format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "features": "fast" if fast else "full",
        "evidence_features": with_evidence, "evidence_scale": evidence_scale if with_evidence else 0.0,
        "evidence_search": search,  # mean CV macro-F1 per evidence weight tried, and the folds 0 won, when chosen by CV
        "targets": {t: {"classes": model.classes(t), "n_train": len(r), "classifier": type(model.classifiers[t]).__name__,
                        "C": getattr(model.classifiers[t], "C", None)}
                    for t, r in rows_per_target.items()},
        "training_data_sha256": data_hash(texts, labels), "n_threads": len(prepared),
        "params": params or {}, "libraries": library_versions(), "embedding_model": embedding_id,
        "semantic_space": semantic_space.identity if semantic_space is not None else None,
    }
    return model


def predict_proba(model: TextModel, prepared: list[PreparedText],
                  evidence: list[dict[str, float]] | None = None) -> dict[str, np.ndarray]:
    """Class probabilities per target (rows: threads, columns: ``model.classes(target)``)."""
    matrix = features(model, prepared, evidence)
    return {t: clf.predict_proba(matrix) for t, clf in model.classifiers.items()}


def top_terms(model: TextModel, target: str, label: str, prepared: PreparedText, k: int = 5) -> list[str]:
    """The word n-grams of one thread that pushed hardest towards ``label`` (full models only).

    For a linear model a feature's contribution is its weight times its value; the thread's own
    n-grams are hashed the way the vectorizer hashes them, so they can be named.
    """
    from sklearn.utils import murmurhash3_32

    if model.fast or not hasattr(model.classifiers[target], "coef_"):
        return []
    clf = model.classifiers[target]
    classes = model.classes(target)
    weights = clf.coef_[0] * (1 if classes.index(label) == 1 else -1) if clf.coef_.shape[0] == 1 else clf.coef_[classes.index(label)]
    word = model.vectorizer.steps[0][1].transformer_list[0][1]
    grams = set(word.build_analyzer()(prepared.model_text))
    scored = sorted(((weights[abs(murmurhash3_32(g, seed=0)) % WORD_FEATURES], g) for g in grams), reverse=True)
    return [g for w, g in scored[:k] if w > 0]


def skops_io() -> Any:
    """``skops.io``, imported without importing torch on the way.

    Importing ``skops.io`` lists scikit-learn's estimators, which imports every scikit-learn
    package, ``sklearn.externals.array_api_compat.torch`` included, and that imports all of
    torch: 40 % of a first save's or load's time (5 s of 13.6 s at load 9 on 2 cores). No
    estimator lives in ``sklearn.externals`` (the listing skips it), so an empty placeholder for
    that one package during the import yields the same trusted types; it is removed afterwards.
    """
    import sys
    import types

    name = "sklearn.externals.array_api_compat.torch"
    if "skops.io" in sys.modules or "torch" in sys.modules or name in sys.modules:
        import skops.io

        return skops.io
    placeholder = types.ModuleType(name)
    placeholder.__path__ = []
    sys.modules[name] = placeholder
    try:
        import skops.io
    finally:
        if sys.modules.get(name) is placeholder:
            del sys.modules[name]
    return skops.io


def save(model: TextModel, path: Path) -> None:
    """Write a model with skops (atomically: a failed save leaves no file).

    The evidence vectorizer is written as its list of feature names (JSON): skops would write
    each of its thousand-odd names as an object of its own, which made most of the file's
    schema and of the save time. Arrays are compressed at zlib level 1: level 6 took a third
    longer to save a file 3 % smaller.
    """
    import zipfile

    from reeng.outputs import staged_file

    sio = skops_io()

    evidence = model.evidence_vectorizer
    payload = {"meta_json": json.dumps(model.meta), "vectorizer": model.vectorizer,
               "evidence_features_json": None if evidence is None else json.dumps(evidence.feature_names_),
               "classifiers": model.classifiers}
    with staged_file(path) as tmp:
        sio.dump(payload, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=1)


def _evidence_vectorizer(names_json: str | None) -> Any:
    """The fitted ``DictVectorizer`` that :func:`save` wrote as its sorted feature names."""
    from sklearn.feature_extraction import DictVectorizer

    if names_json is None:
        return None
    names = json.loads(names_json)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("evidence features are not a list of names")
    vectorizer = DictVectorizer()
    vectorizer.feature_names_ = names
    vectorizer.vocabulary_ = {name: i for i, name in enumerate(names)}
    return vectorizer


def _meta(text: Any) -> dict[str, Any] | None:
    """A model file's metadata (the JSON object :func:`save` wrote), or None when it is not one."""
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def load(path: Path | str, embedding_model: Path | str | None = None) -> TextModel:
    """Read a model written by :func:`save`, refusing files that are not one or hold untrusted types."""
    import zipfile

    sio = skops_io()
    path = Path(path)
    if not path.is_file():
        raise ReengError(f"{path}: no such model file")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, json.JSONDecodeError):
        raise ReengError(f"{path}: not a reeng model (not a skops file)") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ReengError(f"{path}: refusing to load types outside scikit-learn/numpy/scipy: {', '.join(refused[:5])}")
    try:
        payload = sio.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001 - skops raises many types for foreign or damaged files
        raise ReengError(f"{path}: not a readable reeng model ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or "meta_json" not in payload:
        raise ReengError(f"{path}: not a reeng model (a skops file of something else)")
    meta = _meta(payload["meta_json"])
    if meta is None:
        raise ReengError(f"{path}: not a readable reeng model (its metadata is not a JSON object)")
    if meta.get("format") != MODEL_FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ReengError(f"{path}: model format {meta.get('format')} v{meta.get('format_version')}, this reeng reads "
                         f"{MODEL_FORMAT} v{FORMAT_VERSION}: retrain it with `reeng classify train`")
    try:
        evidence = _evidence_vectorizer(payload.get("evidence_features_json"))
    except (ValueError, TypeError):
        raise ReengError(f"{path}: not a readable reeng model (damaged evidence features)") from None
    classifiers = payload.get("classifiers")
    if "vectorizer" not in payload or not isinstance(classifiers, dict) or not classifiers:
        raise ReengError(f"{path}: not a readable reeng model (no vectorizer or no classifier in it)")
    model = TextModel(payload["vectorizer"], evidence, classifiers, meta)
    if embedding_model is not None:
        use_encoder(model, embedding_model)
    return model


def use_encoder(model: TextModel, folder: Path | str) -> None:
    """Point a loaded model at its sentence encoder's local folder, checking it is the one it was trained with."""
    from taxonomy.embeddings import check_model, identity

    wanted = model.meta.get("embedding_model")
    if not wanted:
        raise ReengError("--embedding-model: this model was trained without sentence embeddings")
    found = identity(folder)
    if found["version"] != wanted["version"]:
        raise ReengError(f"--embedding-model: {folder} is {found['name']} version {found['version']}, the model was "
                         f"trained with {wanted['name']} version {wanted['version']}")
    model.embedding_folder = str(check_model(folder))
