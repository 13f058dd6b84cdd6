"""The built-in labeler: precise evidence rules turned into calibrated probabilities, no training on text.

Every dimension has a :class:`RuleLabeler`, a scikit-learn classifier over the binary matrix
of the rules that fired in the part of the thread that decides the dimension. It combines the
rules as a naive-Bayes model in posterior form::

    P(c | rules) ∝ π(c) · Π_r  P(c | r) / π(c)

``π`` is the label prior and ``P(c | r)`` the category distribution of threads on which rule
``r`` fires. Without labelled text, a rule is right with probability ``precision`` (``q``) and
otherwise says nothing, so ``P(c | r) = q + (1 - q) π(c)`` for the rule's category and
``(1 - q) π(c')`` for the others (one parameter, not a weight per rule). A fired rule thus always
raises its own category and leaves the others in their prior proportions. (Setting
``P(c | r) = q`` outright, as before, made a ``crash`` rule *lower* ``crash`` whenever
``q`` < π(crash) = 0.63, and raise every other impact.)
``fit(X, y)`` on labelled threads refines each rule's table from counts, with ``strength``
pseudo-counts of that knowledge.

The probabilities stay the calibrated posterior (for abstention, PPI, risk-coverage). The
best-guess label is a separate decision (:func:`decide`, parameter ``decision``). The default,
``"balanced"``, takes ``argmax_c P(c | x) / π(c)``: the Bayes decision for balanced error (mean
per-class recall), the objective that matches what the classifier is scored on, chance-corrected
agreement, where always answering the majority class earns nothing. Where no evidence moved the
posterior off the prior, or two categories tie, it falls back to the prior's most frequent
category. ``"map"`` (argmax of the posterior, the decision for plain accuracy) was the rule
before; with a 63 % ``crash`` prior it answered ``crash`` for every thread. The built-in labeler learns only the prior, from the study's
published labels (labels, never text), and decodes the six dimensions jointly with tables
learned from the same labels (:mod:`taxonomy.joint`). Predictions keep the evidence spans of
the rules behind the chosen category and abstain ("needs review") below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from taxonomy.evidence import Evidence
from taxonomy.label_space import BUCKET, LabelSpace
from taxonomy.rules import ALL_DIMENSIONS, DIMENSION_PARTS, FILTER_LABELS, LABEL_DIMENSIONS, Rule, dimension_rules, part_keys

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from taxonomy.batch import Analysed

DEFAULT_THRESHOLD = 0.5
DEFAULT_PRECISION = 0.6
# How the best guess is chosen from the posterior (see decide); "balanced" is the default, chosen a priori.
DECISIONS = ("balanced", "map")
DEFAULT_DECISION = "balanced"
MAX_SPANS = 8


@dataclass
class Prediction:
    """A proposed label for one dimension; ``label`` is None when the labeler abstains."""

    dimension: str
    label: str | None
    probability: float
    candidate: str | None
    evidence: list[dict[str, str]] = field(default_factory=list)
    reason: str | None = None

    @property
    def needs_review(self) -> bool:
        return self.label is None

    def evidence_json(self) -> dict[str, Any]:
        """The evidence column of the predictions table: spans, the best guess, why it abstained."""
        return {"spans": self.evidence, "candidate": self.candidate, "reason": self.reason}


def abstain_all(reason: str, dimensions: tuple[str, ...] = ALL_DIMENSIONS) -> dict[str, Prediction]:
    """Every dimension abstains for the same reason (empty or non-English text, unreadable row)."""
    return {d: Prediction(d, None, 0.0, None, [], reason) for d in dimensions}


def decide(probs: Any, prior: Any, decision: str = DEFAULT_DECISION) -> np.ndarray:
    """Index of the best-guess category for each row of ``probs`` (rows: threads, columns: categories).

    ``"balanced"``: ``argmax P(c | x) / π(c)``. Expected balanced accuracy is
    ``Σ_x P(x) Σ_c [ŷ(x) = c] P(c | x) / (K π(c))``, so this ratio is its Bayes decision; a
    category wins when the evidence raised it most relative to its base rate, not because it is
    common. ``"map"``: ``argmax P(c | x)``, the decision for plain accuracy. Ties (within a
    relative 1e-9, e.g. a row with no evidence, where every ratio is 1) go to the category with
    the larger prior.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    prior = np.asarray(prior, dtype=float).reshape(-1)
    score = probs / np.maximum(prior, 1e-12) if decision == "balanced" else probs
    best = score.max(axis=1, keepdims=True)
    tied = score >= best - 1e-9 * np.maximum(np.abs(best), 1e-12)
    return np.where(tied, prior, -np.inf).argmax(axis=1)


