"""Test helpers of the analysis layer: a store with the classifier's predictions and a recorded sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.synthetic import synthetic_defects
from miner.store import open_store, save_thread
from taxonomy.labelers import Prediction
from taxonomy.predictions import write_predictions

DIMS = ("stage", "manifestation", "reporter", "root_cause", "code_error")


def make_store(path: Path, n: int = 240, seed: int = 7, abstain_all: bool = False) -> pd.DataFrame:
    """A store with n threads, builtin predictions from a synthetic 'truth' with 20% errors, and one sample."""
    truth = synthetic_defects(n, seed=seed).drop_duplicates("issue_url").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    conn = open_store(path)
    rows = []
    for r in truth.itertuples(index=False):
        repo = f"{r.owner}/{r.repo}"
        save_thread(conn, {"repo": repo, "number": int(r.number), "title": f"issue {r.number}", "body": "text",
                           "state": "closed", "author": "someone", "created_at": "2024-01-01T00:00:00Z",
                           "comments": []}, source="test")
        preds = {}
        for dim in DIMS:
            label = getattr(r, dim)
            if rng.random() < 0.2:
                label = truth[dim].iloc[int(rng.integers(len(truth)))]
            preds[dim] = Prediction(dim, None if abstain_all else label, float(rng.uniform(0.3, 1.0)), label)
        preds["issue_type"] = Prediction("issue_type", "feature" if r.number % 17 == 0 else "bug", 0.9, None)
        rows.append((repo, int(r.number), preds))
    write_predictions(conn, rows, "builtin", "1")
    keys = [(f"{r.owner}/{r.repo}", int(r.number)) for r in truth.itertuples(index=False)][: n // 3]
    with conn:
        conn.execute("INSERT INTO samples (protocol, parameters, seed, created_at, population, drawn) VALUES ('t', '{}', 1, 'now', ?, ?)",
                     (len(truth), len(keys)))
        conn.executemany("INSERT INTO sample_issues VALUES (1, ?, ?)", keys)
    conn.close()
    return truth


def gold_eval_document(development: int = 3, held_out: int = 0, label_source: str = "rules and text models") -> dict:
    """A gold-eval JSON document in the classifier's schema (docs/schemas.md) with made-up scores: stage at the
    threshold answers 60 % of rows at κ 0.91 [0.70, 1.00]; its best guess answers 95 % at κ 0.58 [0.35, 0.82]."""
    def scores(kappa: float, ci: list[float], coverage: float) -> dict:
        return {"n": development + held_out, "coverage": coverage, "kappa": kappa, "kappa_ci": ci,
                "kappa_abstain_wrong": 0.52, "kappa_abstain_wrong_ci": [0.31, 0.72], "macro_f1": 0.7, "macro_f1_ci": [0.5, 0.9]}

    threshold, best = scores(0.91, [0.70, 1.00], 0.6), scores(0.58, [0.35, 0.82], 0.95)
    split = {"builtin": threshold, "builtin_best_guess": best}
    return {
        "threads": development + held_out, "defects": development + held_out, "repositories": 2, "missing_threads": 7,
        "threshold": 0.5, "decision": "balanced", "label_source": label_source, "note": "few rows",
        "dimensions": {"stage": {**threshold, "system": "builtin"}},
        "systems": {"stage": {"builtin": threshold, "builtin_best_guess": best,
                              "gold_cv_by_repository": {**scores(0.11, [-0.17, 0.40], 1.0), "folds": 2}}},
        "splits": {"development": {"issues": development, "defects": development, "dimensions": {"stage": split}},
                   "held_out": {"issues": held_out, "defects": held_out, "dimensions": {"stage": split}}},
    }
