"""Weak supervision: the labeling rules as labeling functions, combined by a small label model.

Every rule that votes in a dimension is one labeling function; on a thread it either votes its
category or abstains. Rules differ in how often they are right, and nobody has measured that on
unlabeled threads, so the label model estimates it from the rules' agreement with each other
(the one-coin Dawid-Skene model, fitted by EM in numpy): each function is right with its own
accuracy, wrong uniformly otherwise. Threads no rule speaks to get no training label at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxonomy.rules import RULES, Rule

ABSTAIN = -1
ACCURACY_BOUNDS = (0.55, 0.95)


def dimension_rules(dimension: str) -> list[Rule]:
    """The labeling functions of one dimension: the rules that vote in it."""
    return [r for r in RULES if dimension in r.votes]


def vote_matrix(keys: list[set[str]], dimension: str, categories: list[str]) -> np.ndarray:
    """threads x labeling functions: the category index each function votes, or -1 (abstain)."""
    rules = dimension_rules(dimension)
    matrix = np.full((len(keys), len(rules)), ABSTAIN, dtype=np.int32)
    for j, rule in enumerate(rules):
        target = categories.index(rule.votes[dimension])
        for i, present in enumerate(keys):
            if rule.when & present:
                matrix[i, j] = target
    return matrix


@dataclass
class LabelModel:
    """One-coin Dawid-Skene: per-function accuracy and class priors, fitted by EM."""

    n_classes: int
    iterations: int = 30
    initial_accuracy: float = 0.7
    accuracy: np.ndarray | None = None
    prior: np.ndarray | None = None

    def _posterior(self, votes: np.ndarray) -> np.ndarray:
        assert self.accuracy is not None and self.prior is not None
        k = self.n_classes
        acc = np.clip(self.accuracy, 1e-3, 1 - 1e-3)
        log_right, log_wrong = np.log(acc), np.log((1 - acc) / max(k - 1, 1))
        scores = np.tile(np.log(self.prior), (votes.shape[0], 1))
        for j in range(votes.shape[1]):
            voted = votes[:, j] != ABSTAIN
            if not voted.any():
                continue
            scores[voted] += log_wrong[j]
            scores[voted, votes[voted, j]] += log_right[j] - log_wrong[j]
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def fit(self, votes: np.ndarray) -> LabelModel:
        """Estimate accuracies and priors from the threads where at least one function voted."""
        covered = votes[(votes != ABSTAIN).any(axis=1)]
        self.accuracy = np.full(votes.shape[1], self.initial_accuracy)
        self.prior = np.full(self.n_classes, 1.0 / self.n_classes)
        if len(covered) == 0:
            return self
        for _ in range(self.iterations):
            post = self._posterior(covered)
            for j in range(votes.shape[1]):
                voted = covered[:, j] != ABSTAIN
                if voted.any():
                    self.accuracy[j] = post[voted, covered[voted, j]].mean()
            # Rules are assumed better than chance and never perfect; without these bounds and a
            # prior held near uniform, EM drifts to the degenerate answer "every thread is the
            # most-voted class" and the minority rules' accuracies collapse.
            self.accuracy = np.clip(self.accuracy, ACCURACY_BOUNDS[0], ACCURACY_BOUNDS[1])
            self.prior = 0.5 / self.n_classes + 0.5 * post.mean(axis=0)
        return self

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """Class probabilities per thread; rows where nobody voted are NaN (no label)."""
        probs = self._posterior(votes)
        probs[~(votes != ABSTAIN).any(axis=1)] = np.nan
        return probs


def weak_labels(keys: list[set[str]], dimension: str, categories: list[str],
                min_confidence: float = 0.5) -> tuple[list[str | None], np.ndarray, LabelModel]:
    """Training labels for one dimension (None where no rule voted or the model is unsure)."""
    votes = vote_matrix(keys, dimension, categories)
    model = LabelModel(len(categories)).fit(votes)
    probs = model.predict_proba(votes)
    labels: list[str | None] = []
    confidence = np.zeros(len(keys))
    for i, row in enumerate(probs):
        if np.isnan(row).any() or row.max() < min_confidence:
            labels.append(None)
            continue
        labels.append(categories[int(row.argmax())])
        confidence[i] = row.max()
    return labels, confidence, model