def temper(probs: Any, temperature: float) -> np.ndarray:
    """Probabilities through a temperature: ``p^(1/T)``, renormalised per row (``T`` > 1 flattens them).

    Temperature scaling of the log-probabilities. It keeps each row's order of categories, and
    the balanced decision's too: ``argmax p/π`` is ``argmax (p/π)^(1/T)``, so a labeler that
    tempers what it reports chooses what it would have chosen.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    if temperature == 1.0:
        return probs
    logp = np.log(np.maximum(probs, 1e-300)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probs: Any, truth: Any, bounds: tuple[float, float] = (0.25, 25.0)) -> float:
    """The temperature (:func:`temper`) under which ``probs`` give ``truth`` (column indices) the
    least negative log-likelihood: temperature scaling, fitted on held-out rows."""
    from scipy.optimize import minimize_scalar

    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    truth = np.asarray(truth, dtype=int)
    rows = np.arange(len(truth))

    def nll(log_t: float) -> float:
        return float(-np.log(np.maximum(temper(probs, float(np.exp(log_t)))[rows, truth], 1e-12)).mean())

    best = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return round(float(np.exp(best.x)), 4)


def rule_matrix(analysed: list[Analysed], dimension: str) -> np.ndarray:
    """threads x rules of ``dimension``: 1 where the rule's evidence is in the dimension's part of the thread."""
    rules = dimension_rules(dimension)
    part = DIMENSION_PARTS[dimension]
    matrix = np.zeros((len(analysed), len(rules)), dtype=np.float64)
    for i, a in enumerate(analysed):
        keys = part_keys(a.evidence, part)
        for j, rule in enumerate(rules):
            if rule.when & keys:
                matrix[i, j] = 1.0
    return matrix


class RuleLabeler(ClassifierMixin, BaseEstimator):
    """Naive-Bayes combination of one dimension's rules (scikit-learn estimator: fit / predict_proba / get_params)."""

    def __init__(self, dimension: str = "stage", precision: float = DEFAULT_PRECISION, strength: float = 5.0,
                 classes: tuple[str, ...] | None = None, decision: str = DEFAULT_DECISION) -> None:
        self.dimension = dimension
        self.precision = precision
        self.strength = strength
        self.classes = classes
        self.decision = decision

    def fit(self, X: Any, y: Any) -> RuleLabeler:
        """Learn the prior from ``y`` and refine each rule's category table on the rows where it fires.

        ``X``: one column per rule of the dimension (:func:`rule_matrix`), or none (the prior alone)."""
        X = self._rule_columns(X, (0, len(dimension_rules(self.dimension))))
        y = np.asarray([str(v) for v in y])
        self.classes_ = np.array(sorted(self.classes or set(y)))
        k = len(self.classes_)
        index = {c: i for i, c in enumerate(self.classes_)}
        counts = np.full(k, 0.5)
        for v in y:
            if v in index:
                counts[index[v]] += 1
        self.prior_ = counts / counts.sum()
        space = LabelSpace({self.dimension: list(self.classes_)}, {self.dimension: BUCKET in index})
        rules = dimension_rules(self.dimension)
        self.votes_ = [space.map(self.dimension, r.votes[self.dimension]) for r in rules]
        table = np.tile(self.prior_, (len(rules), 1))
        for j, vote in enumerate(self.votes_):
            if vote is None:
                continue  # the rule's category is outside the label space: it says nothing here
            v = index[vote]
            table[j] = (1 - self.precision) * self.prior_
            table[j, v] += self.precision
        if X.shape[1] == len(rules) and X.any():
            onehot = np.zeros((len(y), k))
            for i, v in enumerate(y):
                if v in index:
                    onehot[i, index[v]] = 1
            fired = X.T @ onehot  # rules x classes: label counts where the rule fires
            table = (fired + self.strength * table) / (fired.sum(axis=1, keepdims=True) + self.strength)
        self.table_ = table
        return self

    def _rule_columns(self, X: Any, allowed: tuple[int, ...]) -> np.ndarray:
        """``X`` as a float matrix, or a ValueError when its columns are not the dimension's rules (a wrong
        matrix used to be ignored by ``fit`` and to fail in ``predict_proba`` on a matmul, or give NaN scores)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] not in allowed:
            raise ValueError(f"X has shape {X.shape}: RuleLabeler({self.dimension!r}) reads one column per rule of "
                             f"the dimension ({allowed[-1]}, taxonomy.labelers.rule_matrix)")
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "table_")
        X = self._rule_columns(X, (len(self.table_),))
        log_ratio = np.log(np.maximum(self.table_, 1e-12)) - np.log(self.prior_)
        scores = np.log(self.prior_) + X @ log_ratio
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The best guess per row by the ``decision`` rule (:func:`decide`), not always the posterior's argmax."""
        probs = self.predict_proba(X)  # first: an unfitted labeler is a NotFittedError, not an AttributeError
        return self.classes_[decide(probs, self.prior_, self.decision)]


