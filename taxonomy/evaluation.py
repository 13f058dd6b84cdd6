"""Scoring predictions against human labels, and k-fold cross-validation that never scores a seen row.

Macro-F1 is the headline because the categories are very unbalanced (most defects crash);
accuracy alone would reward always guessing the majority. Cohen's kappa is reported so machine
labels can be set beside the study's inter-rater agreement on the same scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reeng.errors import ReengError
from taxonomy.text import PreparedText


def scores(y_true: list[str], y_pred: list[str | None]) -> dict[str, Any]:
    """Macro-F1, accuracy, kappa, per-class precision/recall/F1 and the confusion matrix.

    An abstention (None) counts as a wrong answer here; ``coverage`` says how many were answered.
    """
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support

    if not y_true:
        return {"n": 0, "macro_f1": None, "accuracy": None, "kappa": None, "coverage": None}
    pred = [p if p is not None else "(abstain)" for p in y_pred]
    labels = sorted(set(y_true))
    shown = labels + sorted(set(pred) - set(labels))
    p, r, f, support = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    kappa = float(cohen_kappa_score(y_true, pred)) if len(set(y_true) | set(pred)) > 1 else None
    return {
        "n": len(y_true),
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "kappa": None if kappa is None or np.isnan(kappa) else kappa,
        "coverage": sum(1 for x in y_pred if x is not None) / len(y_pred),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
                      for i, lab in enumerate(labels)},
        "confusion": {"labels": shown, "matrix": confusion_matrix(y_true, pred, labels=shown).tolist()},
    }


def cross_validate(prepared: list[PreparedText], evidence: list[dict[str, float]] | None, labels: list[str | None],
                   target: str, *, folds: int = 5, fast: bool = False, groups: list[str] | None = None,
                   seed: int = 0) -> tuple[list[int], list[str]]:
    """Out-of-fold predictions for every labeled row: (row indices, predicted labels).

    Folds are stratified by label, or grouped (all rows of one thread in the same fold) when
    ``groups`` is given, so no row is predicted by a model that was trained on it.
    """
    import warnings

    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

    from taxonomy.models import check_labels, predict_proba, train

    rows = check_labels(target, labels)
    y = np.array([str(labels[i]) for i in rows])
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if folds < 2:
        raise ReengError("cross-validation needs at least 2 folds")
    if len(rows) < folds:
        raise ReengError(f"{len(rows)} labeled rows cannot be split into {folds} folds")
    k = min(folds, max(2, smallest)) if groups is None else folds
    predicted: dict[int, str] = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        if groups is None:
            folds_list = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(rows, y))
        else:
            row_groups = [groups[i] for i in rows]
            if len(set(row_groups)) < k:
                raise ReengError(f"{len(set(row_groups))} distinct threads cannot be split into {k} folds")
            try:
                folds_list = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(rows, y, row_groups))
            except ValueError:  # every class rarer than the folds: stratifying is impossible, grouping is not
                folds_list = list(GroupKFold(n_splits=k).split(rows, y, row_groups))
    for train_idx, test_idx in folds_list:
        train_rows = [rows[i] for i in train_idx]
        if len(set(y[train_idx])) < 2:
            # A fold whose training part holds one class can only predict that class.
            for i in test_idx:
                predicted[rows[i]] = str(y[train_idx][0])
            continue
        model = train([prepared[i] for i in train_rows], None if evidence is None else [evidence[i] for i in train_rows],
                      {target: [labels[i] for i in train_rows]}, fast=fast)
        test_rows = [rows[i] for i in test_idx]
        probs = predict_proba(model, [prepared[i] for i in test_rows],
                              None if evidence is None else [evidence[i] for i in test_rows])[target]
        classes = model.classes(target)
        for row, p in zip(test_rows, probs):
            predicted[row] = classes[int(np.argmax(p))]
    order = sorted(predicted)
    return order, [predicted[i] for i in order]
