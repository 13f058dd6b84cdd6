"""Which threads are reengineering defects: the two filter questions asked before any taxonomy label.

* **defect or not** (``issue_type``: defect / feature / question / documentation / not_defect) — first
  precise rules on the reporter's part (:func:`issue_type_of`): an explicit feature / question /
  documentation tag or phrase with no failure reported. A thread the rules leave a defect then
  meets the **defect filter** (a :class:`ThreadFilter` on the reporter's part, trained on the
  project's annotations, ``taxonomy/data/cv_annotations.csv``: 891 defects and 96 non-defects
  among Denchmark's bug reports of CV model repositories). Its P(defect) is the prediction's
  probability (a ranking for review: the least likely defects first); the thread becomes
  ``not_defect`` only where a non-defect is likelier than a defect at the annotations' class
  shares. ``benchmarks/defect_filter.py`` measures both and shows why no keep target is used:
  on unseen repositories every threshold drops more defects than non-defects. Those non-defects
  are bug reports that turned out not to be defects: on a corpus mined from *all* issues, where
  feature requests and questions are common, the filter keeps nearly all of them (measured in
  ``docs/classifier.md``). There a user's own **issue-type model** (``reeng classify train
  --data`` on issues labeled bug / feature / question, :func:`load_issue_type_model`) takes the
  defect filter's place after the rules.
* **reengineering or not** (``reengineering``: yes / no) — a trained text classifier
  (:class:`ThreadFilter`, scikit-learn conventions) on Denchmark threads (title, prose
  and condensed logs of the whole thread, read as the labeler reads a store), labeled *by
  repository*: threads of CV model repositories (reimplementations, model zoos, official
  model code, among them the study's repositories present in Denchmark) are
  ``yes``, threads of other deep-learning projects (frameworks, tools, NLP/speech/RL models) are
  ``no``; repositories whose role is unclear are left out (:data:`CV_MODEL_REPOS`,
  :data:`UNCLEAR_REPOS`). Every issue of the study's gold sheet and of its non-reengineering list
  is excluded from training: they are test data. The keep threshold is chosen by grouped
  cross-validation on the training data so that 80 % of the threads of *unseen* CV model
  repositories are kept.

:func:`default_reengineering_filter` and :func:`default_defect_filter` train their filters at run
time from the local Denchmark archive (``REENG_DATA_DIR``) once and keep the fitted arrays in the
cache folder (a ``.npz`` loaded without pickle); without the archive they return None and the
built-in labeler falls back to the rules, with a ``fallback`` note in the prediction's evidence.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from reeng.errors import ReengError
from reeng.settings import cached_arrays
from taxonomy.text import PREPARE_KEY

if TYPE_CHECKING:
    from taxonomy.batch import Analysed
    from taxonomy.labelers import Prediction
    from taxonomy.supervised import TextModel
    from taxonomy.text import PreparedText

FILTER_VERSION = "1"  # bump when the training data or the model change: cached filters are then rebuilt
DEFECT_FILTER_VERSION = "1"  # the same for the defect filter
# The defect filter: C chosen by 5-fold cross-validation by repository on the annotations; the threshold is the
# decision at equal costs, because no keep target paid off: on unseen repositories every threshold drops more
# defects than non-defects (benchmarks/defect_filter.py, docs/classifier.md).
DEFECT_FILTER_PARAMS: dict[str, Any] = {"C": 2.0, "target_keep": None}
# ``not_defect``: the defect filter's answer, a non-defect of no particular kind; the others are the rules'.
ISSUE_TYPES = ("defect", "feature", "question", "documentation", "not_defect")

# Denchmark repositories whose issues are about CV models themselves: the study's three
# (yolov3, yolov5, mmdetection) and other reimplementations, model zoos and official model code.
CV_MODEL_REPOS = frozenset({
    "ultralytics/yolov3", "ultralytics/yolov5", "open-mmlab/mmdetection", "avinashpaliwal/super-slomo",
    "cmu-perceptual-computing-lab/openpose", "mkocabas/vibe", "wkentaro/fcn", "wkentaro/pytorch-fcn",
    "deeplabcut/deeplabcut", "rwightman/efficientdet-pytorch", "jgraving/deepposekit", "chainer/chainercv",
    "onnx/models", "microsoft/computervision-recipes", "openvinotoolkit/training_extensions",
    "breta01/handwriting-ocr", "deepfakes/faceswap",
})
# CV projects that are neither plainly model repositories nor plainly something else: left out of training.
UNCLEAR_REPOS = frozenset({
    "kornia/kornia", "albumentations-team/albumentations", "fepegar/torchio", "project-monai/monai",
    "azavea/raster-vision", "akshayubhat/deepvideoanalytics", "cloud-annotations/training", "hypergan/hypergan",
    "dreamnettech/dreampower", "pytorchlightning/pytorch-lightning-bolts", "tesseract-ocr/tesseract",
    "microsoft/vott", "intel-isl/open3d", "nicolas-chaulet/torch-points3d",
})

# --- defect or not: precise rules on the title and the reporter's prose ------------------------

_TAG = r"^\W*(?:{})\W*[:\]\-|]"
# (label, where, pattern, explicit): an explicit rule (a feature tag in the title) decides even where a failure is reported.
_RULES: tuple[tuple[str, str, re.Pattern[str], bool], ...] = (
    ("feature", "title", re.compile(_TAG.format(r"feature(?:[ _-]?request)?|enhancement|proposal|rfc|"
                                                r"feature suggestion|new feature"), re.I), True),
    ("feature", "title", re.compile(r"\bfeature request\b", re.I), True),
    # A title that asks for something new: "Add support for ...", "Allow ...", "Option to ...".
    ("feature", "title", re.compile(r"^\W*(?:add|allow|support|provide|enable|expose|implement|introduce|make it possible"
                                    r"|option to|ability to)\b", re.I), False),
    # The headings of common feature-request templates (GitHub's default, PyTorch-style "🚀 Feature" / "Pitch").
    ("feature", "prose", re.compile(r"is your feature request related to a problem|describe the solution you'?d like"
                                    r"|describe alternatives you'?ve considered|who will benefit (?:with|from) this feature"
                                    r"|^\W*(?:🚀\s*)?feature\W*$|^\W*pitch\W*$|^\W*describe the feature\b", re.I | re.M), False),
    ("feature", "prose", re.compile(r"\b(?:it|this) would be (?:nice|great|useful|helpful|cool) (?:to have|if (?:you|we|there)"
                                    r"|to (?:add|support))\b|\b(?:i'?d|i would|we would) like to (?:request|propose|suggest)"
                                    r" (?:a |an |the )?(?:feature|support|option)\b|\bis there (?:any )?plans? to "
                                    r"(?:support|add|implement|release)\b|\bplease add (?:support|an option)\b", re.I), False),
    ("question", "title", re.compile(_TAG.format(r"question|questions|q|help|discussion|how ?to"), re.I), False),
    ("question", "title", re.compile(r"^\W*(?:how (?:to|can|do|should|could)|is it possible|is there (?:a|any) way"
                                     r"|what (?:is|are|does) the (?:meaning|difference|purpose)|which (?:one|version) should)\b",
                                     re.I), False),
    ("question", "prose", re.compile(r"\b(?:i have (?:a|some|a few|few) questions?|my questions? (?:is|are)\b"
                                     r"|i(?:'m| am| was) wondering|could (?:you|someone|anyone) (?:please )?(?:explain|tell me|clarify)"
                                     r"|i(?:'d| would) like to know)\b", re.I), False),
    ("documentation", "title", re.compile(_TAG.format(r"docs?|documentation|readme"), re.I), False),
    ("documentation", "title", re.compile(r"\b(?:typos?|broken links?|dead links?) in (?:the )?(?:readme|docs?|documentation|"
                                          r"tutorial|docstrings?)\b", re.I), False),
)
# A failure signal in the reporter's part makes a thread a defect report whatever its title says
# ("[Question] why does training crash with ..."): an explicit feature tag alone overrides it. So does a heading of a
# bug-report template ("Describe the bug", "To Reproduce", "🐛 Bug"): the reporter chose to report a bug.
_BUG_TEMPLATE = re.compile(r"^\W*(?:🐛\s*)?(?:bug report|describe the bug|bug|to reproduce|steps to reproduce|reproduction steps"
                           r"|expected behaviou?r)\W*$", re.I | re.M)
_FAILURE = re.compile(r"\b(?:error|errors|exception|traceback|crash(?:es|ed|ing)?|segfault|segmentation fault"
                      r"|fail(?:s|ed|ing|ure)?|bug|broken|break(?:s|ing)?|wrong|incorrect|nan|not work(?:ing)?|doesn'?t work|does not work"
                      r"|cannot|can'?t|unable)\b", re.I)


@dataclass
class IssueType:
    """The answer of the issue-type rules: a label, the rule text that decided it, and why."""

    label: str
    spans: list[dict[str, str]] = field(default_factory=list)


def issue_type_of(title: str, prose: str, logs: str = "") -> IssueType:
    """``defect`` unless a precise feature / question / documentation rule fires and no failure is reported.

    ``logs`` (tracebacks, error output in the reporter's part) count as a failure signal.
    """
    title, prose = title or "", prose or ""
    failure = _FAILURE.search(f"{title}\n{prose}") or (logs or "").strip() or _BUG_TEMPLATE.search(prose)
    for label, where, pattern, explicit in _RULES:
        m = pattern.search(title if where == "title" else prose)
        if not m:
            continue
        if failure and not explicit:
            break
        return IssueType(label, [{"kind": "issue_type", "label": label, "text": m.group(0).strip()[:120],
                                  "section": f"opening {where}"}])
    return IssueType("defect")


# --- defect or not by a user's issue-type model -----------------------------------------------

# What an issue-type model's classes (its labels, in any case) mean; any other class is a non-defect of no listed kind.
ISSUE_TYPE_NAMES = {
    "defect": ("bug", "bugs", "defect", "bug report", "bug_report", "type: bug", "kind/bug"),
    "feature": ("feature", "feature request", "feature_request", "enhancement", "proposal", "type: feature", "kind/feature"),
    "question": ("question", "questions", "support", "help", "usage", "how-to", "type: question", "kind/question"),
    "documentation": ("documentation", "docs", "doc", "type: docs", "kind/documentation"),
}


def issue_type_name(label: str) -> str:
    """The filter's issue type (:data:`ISSUE_TYPES`) of an issue-type model's class: ``bug`` is a defect, and so on."""
    key = str(label).strip().lower()
    return next((kind for kind, names in ISSUE_TYPE_NAMES.items() if key in names), "not_defect")


def issue_type_target(model: TextModel) -> str:
    """The one target of an issue-type model, checked: its classes hold a defect class and another one."""
    if len(model.targets) != 1:
        raise ReengError(f"an issue-type model predicts one label column; this one predicts {len(model.targets)} "
                         f"({', '.join(model.targets)})")
    target = model.targets[0]
    classes = model.classes(target)
    kinds = {issue_type_name(c) for c in classes}
    if "defect" not in kinds or kinds == {"defect"}:
        raise ReengError(f"an issue-type model needs a defect class (one of: {', '.join(ISSUE_TYPE_NAMES['defect'])}) and "
                         f"another class; this one's classes are: {', '.join(classes)}")
    return target


def load_issue_type_model(path: Path | str, embedding_model: Path | str | None = None) -> TextModel:
    """A model trained by ``reeng classify train --data`` on issues labeled by type, checked to be one."""
    from taxonomy.supervised import load, use_encoder

    model = load(path)
    encoder = model.meta.get("embedding_model")
    if encoder and embedding_model is None:
        raise ReengError(f"{path}: this issue-type model reads the sentence encoder {encoder['name']}: pass its local "
                         "folder with --embedding-model")
    if encoder:  # a model without sentence embeddings ignores the folder the built-in text models read
        use_encoder(model, embedding_model)  # type: ignore[arg-type]
    try:
        issue_type_target(model)
    except ReengError as exc:
        raise ReengError(f"{path}: {exc}") from None
    return model


def issue_type_model_id(model: TextModel) -> str:
    """How predictions name an issue-type model: its training data's digest (never a path)."""
    return f"issue-types-{model.meta['training_data_sha256'][:12]}"


def model_issue_types(model: TextModel, analysed: list[Analysed]) -> list[tuple[str, float, float]]:
    """(issue type, its probability, P(defect)) of each thread by an issue-type model, read on the reporter's part.

    A model trained on table rows (title and body) saw no discussion: it reads the opening post and
    the reporter's follow-ups, with their evidence only. Several classes of one kind add up.
    """
    from taxonomy.rules import rule_features
    from taxonomy.supervised import predict_proba

    target = issue_type_target(model)
    prepared = [a.opening or a.prepared for a in analysed]
    evidence = ([rule_features([e for e in a.evidence if e.section.startswith("opening")]) for a in analysed]
                if model.uses_evidence else None)
    proba = predict_proba(model, prepared, evidence)[target]  # type: ignore[arg-type]
    kinds = [issue_type_name(c) for c in model.classes(target)]
    out = []
    for row in proba:
        by_kind: dict[str, float] = {}
        for kind, p in zip(kinds, row):
            by_kind[kind] = by_kind.get(kind, 0.0) + float(p)
        best = max(by_kind, key=by_kind.__getitem__)
        out.append((best, by_kind[best], by_kind.get("defect", 0.0)))
    return out


# --- the filters' classifier; reengineering or not: trained on Denchmark, labeled by repository ---


class ThreadFilter(ClassifierMixin, BaseEstimator):
    """Thread text → P(yes): hashed word 1-2-grams, TF-IDF, logistic regression, with a keep threshold.

    ``yes`` is what the filter keeps: a thread of a CV model repository (the reengineering
    filter) or a defect (the defect filter).

    ``fit(texts, y, groups=None)`` with ``y`` in {"yes", "no"}; ``predict_proba`` columns follow
    ``classes_`` (``["no", "yes"]``). With ``groups`` (the repositories), every repository weighs
    the same within its class, and the keep threshold is chosen by an inner ``StratifiedGroupKFold`` on
    the training data so that a ``target_keep`` share of the yes threads of *unseen*
    repositories is kept (``threshold_``); without groups the classes are balanced and the
    threshold is 0.5. With ``target_keep=None`` the threshold is the decision at equal costs
    and the training data's class shares: a thread is dropped only where, at those shares, it
    is likelier a ``no`` than a ``yes`` (P(yes) under balanced weights below the share of
    ``no``). The fitted state is a few arrays (:meth:`to_arrays` / :meth:`from_arrays`), so a
    cached filter loads without pickle.
    """

    def __init__(self, C: float = 8.0, n_features: int = 2**18, target_keep: float | None = 0.8, folds: int = 3) -> None:
        self.C = C
        self.n_features = n_features
        self.target_keep = target_keep
        self.folds = folds

    def _counts(self, texts: Iterable[str]) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        vec = HashingVectorizer(n_features=self.n_features, ngram_range=(1, 2), alternate_sign=False, norm=None,
                                token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_]+\b")
        counts = vec.transform(list(texts))
        counts.data = 1 + np.log(counts.data)  # sublinear tf
        return counts

    def _weighted(self, counts: Any) -> Any:
        from sklearn.preprocessing import normalize

        return normalize(counts.multiply(self.idf_).tocsr())

    def _fit_counts(self, counts: Any, y: np.ndarray, groups: np.ndarray | None) -> None:
        from sklearn.linear_model import LogisticRegression

        df = np.bincount(counts.indices, minlength=self.n_features)
        self.idf_ = (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)
        lr = LogisticRegression(C=self.C, max_iter=2000, solver="liblinear")
        lr.fit(self._weighted(counts), y, sample_weight=balanced_weights(y, groups))
        self.classes_ = lr.classes_
        self.coef_, self.intercept_ = lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)

    def _yes_proba(self, counts: Any) -> np.ndarray:
        z = np.asarray(self._weighted(counts) @ self.coef_[0]).ravel() + float(self.intercept_[0])
        return 1 / (1 + np.exp(-z))

    def fit(self, X: Iterable[str], y: Iterable[str], groups: Iterable[str] | None = None) -> ThreadFilter:
        labels = np.asarray([str(v) for v in y])
        counts = self._counts(X).tocsr()  # counted once; the inner folds slice it
        groups = None if groups is None else np.asarray(list(groups))
        self.threshold_ = 0.5 if self.target_keep is not None else float(np.mean(labels != "yes"))
        enough = self.target_keep is not None and groups is not None and all(
            len(set(groups[mask])) >= self.folds for mask in (labels == "yes", labels != "yes"))
        if enough:
            from sklearn.model_selection import StratifiedGroupKFold

            oof = np.full(len(labels), np.nan)
            for train, test in StratifiedGroupKFold(self.folds).split(labels, labels, groups):
                if len(set(labels[train])) == 2:
                    inner = ThreadFilter(self.C, self.n_features)
                    inner._fit_counts(counts[train], labels[train], groups[train])
                    oof[test] = inner._yes_proba(counts[test])
            scored = oof[(labels == "yes") & ~np.isnan(oof)]
            self.threshold_ = float(np.quantile(scored, 1 - self.target_keep)) if scored.size else 0.5  # type: ignore[operator]
        self._fit_counts(counts, labels, groups)
        return self

    def predict_proba(self, X: Iterable[str]) -> np.ndarray:
        p = self._yes_proba(self._counts(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Iterable[str]) -> np.ndarray:
        """``yes`` where P(yes) reaches the fitted keep threshold."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"idf": self.idf_, "coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_.astype(str),
                "params": np.array([self.C, self.n_features, np.nan if self.target_keep is None else self.target_keep,
                                    self.folds, self.threshold_])}

    @classmethod
    def from_arrays(cls, arrays: Any) -> ThreadFilter:
        C, n_features, target_keep, folds, threshold = arrays["params"]
        model = cls(C=float(C), n_features=int(n_features), target_keep=None if np.isnan(target_keep) else float(target_keep),
                    folds=int(folds))
        model.idf_, model.coef_, model.intercept_ = arrays["idf"], arrays["coef"], arrays["intercept"]
        model.classes_, model.threshold_ = np.asarray(arrays["classes"]).astype(object), float(threshold)
        return model


def balanced_weights(y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Sample weights under which both classes weigh the same and, with ``groups``, each group within its class too."""
    w = np.ones(len(y))
    if groups is not None:
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        w = 1 / counts[inverse]
    for label in np.unique(y):
        mask = y == label
        w[mask] *= len(y) / (2 * w[mask].sum())
    return w


def repository_label(repo: str) -> str | None:
    """``yes`` for a CV model repository, ``no`` for another DL project, None when unclear (left out)."""
    repo = repo.lower()
    return "yes" if repo in CV_MODEL_REPOS else None if repo in UNCLEAR_REPOS else "no"


def filter_text(title: str, prose: str, logs: str = "") -> str:
    """What the reengineering filter reads: the title (twice), the thread's prose and its log signals."""
    return f"{title}\n{title}\n{prose}\n{logs}"


def thread_text_parts(prepared: PreparedText) -> tuple[str, str, str]:
    """(title, prose, condensed logs) of a prepared thread or part."""
    return prepared.title, prepared.prose, prepared.evidence_logs


@dataclass
class FilterData:
    """Labeled threads for the filter: (title, prose, logs) of the whole thread and of the reporter's part, label,
    repository (the CV group), issue key."""

    parts: list[tuple[str, str, str]]
    labels: list[str]
    groups: list[str]
    keys: list[tuple[str, int]]
    opening: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [filter_text(*p) for p in self.parts]


def study_issue_keys() -> set[tuple[str, int]]:
    """(lower-case owner/repo, number) of every issue of the study: gold defects and non-reengineering issues."""
    from reeng.datasets import locate
    from taxonomy.gold import import_defects, import_non_reengineering

    keys: set[tuple[str, int]] = set()
    for table in (import_defects(locate("jiang2024-defects")), import_non_reengineering(locate("jiang2024-non-reengineering"))):
        keys |= {(f"{o}/{r}".lower(), int(n)) for o, r, n in table[["owner", "repo", "number"]].itertuples(index=False)}
    return keys


def denchmark_filter_data(archive: Path | str, exclude: set[tuple[str, int]], *, per_repo: int = 25,
                          per_cv_repo: int = 150, seed: int = 0, include: set[tuple[str, int]] | None = None,
                          progress: bool = False) -> FilterData:
    """Sample the archive's threads, at most ``per_repo`` per other project and ``per_cv_repo`` per CV model repository.

    Caps keep the big frameworks (TensorFlow: 5,514 threads) from drowning the rest and keep
    training to seconds. ``exclude`` keys are never taken; ``include`` keys (held-out test
    threads) are always read, whatever the caps, so that callers can score them. Threads are
    read exactly as the labeler reads a store's (roles and hygiene, then text preparation);
    non-English ones are left out, as the labeler abstains on them.
    """
    from miner.denchmark import members_by_repo, readable_issue
    from taxonomy.batch import analyse_many
    from taxonomy.thread import split_roles

    def wanted(owner: str, name: str, number: int) -> bool:
        repo = f"{owner}/{name}"
        return (repo.lower(), number) not in exclude and repository_label(repo) is not None

    members = members_by_repo(archive, wanted)
    rng = random.Random(seed)
    rows, meta = [], []
    for repo in sorted(members):
        label = repository_label(repo)
        items = members[repo]
        cap = per_cv_repo if label == "yes" else per_repo
        chosen = {n for n, *_ in rng.sample(items, min(cap, len(items)))}
        chosen |= {n for n, *_ in items if include and (repo.lower(), n) in include}
        for number, blob, owner, name in items:
            if number not in chosen or (issue := readable_issue(blob, owner, name, number)) is None:
                continue
            parts = split_roles(issue["title"], issue["body"], issue["comments"], issue["author"])
            rows.append((parts.title, list(parts.opening), list(parts.discussion)))
            meta.append((label, repo.lower(), number))
    analysed = analyse_many(rows, total=len(rows), progress=progress, label="filter data", with_evidence=False)
    data = FilterData([], [], [], [])
    for a, (label, repo, number) in zip(analysed, meta):
        if a.prepared is None or not a.prepared.english:
            continue
        data.parts.append(thread_text_parts(a.prepared))
        data.opening.append(thread_text_parts(a.opening or a.prepared))
        data.labels.append(label)  # type: ignore[arg-type]
        data.groups.append(repo)
        data.keys.append((repo, number))
    return data


def local_archive() -> Path | None:
    """The Denchmark archive if it is on this machine (REENG_DATA_DIR or the cache); never downloads."""
    from reeng.datasets import locate

    try:
        return locate("denchmark-bugreports")
    except (ReengError, OSError):
        return None


def archive_fingerprint(archive: Path) -> str:
    """What identifies a local archive in a cache key (path, size, modification time): another copy retrains."""
    stat = archive.stat()
    return f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _cache_path(name: str, version: str, *key_parts: str) -> Path:
    """A cached filter's file: ``filters/<name>-v<version>-<key>.npz`` (:func:`reeng.settings.keyed_cache_file`)."""
    from reeng.settings import keyed_cache_file

    return keyed_cache_file("filters", name, version, key_parts, ".npz")


@cache
def default_reengineering_filter() -> ThreadFilter | None:
    """The trained filter: from the cache, else trained now on the local archive (seconds); None without the archive."""
    archive = local_archive()
    if archive is None:
        return None
    try:
        exclude = study_issue_keys()
    except Exception:  # noqa: BLE001 - without the study's lists the test issues cannot be held out: no filter
        return None

    def build() -> ThreadFilter | None:
        data = denchmark_filter_data(archive, exclude)
        if set(data.labels) != {"yes", "no"}:  # an archive without both kinds of repository: the rules alone
            return None
        return ThreadFilter().fit(data.texts, data.labels, data.groups)

    held_out = ",".join(f"{r}#{n}" for r, n in sorted(exclude))  # the study issues kept out of training
    path = _cache_path("reengineering", FILTER_VERSION, archive_fingerprint(archive), held_out, PREPARE_KEY)
    return cached_arrays(path, build, ThreadFilter.from_arrays)


def defect_filter_data(threads: dict[tuple[str, int], Analysed], labels: dict[tuple[str, int], str]) -> FilterData:
    """The annotated threads as training data for the defect filter: the reporter's part, ``yes`` for a defect, by repository."""
    keys = sorted(k for k in threads if k in labels)
    opening = [thread_text_parts(threads[k].opening or threads[k].prepared) for k in keys]  # type: ignore[arg-type]
    return FilterData(opening, [labels[k] for k in keys], [repo for repo, _ in keys], keys, opening)


@cache
def default_defect_filter() -> ThreadFilter | None:
    """The defect-or-not filter trained on the shipped annotations: cached, else trained now (seconds); None without the archive."""
    from taxonomy.annotations import annotations_fingerprint, defect_labels, read_annotations, shipped_threads

    archive = local_archive()
    if archive is None:
        return None
    path = _cache_path("defect", DEFECT_FILTER_VERSION, archive_fingerprint(archive), annotations_fingerprint(), PREPARE_KEY)

    def build() -> ThreadFilter | None:
        data = defect_filter_data(shipped_threads(archive), defect_labels(read_annotations()))
        if set(data.labels) != {"yes", "no"}:  # an archive without the annotated threads: the rules alone
            return None
        return ThreadFilter(**DEFECT_FILTER_PARAMS).fit(data.texts, data.labels, data.groups)

    return cached_arrays(path, build, ThreadFilter.from_arrays)


FALLBACK_REASON = "rules only: no local Denchmark archive to train the reengineering filter (set REENG_DATA_DIR)"
DEFECT_FALLBACK_REASON = "rules only: no local Denchmark archive to train the defect filter (set REENG_DATA_DIR)"


def filter_predictions(analysed: list[Analysed], fallback: list[Prediction] | None = None,
                       issue_types: TextModel | None = None) -> list[dict[str, Prediction]]:
    """The two filter dimensions of readable threads: ``issue_type`` by the defect rules, ``reengineering`` by the filter.

    A filter always answers (a thread is kept or dropped). Where the rules leave a defect, the
    defect filter, or the user's ``issue_types`` model in its place, decides. Without the trained
    filter the ``fallback`` reengineering predictions (the evidence rules') are kept, a ``fallback``
    note among their evidence saying so. The issue-type rules' probability is 1: a rule decided,
    it is not a calibrated estimate.
    """
    from taxonomy.labelers import Prediction

    model = default_reengineering_filter()
    defects = default_defect_filter() if issue_types is None else None
    yes = model.predict_proba([filter_text(*thread_text_parts(a.prepared)) for a in analysed])[:, 1] if model and analysed else []
    openings = [thread_text_parts(a.opening or a.prepared) for a in analysed]
    defect = defects.predict_proba([filter_text(*o) for o in openings])[:, 1] if defects and analysed else []
    typed = model_issue_types(issue_types, analysed) if issue_types is not None and analysed else []
    out = []
    for i, a in enumerate(analysed):
        kind = issue_type_of(*openings[i])
        preds = {"issue_type": Prediction("issue_type", kind.label, 1.0, kind.label, kind.spans)}
        if kind.label == "defect" and issue_types is not None:
            label, prob, p_defect = typed[i]
            span = {"kind": "model", "label": "issue_type_model", "section": "opening",
                    "text": f"P(defect) {p_defect:.3f} by the issue-type model {issue_type_model_id(issue_types)}"}
            preds["issue_type"] = Prediction("issue_type", label, round(prob, 4), label, [span])
        elif kind.label == "defect" and defects is None:
            note = {"kind": "note", "label": "fallback", "text": DEFECT_FALLBACK_REASON, "section": "opening"}
            preds["issue_type"].evidence.append(note)
        elif kind.label == "defect":
            p, share = float(defect[i]), defects.threshold_  # threshold_: the annotations' non-defect share
            q = p * (1 - share) / (p * (1 - share) + (1 - p) * share)  # P(defect) at the annotations' class shares
            label = "defect" if q >= 0.5 else "not_defect"
            span = {"kind": "model", "label": "defect_filter", "section": "opening",
                    "text": f"P(defect) {q:.3f} at the annotations' share of non-defects ({share:.3f})"}
            preds["issue_type"] = Prediction("issue_type", label, round(q if label == "defect" else 1 - q, 4), label, [span])
        if model is None:
            fb = fallback[i] if fallback is not None else Prediction("reengineering", "yes", 1.0, "yes")
            note = {"kind": "note", "label": "fallback", "text": FALLBACK_REASON, "section": "whole"}
            label, prob = fb.label or fb.candidate, fb.probability
            if label == "no" and not any(s.get("kind") != "note" for s in fb.evidence):
                # No rule said "no": a tie of uniform priors (no study labels either) must not drop a thread.
                label, prob = "yes", round(1 - prob, 4)
            preds["reengineering"] = Prediction("reengineering", label, prob, label, [*fb.evidence, note])
        else:
            label = "yes" if yes[i] >= model.threshold_ else "no"
            span = {"kind": "model", "label": "reengineering_filter", "section": "whole",
                    "text": f"P(CV model repository thread) {yes[i]:.3f}, keep threshold {model.threshold_:.3f}"}
            preds["reengineering"] = Prediction("reengineering", label, round(float(yes[i] if label == "yes" else 1 - yes[i]), 4),
                                                label, [span])
        out.append(preds)
    return out


def keep_rate_ci(kept: np.ndarray, groups: np.ndarray | None = None, draws: int = 1000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Share kept with a 95 % bootstrap interval; with ``groups``, whole groups (repositories) are resampled."""
    kept = np.asarray(kept, dtype=float)
    if kept.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        stats = [kept[rng.integers(0, kept.size, kept.size)].mean() for _ in range(draws)]
    else:
        groups = np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        stats = []
        for _ in range(draws):
            idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
            stats.append(kept[idx].mean())
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(kept.mean()), float(lo), float(hi)