@cache
def study_labels() -> pd.DataFrame | None:
    """The study's 348 published labels (labels only), or None when the file is not available."""
    from reeng.errors import ReengError
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    try:
        return import_defects(locate("jiang2024-defects"))
    except (ReengError, OSError):
        return None


@cache
def study_non_reengineering() -> int:
    """How many issues the study filtered out as non-reengineering (0 when the file is not available)."""
    from reeng.datasets import locate
    from reeng.errors import ReengError
    from taxonomy.gold import import_non_reengineering

    try:
        return len(import_non_reengineering(locate("jiang2024-non-reengineering")))
    except (ReengError, OSError):
        return 0


class BuiltinLabeler(BaseEstimator):
    """All eight dimensions: a :class:`RuleLabeler` each, the study's label space and prior, joint decoding.

    Parameters (``get_params``): ``threshold`` (abstain when the chosen category's posterior is
    below it), ``labels`` (published labels to learn prior, label space and joint tables from;
    None: the study's), ``joint`` (decode the dimensions jointly), ``precision`` (a rule's prior
    precision), ``min_count`` (rarer categories go into the bucket) and ``decision`` (how the
    best guess is chosen from the posterior, :func:`decide`) and ``text_models`` (the first
    stage of the six label dimensions: ``"annotations"``, text models trained on the project's
    own annotations of non-study threads, :mod:`taxonomy.annotations`, with the evidence rules as
    features; None, the evidence rules alone; or such models of one's own, by part of the
    thread) and ``embedding_model`` (a local sentence-transformers folder: the default text
    models then also read each part's sentence embedding; optional, measured in
    ``docs/classifier.md``) and ``calibrate`` (report the posterior through the temperatures
    fitted with the text models, :func:`temper`; the best guess is the same either way) and
    ``issue_type_model`` (a model trained on issues labeled bug / feature / question, which decides
    defect or not where the rules leave a defect, in the defect filter's place; None: the defect
    filter). It needs no ``fit``: prior, label space and joint tables come from
    the published labels (labels, never text), the text models from annotations that hold no
    study thread.

    A text model is trained with balanced class weights, so its probabilities are those of a
    uniform prior; the labeler multiplies them by its prior (the study's) and renormalises, the
    standard correction for a change of base rates, before joint decoding. The balanced
    decision then picks the category the text raised most over the prior.
    """

    name = "builtin"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, labels: pd.DataFrame | None = None, *,
                 joint: bool = True, precision: float = DEFAULT_PRECISION, min_count: int = 1,
                 decision: str = DEFAULT_DECISION, filter: bool = True,
                 text_models: str | dict[str, Any] | None = "annotations", embedding_model: Path | str | None = None,
                 calibrate: bool = True, issue_type_model: Any | None = None) -> None:
        from taxonomy.joint import JointDecoder

        self.threshold = threshold
        self.labels = labels
        self.joint = joint
        self.precision = precision
        self.min_count = min_count
        self.decision = decision
        self.filter = filter  # the defect rules and the trained reengineering filter decide the two filter dimensions
        self.issue_type_model = issue_type_model  # a user's issue-type model in the defect filter's place (taxonomy.defect_filter)
        decide(np.ones((1, 1)), np.ones(1), decision)  # an unknown decision is refused here, not at the first thread
        labels = labels if labels is not None else study_labels()
        self.prior_source = "study labels" if labels is not None else "no labels (uniform prior, taxonomy categories)"
        if labels is not None:
            self.space = LabelSpace.from_labels(labels, LABEL_DIMENSIONS, min_count=min_count)
        else:
            from taxonomy.model import load_taxonomy

            dims = {d: load_taxonomy().dimension(d).categories for d in LABEL_DIMENSIONS}
            self.space = LabelSpace({d: [c.id for c in cats if c.is_label or c.id == BUCKET] for d, cats in dims.items()},
                                    {d: any(c.id == BUCKET for c in cats) for d, cats in dims.items()})
        self.space.categories.update({d: list(v) for d, v in FILTER_LABELS.items()})
        self.labelers: dict[str, RuleLabeler] = {}
        for dim in ALL_DIMENSIONS:
            classes = tuple(self.space.categories[dim])
            y = [self.space.map(dim, v) for v in labels[dim].dropna().astype(str)] if labels is not None and dim in labels else []
            y = [v for v in y if v is not None] or list(classes)
            if dim == "reengineering" and labels is not None and study_non_reengineering():
                # The study's own filter: its defect issues were reengineering defects, its negatives were not.
                y = ["yes"] * labels["issue_url"].nunique() + ["no"] * study_non_reengineering()
            self.labelers[dim] = RuleLabeler(dim, precision=precision, classes=classes, decision=decision).fit(
                np.zeros((len(y), 0)), y)
        self.decoder = JointDecoder().fit(labels, self.space.categories) if joint and labels is not None else None
        self.text_models = text_models
        self.calibrate = calibrate  # report probabilities through the text models' fitted temperatures
        if isinstance(text_models, str) and text_models != "annotations":
            raise ValueError(f"text_models must be 'annotations', None or text models by part, not {text_models!r}")
        self.embedding_model = embedding_model
        if embedding_model is not None:
            if text_models != "annotations":
                raise ValueError("embedding_model is for the default text models; models of one's own carry their encoder")
            from taxonomy.embeddings import check_model

            check_model(embedding_model)  # one clear error now, not after the long pass
        # The posterior of a thread on which no rule fires: the base rate each decision is measured against.
        self.prior_ = self._decode({dim: lab.prior_[None, :] for dim, lab in self.labelers.items()})

    def _decode(self, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.decoder.decode(probs) if self.decoder is not None else probs

    def predict_proba(self, analysed: list[Analysed]) -> dict[str, np.ndarray]:
        """The calibrated posterior per dimension (rows: threads, columns: :meth:`classes`): the decoded
        posterior through each dimension's temperature (:meth:`temperatures`)."""
        return self._tempered(self._posterior(analysed))

    def temperatures(self) -> dict[str, float]:
        """dimension -> the temperature its reported probabilities go through (1: as decoded).

        The default text models carry temperatures fitted by cross-validation by repository on
        the annotations (:func:`taxonomy.annotations.fit_temperatures`); rules alone, models
        without them, or ``calibrate=False`` give 1 everywhere.
        """
        models = self.text_models_() if self.calibrate else None
        fitted = (next(iter(models.values())).meta.get("temperatures") or {}) if models else {}
        return {dim: float(fitted.get(dim, 1.0)) for dim in self.labelers}

    def _tempered(self, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        temps = self.temperatures()
        return {dim: temper(p, temps[dim]) for dim, p in probs.items()}

    def _posterior(self, analysed: list[Analysed]) -> dict[str, np.ndarray]:
        """The decoded posterior per dimension, before the temperatures: what the decision reads."""
        probs: dict[str, np.ndarray] = {}
        models = self.text_models_() if analysed else None
        if models:
            from taxonomy.annotations import text_probabilities

            probs = {dim: self._with_prior(dim, classes, p)
                     for dim, (classes, p) in text_probabilities(models, analysed).items() if dim in self.labelers}
        probs.update({dim: lab.predict_proba(rule_matrix(analysed, dim)) for dim, lab in self.labelers.items()
                      if dim not in probs})  # the rules decide what no text model does
        return self._decode({dim: probs[dim] for dim in self.labelers})

    @property
    def source(self) -> str:
        """What the labeler learned from: the prior's labels, and the first stage (text models or rules alone)."""
        models = self.text_models_()
        if not models:
            return f"{self.prior_source}; evidence rules alone"
        meta = next(iter(models.values())).meta
        encoder, semantic = meta.get("embedding_model"), meta.get("semantic_space")
        with_semantic = f"; semantic space {semantic['name']} {semantic['version']}" if semantic else ""
        with_encoder = f"; with sentence embeddings: {encoder['name']} {encoder['version']}" if encoder else ""
        return (f"{self.prior_source}; text models trained on {meta.get('params', {}).get('source') or 'given labels'} "
                f"({meta.get('n_threads')} threads{with_semantic}{with_encoder})")

    def text_models_(self) -> dict[str, Any] | None:
        """The first-stage text models by part, or None (rules alone); the default ones are loaded or trained at first use."""
        if self.text_models == "annotations":
            from taxonomy.annotations import default_text_models

            return default_text_models(self.space, self.embedding_model)
        return self.text_models  # type: ignore[return-value]

    def ready(self, progress: bool = False) -> BuiltinLabeler:
        """Load everything labeling reads (the text models and, with ``filter``, the two filters), or learn
        it at first use in a cache folder; returns self. Worker processes forked after this share it.

        With ``progress`` a bar on stderr names each part while it loads: learning them all at first
        use takes about two minutes on two cores, which used to pass without a sign.
        What it could not load is said once, as a :class:`reeng.errors.ReengWarning`: labels made
        without the study's labels or without the local archive agree far less with the study's raters.
        """
        import warnings

        from reeng.errors import ReengWarning
        from reeng.progress import progress_bar
        from taxonomy.defect_filter import default_defect_filter, default_reengineering_filter, local_archive
        from taxonomy.semantic import default_space

        first_use = "learned at first use, then cached"
        # the space only where the text models will read it: without the archive nothing is memoised for it
        steps = [("semantic space", default_space)] if self.text_models == "annotations" and local_archive() else []
        steps.append(("text models", self.text_models_))
        if self.filter:
            steps.append(("reengineering filter", default_reengineering_filter))
            if self.issue_type_model is None:
                steps.append(("defect filter", default_defect_filter))
        loaded = {}
        with progress_bar(progress) as bar:
            task = bar.add_task("built-in labeler", total=len(steps))
            for name, load in steps:
                bar.update(task, description=f"built-in labeler: {name} ({first_use})")
                loaded[name] = load()
                bar.advance(task)
        rules_alone = not loaded["text models"]
        missing = []
        if self.prior_source.startswith("no labels"):
            missing.append("the study's labels (its defect CSV is neither under REENG_DATA_DIR nor downloadable): "
                           "uniform priors over the taxonomy's categories, no joint decoding")
        if rules_alone and self.text_models == "annotations":
            missing.append("the local Denchmark archive (REENG_DATA_DIR) to train its text models"
                           + (" and its two filters" if self.filter else ""))
        if missing:
            warnings.warn(f"the built-in labeler runs without {'; and without '.join(missing)}. Its labels "
                          + ("come from the evidence rules alone and agree far less" if rules_alone else "agree less")
                          + " with the study's raters (docs/classifier.md)", ReengWarning, stacklevel=2)
        return self

    def _with_prior(self, dim: str, classes: list[str], p: np.ndarray) -> np.ndarray:
        """A text model's uniform-prior probabilities in this labeler's classes, times its prior, renormalised.

        A model class outside the label space goes where the space maps it (the bucket); a
        category the model never saw is floored at 1e-3 / K before the prior, never zero.
        """
        mine = self.classes(dim)
        out = np.zeros((p.shape[0], len(mine)))
        for j, c in enumerate(classes):
            target = self.space.map(dim, c)
            if target in mine:
                out[:, mine.index(target)] += p[:, j]
        out = np.maximum(out, 1e-3 / len(mine)) * self.labelers[dim].prior_
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, analysed: list[Analysed]) -> dict[str, list[str]]:
        """The best guess per dimension by the ``decision`` rule (never abstains; see :meth:`label_many`)."""
        probs = self._posterior(analysed)
        return {dim: [self.classes(dim)[i] for i in decide(p, self.prior_[dim], self.decision)] for dim, p in probs.items()}

    def classes(self, dim: str) -> list[str]:
        return [str(c) for c in self.labelers[dim].classes_]

    def label_many(self, analysed: list[Analysed]) -> list[dict[str, Prediction]]:
        """Predictions for many analysed threads; unreadable or non-English ones abstain with the reason."""
        ok = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english]
        out: list[dict[str, Prediction]] = [abstain_all(reason_of(a)) for a in analysed]
        if not ok:
            return out
        probs = self._posterior([analysed[i] for i in ok])
        reported = self._tempered(probs)  # the decision reads the posterior; the probability is the calibrated one
        text_read = {dim for model in (self.text_models_() or {}).values() for dim in model.targets}
        for row, i in enumerate(ok):
            preds = {}
            for dim in ALL_DIMENSIONS:
                p = probs[dim][row]
                best = int(decide(p, self.prior_[dim], self.decision)[0])
                cand, prob = self.classes(dim)[best], float(reported[dim][row][best])
                spans = supporting_evidence(analysed[i].evidence, dim, cand, self.labelers[dim])
                # A flat posterior (no evidence, uniform prior) is no answer, whatever the threshold.
                confident = prob >= self.threshold and float(np.ptp(p)) > 1e-9 and not math.isnan(prob)
                # A text model read the thread for this dimension: its guess is evidence without a rule's span.
                read = bool(spans) or dim in text_read
                reason = None if confident else ("below threshold" if read else "no evidence")
                preds[dim] = Prediction(dim, cand if confident else None, round(prob, 4), cand, spans, reason)
            out[i] = preds
        if self.filter:
            from taxonomy.defect_filter import filter_predictions

            decided = filter_predictions([analysed[i] for i in ok], [out[i]["reengineering"] for i in ok], self.issue_type_model)
            for i, preds in zip(ok, decided):
                out[i].update(preds)
        return out


def reason_of(a: Analysed) -> str:
    """Why a thread cannot be labeled: its error, or the text's flag (empty, non_english, no_prose)."""
    if a.error:
        return a.error
    return a.prepared.flags[0] if a.prepared is not None and a.prepared.flags else "unreadable"


def supporting_evidence(evidence: list[Evidence], dim: str, category: str,
                        labeler: RuleLabeler | None = None) -> list[dict[str, str]]:
    """The spans behind a label: evidence, in the dimension's part, of the rules that point at ``category``."""
    rules: list[Rule] = dimension_rules(dim)
    votes = labeler.votes_ if labeler is not None else [r.votes[dim] for r in rules]
    wanted: set[str] = set()
    for rule, vote in zip(rules, votes):
        if vote == category:
            wanted |= rule.when
    part = DIMENSION_PARTS[dim]
    seen, out = set(), []
    for e in evidence:
        if e.key in wanted and (part == "whole" or e.section.startswith(part)) and (e.kind, e.label, e.text) not in seen:
            seen.add((e.kind, e.label, e.text))
            out.append(e.to_dict())
    return out[:MAX_SPANS]
