"""Joint decoding: a confident dimension informs the others, through tables learned from labels alone.

The study's labels have strong structure that needs no text: the root cause nearly decides the
stage, impact and reporter type decide much of the manifestation. :class:`JointDecoder` learns
the joint distribution of each group of dimensions (a "clique") from a label table, smoothed,
and combines it with per-dimension probabilities from a first-stage labeler:

    P(combination | thread) ∝ P_table(combination) · Π_d  p_d(c_d) / π_d(c_d)

where ``p_d`` is the first stage's probability for dimension ``d`` and ``π_d`` the prior it
already contains (so the prior is not counted twice). Each dimension's decoded probability is
the marginal of that posterior. Cliques are disjoint, so the decoding is exact and cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

# Groups learned from the study's published labels (structure measured on labels, see docs/classifier.md).
DEFAULT_CLIQUES: tuple[tuple[str, ...], ...] = (("root_cause", "stage", "code_error"), ("impact", "reporter", "manifestation"))


class JointDecoder(BaseEstimator):
    """Decode several dimensions together with smoothed joint tables learned from labels (scikit-learn style)."""

    def __init__(self, cliques: tuple[tuple[str, ...], ...] = DEFAULT_CLIQUES, alpha: float = 0.5,
                 strength: float = 1.0) -> None:
        self.cliques = cliques
        self.alpha = alpha
        self.strength = strength

    def fit(self, labels: pd.DataFrame, classes: dict[str, list[str]]) -> JointDecoder:
        """Learn each clique's joint table over ``classes`` from the rows of ``labels`` that have all its dimensions."""
        self.classes_ = {d: list(c) for d, c in classes.items()}
        self.tables_: list[tuple[tuple[str, ...], np.ndarray]] = []
        for clique in self.cliques:
            dims = tuple(d for d in clique if d in self.classes_ and d in labels)
            if len(dims) < 2:
                continue
            shape = tuple(len(self.classes_[d]) for d in dims)
            table = np.full(shape, self.alpha, dtype=float)
            rows = labels[list(dims)].dropna()
            for combo in rows.astype(str).itertuples(index=False):
                try:
                    table[tuple(self.classes_[d].index(v) for d, v in zip(dims, combo))] += 1
                except ValueError:  # a label outside the space: not counted
                    continue
            self.tables_.append((dims, table / table.sum()))
        return self

    def decode(self, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoded probabilities (rows: threads) for every dimension; dimensions in no clique pass through."""
        out = dict(probs)
        for dims, table in self.tables_:
            if not all(d in probs for d in dims):
                continue
            n = len(probs[dims[0]])
            joint = np.broadcast_to(table ** self.strength, (n, *table.shape)).copy()
            for axis, d in enumerate(dims):
                prior = table.sum(axis=tuple(i for i in range(len(dims)) if i != axis))
                ratio = np.asarray(probs[d], dtype=float) / np.maximum(prior, 1e-12)
                shape = [n] + [1] * len(dims)
                shape[axis + 1] = len(prior)
                joint *= ratio.reshape(shape)
            total = joint.reshape(n, -1).sum(axis=1)
            total[total == 0] = 1.0
            for axis, d in enumerate(dims):
                marginal = joint.sum(axis=tuple(i + 1 for i in range(len(dims)) if i != axis))
                out[d] = marginal / total[:, None]
        return out

    def conditional_kappa(self, labels: pd.DataFrame, given: list[str], target: str) -> float | None:
        """How well ``given`` predicts ``target`` through the learned table (Cohen's kappa, in-sample)."""
        from sklearn.metrics import cohen_kappa_score

        rows = labels[[*given, target]].dropna().astype(str)
        if rows.empty:
            return None
        best = rows.groupby(given)[target].agg(lambda s: s.value_counts().index[0])
        pred = [best[tuple(r) if len(given) > 1 else r[0]] for r in rows[given].itertuples(index=False)]
        return float(cohen_kappa_score(rows[target], pred))

    def structure(self, labels: pd.DataFrame) -> dict[str, Any]:
        """Per clique, the kappa of each dimension predicted from the others (what the decoding can gain)."""
        report = {}
        for dims, _ in self.tables_:
            for target in dims:
                given = [d for d in dims if d != target]
                report[f"{'+'.join(given)} -> {target}"] = self.conditional_kappa(labels, given, target)
        return report

