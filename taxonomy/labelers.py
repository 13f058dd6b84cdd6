"""The built-in, knowledge-based labeler: evidence rules plus similarity to the category definitions.

It needs no training data, which is the point: a research group starting on new repositories
gets proposals on day one, each with the evidence that produced it and a probability, and the
thread goes to a human whenever the probability is below the threshold ("needs review").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taxonomy.evidence import Evidence, evidence_keys
from taxonomy.model import Taxonomy, load_taxonomy
from taxonomy.rules import ALL_DIMENSIONS, FILTER_LABELS, LABEL_DIMENSIONS, PRIOR_WEIGHT, PRIORS, Rule, firing_rules
from taxonomy.text import PreparedText

DEFAULT_THRESHOLD = 0.5
SIMILARITY_WEIGHT = 2.0  # a perfect definition match counts like a strong rule
TEMPERATURE = 2.0
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


def label_categories(taxonomy: Taxonomy | None = None) -> dict[str, list[str]]:
    """Categories a prediction may name, per dimension (leaf and data categories; no groups or buckets)."""
    taxonomy = taxonomy or load_taxonomy()
    cats = {d: [c.id for c in taxonomy.dimension(d).categories if c.is_label] for d in LABEL_DIMENSIONS}
    return {**{d: list(v) for d, v in FILTER_LABELS.items()}, **cats}


def abstain_all(reason: str, dimensions: tuple[str, ...] = ALL_DIMENSIONS) -> dict[str, Prediction]:
    """Every dimension abstains for the same reason (empty or non-English text, unreadable row)."""
    return {d: Prediction(d, None, 0.0, None, [], reason) for d in dimensions}


def softmax(scores: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    z = scores * temperature
    z = np.exp(z - z.max())
    return z / z.sum()


class KnowledgeLabeler:
    """Rule votes + cosine similarity of the thread's prose to each category's name and definition."""

    name = "builtin"

    def __init__(self, taxonomy: Taxonomy | None = None, threshold: float = DEFAULT_THRESHOLD) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.taxonomy = taxonomy or load_taxonomy()
        self.threshold = threshold
        self.categories = label_categories(self.taxonomy)
        self._definitions: dict[str, Any] = {}
        for dim in LABEL_DIMENSIONS:
            texts = [f"{c.name}. {c.definition}" for c in self.taxonomy.dimension(dim).categories if c.is_label]
            vec = TfidfVectorizer(stop_words="english", sublinear_tf=True)
            self._definitions[dim] = (vec, vec.fit_transform(texts))

    def similarity(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Cosine similarity of each text to each category definition, per dimension (texts x categories)."""
        sims = {}
        for dim in ALL_DIMENSIONS:
            if dim not in self._definitions:
                sims[dim] = np.zeros((len(texts), len(self.categories[dim])))
                continue
            vec, matrix = self._definitions[dim]
            sims[dim] = np.asarray((vec.transform(texts) @ matrix.T).todense())
        return sims

    def label_many(self, items: list[tuple[PreparedText | None, list[Evidence], str | None]]) -> list[dict[str, Prediction]]:
        """Predictions for many threads: (prepared text or None, evidence, error) each."""
        texts = [f"{p.title}\n{p.prose}" if p is not None else "" for p, _, _ in items]
        sims = self.similarity(texts)
        out = []
        for i, (prepared, evidence, error) in enumerate(items):
            if prepared is None:
                out.append(abstain_all(error or "unreadable"))
            else:
                out.append(self.label(prepared, evidence, {d: m[i] for d, m in sims.items()}))
        return out

    def label(self, prepared: PreparedText, evidence: list[Evidence],
              similarity: dict[str, np.ndarray] | None = None) -> dict[str, Prediction]:
        """Predictions for every dimension of one thread."""
        if not prepared.english:
            return abstain_all(prepared.flags[0] if prepared.flags else "not_english")
        if similarity is None:
            similarity = {d: m[0] for d, m in self.similarity([f"{prepared.title}\n{prepared.prose}"]).items()}
        keys = evidence_keys(evidence)
        rules = firing_rules(keys)
        out = {}
        for dim in ALL_DIMENSIONS:
            cats = self.categories[dim]
            scores = SIMILARITY_WEIGHT * similarity[dim]
            scores[cats.index(PRIORS[dim])] += PRIOR_WEIGHT
            for rule in rules:
                if dim in rule.votes:
                    scores[cats.index(rule.votes[dim])] += rule.weight
            probs = softmax(scores)
            best = int(probs.argmax())
            cand, prob = cats[best], float(probs[best])
            spans = supporting_evidence(evidence, rules, dim, cand)
            confident = prob >= self.threshold and not math.isnan(prob)
            reason = None if confident else ("no evidence" if not spans else "below threshold")
            out[dim] = Prediction(dim, cand if confident else None, round(prob, 4), cand, spans, reason)
        return out


def supporting_evidence(evidence: list[Evidence], rules: list[Rule], dim: str, category: str) -> list[dict[str, str]]:
    """The spans behind a label: evidence of the firing rules that vote ``category`` in ``dim`` (deduplicated)."""
    wanted: set[str] = set()
    for rule in rules:
        if rule.votes.get(dim) == category:
            wanted |= rule.when
    seen, out = set(), []
    for e in evidence:
        if (e.key in wanted or f"{e.kind}:*" in wanted) and (e.kind, e.label, e.text) not in seen:
            seen.add((e.kind, e.label, e.text))
            out.append(e.to_dict())
    return out[:MAX_SPANS]
