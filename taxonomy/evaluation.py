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


BOOTSTRAP = 1000
# Fewer resampled units (rows, or groups such as issues) give no interval: a bootstrap of a handful of values
# is no measure of uncertainty (the kappa of two answered rows, both right, read 1.00 [1.00, 1.00] in a datasheet).
# The analysis layer's cluster bootstrap keeps the same floor (analysis.stats.MIN_CLUSTERS).
MIN_BOOTSTRAP_UNITS = 10


def _encode(*columns: list[str]) -> tuple[list[np.ndarray], int]:
    names = {v: i for i, v in enumerate(sorted({x for col in columns for x in col}))}
    return [np.fromiter((names[x] for x in col), dtype=np.int64, count=len(col)) for col in columns], len(names)


def _confusion(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)


def _confusion_table(y_true: list[str], y_pred: list[str], labels: list[str]) -> list[list[int]]:
    """Counts of (truth, prediction) in ``labels``' order, rows the truth; one class gives a 1x1 table, no warning."""
    index = {lab: i for i, lab in enumerate(labels)}
    t = np.fromiter((index[x] for x in y_true), dtype=np.int64, count=len(y_true))
    p = np.fromiter((index[x] for x in y_pred), dtype=np.int64, count=len(y_pred))
    return _confusion(t, p, len(labels)).astype(int).tolist()


def _kappa_cm(cm: np.ndarray) -> float | None:
    n = cm.sum()
    if n == 0:
        return None
    po = np.trace(cm) / n
    pe = float(cm.sum(axis=1) @ cm.sum(axis=0)) / n**2
    return None if pe >= 1 else float((po - pe) / (1 - pe))


def _f1_cm(cm: np.ndarray) -> float:
    """Macro-F1 over the classes present in the truth (rows with support)."""
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = support > 0
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def _kappa(y_true: list[str], y_pred: list[str]) -> float | None:
    """Cohen's kappa (numpy; the bootstrap calls it thousands of times)."""
    (t, p), k = _encode(y_true, y_pred)
    return _kappa_cm(_confusion(t, p, k)) if k > 1 else None


def _macro_f1(y_true: list[str], y_pred: list[str]) -> float:
    (t, p), k = _encode(y_true, y_pred)
    return _f1_cm(_confusion(t, p, k))


def _resamples(rows: int, groups: list[str] | None, n: int, seed: int) -> Any:
    """``n`` bootstrap resamples of row indices: rows drawn with replacement, or whole groups (issues, repositories);
    none from fewer than :data:`MIN_BOOTSTRAP_UNITS` rows or groups."""
    rng = np.random.default_rng(seed)
    if groups is None:
        members = [np.array([i]) for i in range(rows)]
    else:
        by: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            by.setdefault(g, []).append(i)
        members = [np.array(v) for v in by.values()]
    if len(members) < MIN_BOOTSTRAP_UNITS:
        return
    for _ in range(n):
        yield np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])


def bootstrap_ci(y_true: list[str], y_pred: list[str], metric: Any, *, n: int = BOOTSTRAP, seed: int = 0,
                 groups: list[str] | None = None) -> list[float] | None:
    """95 % percentile bootstrap interval of a metric, resampling rows (or whole groups such as issues).

    ``metric`` is ``"kappa"``, ``"macro_f1"`` or a function of (y_true, y_pred) lists. None: fewer than
    :data:`MIN_BOOTSTRAP_UNITS` rows (groups), or the metric undefined in half the resamples.
    """
    (t, p), k = _encode(y_true, y_pred)
    fast = {"kappa": _kappa_cm, "macro_f1": _f1_cm}.get(metric) if isinstance(metric, str) else None
    values = []
    for idx in _resamples(len(t), groups, n, seed):
        if fast is not None:
            v = fast(_confusion(t[idx], p[idx], k))
        else:
            v = metric([y_true[i] for i in idx], [y_pred[i] for i in idx])
        if v is not None:
            values.append(v)
    if len(values) < n // 2:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def paired_difference(y_true: list[str], pred_a: list[str], pred_b: list[str], metric: str = "kappa", *,
                      n: int = BOOTSTRAP, seed: int = 0, groups: list[str] | None = None) -> dict[str, Any]:
    """``metric`` of ``pred_a`` minus that of ``pred_b`` on the same rows, with a paired 95 % bootstrap interval.

    Both labelers are scored on the same resampled rows (or groups) in every draw, so the
    interval is that of the difference, narrower than two separate intervals suggest when the
    two err on the same threads. ``metric``: ``"kappa"`` or ``"macro_f1"``.
    """
    one = {"kappa": _kappa_cm, "macro_f1": _f1_cm}[metric]
    (t, a, b), k = _encode(y_true, pred_a, pred_b)
    whole = [one(_confusion(t, a, k)), one(_confusion(t, b, k))]
    diff = None if None in whole else whole[0] - whole[1]
    values = []
    for idx in _resamples(len(t), groups, n, seed):
        va, vb = one(_confusion(t[idx], a[idx], k)), one(_confusion(t[idx], b[idx], k))
        if va is not None and vb is not None:
            values.append(va - vb)
    ci = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) >= n // 2 else None
    return {"difference": diff, "difference_ci": ci, "n": len(t)}


def format_score(value: float | None, ci: list[float] | None = None) -> str:
    """A score for a terminal line: ``0.42 [0.31, 0.55]``, or ``n/a`` when there is none."""
    if value is None:
        return "n/a"
    return f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def scores(y_true: list[str], y_pred: list[str | None], *, probability: list[float] | None = None,
           groups: list[str] | None = None, ci: bool = True) -> dict[str, Any]:
    """Agreement with human labels, coverage kept apart from accuracy.

    * ``kappa`` / ``macro_f1``: on the rows the labeler answered (abstentions left out);
    * ``kappa_abstain_wrong`` / ``macro_f1_abstain_wrong``: every abstention counted as a wrong answer;
    * ``coverage``: the share answered; ``*_ci``: 95 % bootstrap intervals (rows, or ``groups``
      such as issues, resampled); with ``probability`` also a risk-coverage curve and the
      expected calibration error of the answered rows.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if not y_true:
        return {"n": 0, "answered": 0, "macro_f1": None, "accuracy": None, "kappa": None, "coverage": None}
    answered = [i for i, p in enumerate(y_pred) if p is not None]
    t_ans = [y_true[i] for i in answered]
    p_ans = [str(y_pred[i]) for i in answered]
    g_ans = [groups[i] for i in answered] if groups else None
    wrong = [p if p is not None else "(abstain)" for p in y_pred]
    labels = sorted(set(y_true))
    shown = labels + sorted(set(wrong) - set(labels))
    p, r, f, support = precision_recall_fscore_support(y_true, wrong, labels=labels, zero_division=0)
    result: dict[str, Any] = {
        "n": len(y_true),
        "answered": len(answered),
        "coverage": len(answered) / len(y_true),
        "kappa": _kappa(t_ans, p_ans) if t_ans else None,
        "macro_f1": _macro_f1(t_ans, p_ans) if t_ans else None,
        "accuracy": float(accuracy_score(t_ans, p_ans)) if t_ans else None,
        "kappa_abstain_wrong": _kappa(y_true, wrong),
        "macro_f1_abstain_wrong": _macro_f1(y_true, wrong),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
                      for i, lab in enumerate(labels)},
        "confusion": {"labels": shown, "matrix": _confusion_table(y_true, wrong, shown)},
    }
    if ci and t_ans:
        result["kappa_ci"] = bootstrap_ci(t_ans, p_ans, "kappa", groups=g_ans)
        result["macro_f1_ci"] = bootstrap_ci(t_ans, p_ans, "macro_f1", groups=g_ans)
        result["kappa_abstain_wrong_ci"] = bootstrap_ci(y_true, wrong, "kappa", groups=groups)
    if probability is not None:
        conf = [probability[i] for i in answered]
        result["risk_coverage"] = risk_coverage(t_ans, p_ans, conf, total=len(y_true))
        result["calibration"] = calibration(t_ans, p_ans, conf)
    return result


def risk_coverage(y_true: list[str], y_pred: list[str], confidence: list[float], *, total: int | None = None,
                  steps: int = 10) -> list[dict[str, float]]:
    """Error rate (risk) of the most confident answers at growing coverage: the cost of answering more."""
    if not y_true:
        return []
    order = np.argsort(-np.asarray(confidence), kind="stable")
    correct = np.asarray([y_true[i] == y_pred[i] for i in order], dtype=float)
    total = total or len(y_true)
    curve = []
    for k in sorted({max(1, round(len(order) * s / steps)) for s in range(1, steps + 1)}):
        curve.append({"coverage": k / total, "risk": float(1 - correct[:k].mean()),
                      "min_probability": float(np.asarray(confidence)[order][k - 1])})
    return curve


def calibration(y_true: list[str], y_pred: list[str], confidence: list[float], bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability table (mean confidence vs accuracy per bin)."""
    if not y_true:
        return {"ece": None, "bins": []}
    conf = np.clip(np.asarray(confidence, dtype=float), 0, 1)
    correct = np.asarray([a == b for a, b in zip(y_true, y_pred)], dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
        ece += mask.mean() * abs(acc - mean_conf)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                      "confidence": mean_conf, "accuracy": acc})
    return {"ece": float(ece), "bins": table}


def reliability_plot(curves: dict[str, dict[str, Any]], path: Any) -> None:
    """One reliability diagram (accuracy vs confidence per bin) for several dimensions, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for name, cal in curves.items():
        bins = cal.get("bins") or []
        if bins:
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                    label=f"{name} (ECE {cal['ece']:.2f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("share correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def cross_validate(prepared: list[PreparedText], evidence: list[dict[str, float]] | None, labels: list[str | None],
                   target: str, *, folds: int = 5, fast: bool = False, groups: list[str] | None = None,
                   seed: int = 0, embedding_model: Any = None) -> tuple[list[int], list[str], list[float]]:
    """Out-of-fold predictions for every labeled row: (row indices, predicted labels, their probabilities).

    Folds are stratified by label, or grouped when ``groups`` is given (all rows of one issue,
    or one repository, in the same fold), so no row is predicted by a model that was trained on
    it; ``folds`` equal to the number of groups is leave-one-group-out. ``embedding_model`` (a local
    sentence-transformers folder) adds sentence embeddings to each fold's features.
    """
    import warnings

    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

    from taxonomy.supervised import check_labels, predict_proba, train

    rows = check_labels(target, labels)
    y = np.array([str(labels[i]) for i in rows])
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if folds < 2:
        raise ReengError("cross-validation needs at least 2 folds")
    if len(rows) < folds:
        raise ReengError(f"{len(rows)} labeled rows cannot be split into {folds} folds")
    k = min(folds, max(2, smallest)) if groups is None else folds
    predicted: dict[int, str] = {}
    confidence: dict[int, float] = {}
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
                confidence[rows[i]] = 1.0
            continue
        model = train([prepared[i] for i in train_rows], None if evidence is None else [evidence[i] for i in train_rows],
                      {target: [labels[i] for i in train_rows]}, fast=fast, embedding_model=embedding_model)
        test_rows = [rows[i] for i in test_idx]
        probs = predict_proba(model, [prepared[i] for i in test_rows],
                              None if evidence is None else [evidence[i] for i in test_rows])[target]
        classes = model.classes(target)
        for row, p in zip(test_rows, probs):
            predicted[row] = classes[int(np.argmax(p))]
            confidence[row] = float(np.max(p))
    order = sorted(predicted)
    return order, [predicted[i] for i in order], [confidence[i] for i in order]
