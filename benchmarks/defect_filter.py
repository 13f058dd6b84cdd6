"""The defect / reengineering filter measured on what exists offline (needs REENG_DATA_DIR).

Usage:
  REENG_DATA_DIR=... python benchmarks/defect_filter.py [--per-repo 25] [--per-cv-repo 150] [--folds 5]
  REENG_DATA_DIR=... python benchmarks/defect_filter.py --issue-types TABLE [--test TEST] [--group-col repo]
                     [--label-col label] [--text-cols title,body]

Prints, in one run:

1. the training data: Denchmark opening posts labeled by repository (CV model repository = yes,
   other DL project = no, unclear repositories left out), every study issue excluded;
2. (a) leave-repositories-out cross-validation (``StratifiedGroupKFold`` by repository): keep-rates of
   yes and no threads with 95 % intervals that resample whole repositories, precision at the
   sample's prevalence and at the archive's, balanced accuracy, ROC AUC and the keep/drop
   trade-off; and leave-one-CV-repository-out keep-rates per CV repository. A keep-all filter
   is printed beside it;
3. (b) the held-out study issues present in Denchmark: the gold threads' keep-rate, with the
   filter trained as shipped (their repositories in training, their issues not) and with their
   three repositories left out entirely; how many of the study's non-reengineering issues have
   a thread (none: no study negative can be scored);
4. the defect rules (issue types): share of Denchmark bug reports and of gold threads they drop
   (every one is a known bug report, so each drop is a false drop), and what a filter on the
   GitHub labels the study recorded would drop among its own defects;
5. (d) the defect filter on the project's annotations (891 defects, 96 non-defects of 17 CV model
   repositories): the rules alone and rules + filter, cross-validated by thread and by repository
   (defect keep-rate and non-defect drop-rate with 95 % intervals resampling repositories, ROC
   AUC), what keep targets would drop instead, the review queue's yield, which defects a 95 %
   keep target would drop (by manifestation and stage), the regularisation C compared by
   repository, and the gold threads the shipped filter keeps.

With ``--issue-types TABLE`` it prints only (e), the defect decision on a corpus of *all* issues: a table of issues
labeled by type (bug / feature / question, any names :func:`taxonomy.defect_filter.issue_type_name` knows), read
as ``reeng classify train --data`` reads a table (cleaned as a store's posts: HTML comments and quotes dropped).
The rules + the shipped defect filter: defects kept, each non-defect kind dropped (95 % CIs resample
``--group-col`` groups), ROC AUC of P(defect), the share of non-defects among the threads kept, per group. With ``--test TEST`` also a user's issue-type model in the defect
filter's place: trained (``reeng classify train --data``, full model) on TABLE, everything scored on TEST.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def rate(name: str, kept: np.ndarray, groups: np.ndarray | None = None) -> str:
    from taxonomy.defect_filter import keep_rate_ci

    mean, lo, hi = keep_rate_ci(kept, groups)
    return f"{name}: {mean:.3f} [{lo:.3f}, {hi:.3f}] (n {len(kept)})"


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-repo", type=int, default=25)
    parser.add_argument("--per-cv-repo", type=int, default=150)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--issue-types", help="a table of issues labeled by type: measure (e) only")
    parser.add_argument("--test", help="with --issue-types: train an issue-type model on that table, score on this one")
    parser.add_argument("--group-col", default="repo")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--text-cols", default="title,body")
    args = parser.parse_args()
    if args.issue_types:
        all_issues(args)
        return
    from sklearn.model_selection import StratifiedGroupKFold

    from reeng.datasets import locate
    from taxonomy.defect_filter import (CV_MODEL_REPOS, ThreadFilter, denchmark_filter_data, issue_type_of,
                                        study_issue_keys)
    from taxonomy.gold import import_defects, import_non_reengineering

    archive = locate("denchmark-bugreports")
    gold = import_defects(locate("jiang2024-defects"))
    negatives = import_non_reengineering(locate("jiang2024-non-reengineering"))
    gold_keys = {(f"{o}/{r}".lower(), int(n)) for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)}
    neg_keys = {(f"{o}/{r}".lower(), int(n)) for o, r, n in negatives[["owner", "repo", "number"]].itertuples(index=False)}
    study = study_issue_keys()

    t = time.perf_counter()
    data = denchmark_filter_data(archive, set(), per_repo=args.per_repo, per_cv_repo=args.per_cv_repo, include=study)
    build_s = time.perf_counter() - t
    keys, all_texts = data.keys, data.texts
    held = np.array([k in study for k in keys])
    texts = [x for x, h in zip(all_texts, held) if not h]
    y = np.array([v for v, h in zip(data.labels, held) if not h])
    groups = np.array([g for g, h in zip(data.groups, held) if not h])
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")
    print(f"training data: {len(y)} opening posts from {len(set(groups))} repositories in {build_s:.1f} s "
          f"(read + prepare); yes {int((y == 'yes').sum())} from {len(set(groups[y == 'yes']))} CV model repositories, "
          f"no {int((y == 'no').sum())} from {len(set(groups[y == 'no']))} other DL projects")
    print(f"study issues with a Denchmark thread (excluded from training): gold {len(gold_keys & set(keys))} of "
          f"{len(gold_keys)} issues, non-reengineering {len(neg_keys & set(keys))} of {len(neg_keys)}")
    t = time.perf_counter()
    shipped = ThreadFilter().fit(texts, y, groups)
    print(f"fit on all training rows (with the inner CV that picks the threshold): {time.perf_counter() - t:.1f} s; "
          f"keep threshold P(yes) >= {shipped.threshold_:.3f}")

    print(f"\n(a) leave-repositories-out CV, StratifiedGroupKFold({args.folds}) by repository; 95 % CIs resample repositories")
    proba, kept = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
    for train, test in StratifiedGroupKFold(args.folds).split(texts, y, groups):
        model = ThreadFilter().fit([texts[i] for i in train], y[train], groups[train])
        proba[test] = model.predict_proba([texts[i] for i in test])[:, 1]
        kept[test] = proba[test] >= model.threshold_
    pos, neg = y == "yes", y == "no"
    print("  " + rate("keep-rate of CV-model-repository threads (recall)", kept[pos], groups[pos]))
    print("  " + rate("keep-rate of other DL-project threads (false keeps)", kept[neg], groups[neg]))
    tp, fp = int((kept & pos).sum()), int((kept & neg).sum())
    recall, fpr = kept[pos].mean(), kept[neg].mean()
    print(f"  precision at the sample's prevalence ({pos.mean():.2f}): {tp / max(tp + fp, 1):.3f}; balanced accuracy "
          f"{(recall + 1 - fpr) / 2:.3f}")
    share = 1000 / 26146  # ~1,000 CV-model-repository threads in the whole archive
    print(f"  precision at the archive's prevalence (~{share:.2f}): "
          f"{recall * share / (recall * share + fpr * (1 - share)):.3f}")
    print("  keep-all filter (the old rules kept 92-93 % of both): keep-rates 1.000 / 1.000, balanced accuracy 0.500")
    from sklearn.metrics import roc_auc_score

    print(f"  ROC AUC of P(yes) across unseen repositories: {roc_auc_score(pos, proba):.3f}")
    print("  trade-off (threshold set on these out-of-fold scores): " + "; ".join(
        f"keep {q:.0%} of CV threads -> keep {(proba[neg] >= np.quantile(proba[pos], 1 - q)).mean():.1%} of others"
        for q in (0.7, 0.8, 0.9, 0.95)))

    print("\n    leave-one-CV-repository-out (each CV repository scored by a filter trained on all other repositories):")
    for repo in sorted(CV_MODEL_REPOS & set(groups)):
        train = groups != repo
        model = ThreadFilter().fit([texts[i] for i in np.flatnonzero(train)], y[train], groups[train])
        k = model.predict([texts[i] for i in np.flatnonzero(~train)]) == "yes"
        print(f"    {repo:45} {k.mean():.3f} of {k.size}")

    print("\n(b) held-out study issues in Denchmark (gold threads = reengineering defects)")
    gold_rows = [i for i, k in enumerate(keys) if k in gold_keys]
    gold_texts = [all_texts[i] for i in gold_rows]
    print("  " + rate("gold keep-rate, filter as shipped (gold issues excluded, their repositories in training)",
                      shipped.predict(gold_texts) == "yes"))
    gold_repos = {k[0] for k in gold_keys}
    strict = ~np.isin(groups, sorted(gold_repos))
    model = ThreadFilter().fit([texts[i] for i in np.flatnonzero(strict)], y[strict], groups[strict])
    print("  " + rate("gold keep-rate, the study's repositories left out of training", model.predict(gold_texts) == "yes"))
    print(f"  study negatives scorable: {len(neg_keys & set(keys))} (no precision on study negatives can be measured)")

    print("\n(c) defect rules (issue_type): every thread below is a known bug report, so a drop is a false drop")
    types = [issue_type_of(*p).label for p in data.opening]  # the rules read the reporter's part

    def dropped(rows: list[int]) -> np.ndarray:
        return np.array([types[i] != "defect" for i in rows])

    all_rows = [i for i in range(len(keys)) if not held[i]]
    print("  " + rate("Denchmark bug reports dropped as feature/question/documentation", dropped(all_rows),
                      np.array(data.groups)[all_rows]))
    labels = [types[i] for i in all_rows]
    print("  by type: " + ", ".join(f"{k} {labels.count(k)}" for k in ("feature", "question", "documentation")))
    print("  " + rate("gold threads dropped", dropped(gold_rows)))
    issue_labels = gold.drop_duplicates("issue_url")["issue_labels"].fillna("").str.lower()
    not_bug = issue_labels.str.contains(r"question|enhancement|feature|documentation|docs") & ~issue_labels.str.contains("bug")
    print(f"  a GitHub-label filter (question/enhancement/feature/docs, no bug label) would drop {int(not_bug.sum())} of "
          f"{len(issue_labels)} gold issues ({not_bug.mean():.1%}): labels are not an oracle of defects")

    defect_filter_on_annotations(archive, [data.opening[i] for i in gold_rows], args.folds)


def defect_filter_on_annotations(archive, gold_openings: list[tuple[str, str, str]], folds: int) -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    from taxonomy.annotations import defect_labels, read_annotations, shipped_threads
    from taxonomy.defect_filter import DEFECT_FILTER_PARAMS, ThreadFilter, defect_filter_data, filter_text, issue_type_of

    rows = read_annotations()
    labels = defect_labels(rows)
    data = defect_filter_data(shipped_threads(archive), labels)
    texts, y, groups = data.texts, np.array(data.labels), np.array(data.groups)
    pos, neg = y == "yes", y == "no"
    rules = np.array([issue_type_of(*p).label != "defect" for p in data.opening])
    thread_rows = {(r["repo"].lower(), int(r["number"])): r for r in rows if r["primary"] == "yes"}
    print(f"\n(d) the defect filter on the annotations: {pos.sum()} defects, {neg.sum()} non-defects, {len(set(groups))} "
          f"repositories; 95 % CIs resample repositories")
    print("  rules alone: " + rate("non-defects dropped", rules[neg], groups[neg]) + "; "
          + rate("defects dropped", rules[pos], groups[pos]))

    def oof(split, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Out-of-fold P(defect), whether the fold's model keeps each thread, and each thread's fold."""
        proba, kept, fold_of = np.zeros(len(y)), np.zeros(len(y), dtype=bool), np.zeros(len(y), dtype=int)
        for k, (train, test) in enumerate(split):
            model = ThreadFilter(**params).fit([texts[i] for i in train], y[train], groups[train])
            proba[test] = model.predict_proba([texts[i] for i in test])[:, 1]
            kept[test] = proba[test] >= model.threshold_
            fold_of[test] = k
        return proba, kept, fold_of

    splits = {"by thread": lambda: StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, y),
              "by repository": lambda: StratifiedGroupKFold(folds).split(texts, y, groups)}
    for name, split in splits.items():
        proba, kept, fold_of = oof(split(), DEFECT_FILTER_PARAMS)
        dropped = rules | ~kept
        print(f"  CV {name}: ROC AUC of P(defect) {roc_auc_score(pos, proba):.3f}")
        print("    rules + filter as shipped (drop where a non-defect is likelier at the annotations' shares): "
              + rate("defects kept", ~dropped[pos], groups[pos]) + "; " + rate("non-defects dropped", dropped[neg], groups[neg]))
        print("    keep targets instead (threshold on these out-of-fold scores): " + "; ".join(
            f"keep {q:.0%} of defects -> drops {int((proba[neg] < t).sum())} non-defects and {int((proba[pos] < t).sum())} defects"
            for q in (0.95, 0.98, 0.99) for t in [np.quantile(proba[pos], 1 - q)]))
        order = np.argsort(proba)
        print("    review queue, the least likely defects first: " + ", ".join(
            f"top {k}: {int(neg[order[:k]].sum())} non-defects" for k in (10, 20, 40))
              + f" (a random queue: {neg.mean() * 10:.1f} per 10)")
        if name == "by repository":
            # The pooled queue above ranks scores of five fold models side by side, whose low tails differ: one fold's
            # threads can crowd its top. A user ranks one corpus by one model: each fold's unseen repositories are one.
            tops = [idx[np.argsort(proba[idx])[:max(1, len(idx) // 10)]] for k in sorted(set(fold_of))
                    for idx in [np.where(fold_of == k)[0]]]
            print("    review queue within each new corpus (a fold's unseen repositories, ranked by its own model), its top"
                  f" 10 %: {sum(int(neg[t].sum()) for t in tops)} non-defects of {sum(map(len, tops))} (random: "
                  f"{sum(neg[np.where(fold_of == k)[0]].mean() * len(t) for k, t in enumerate(tops)):.1f}); per fold "
                  + ", ".join(f"{int(neg[t].sum())}/{len(t)}" for t in tops))
            at95 = proba < np.quantile(proba[pos], 0.05)
            for dim in ("manifestation", "stage"):
                cats = sorted({thread_rows[k][dim] for k, p in zip(data.keys, pos) if p})
                print(f"    defects a 95 % keep target would drop, by {dim}: " + ", ".join(
                    f"{c} {int(sum(at95[i] for i in rows_c))}/{len(rows_c)}" for c in cats
                    for rows_c in [[i for i, k in enumerate(data.keys) if pos[i] and thread_rows[k][dim] == c]]))
    print(f"  C compared, CV by repository (ROC AUC; shipped C {DEFECT_FILTER_PARAMS['C']}): " + ", ".join(
        f"C {c}: {roc_auc_score(pos, oof(splits['by repository'](), {**DEFECT_FILTER_PARAMS, 'C': c})[0]):.3f}"
        for c in (0.5, 1.0, 2.0, 4.0, 8.0)))
    shipped = ThreadFilter(**DEFECT_FILTER_PARAMS).fit(texts, y, groups)
    gold_kept = np.array([issue_type_of(*o).label == "defect" for o in gold_openings]) & (
        shipped.predict([filter_text(*o) for o in gold_openings]) == "yes")
    print(f"  shipped (trained on all annotations; drops below P(defect) {shipped.threshold_:.3f} under balanced weights): "
          + rate("gold threads kept (all defects)", gold_kept))


def read_issues(path: str, args: argparse.Namespace):
    """A labeled table's rows, read as ``reeng classify train --data`` reads them (cleaned as a store's posts)."""
    from taxonomy.classify import read_labeled_table

    data = read_labeled_table(path, args.text_cols.split(","), args.label_col)
    if args.group_col not in data.frame:
        raise SystemExit(f"error: {path}: no column {args.group_col!r} (--group-col)")
    return data


def all_issues(args: argparse.Namespace) -> None:
    """(e) The defect decision on a corpus of all issues, by the rules and the shipped filter, or a user's model."""
    from sklearn.metrics import roc_auc_score

    from taxonomy.classify import train_table
    from taxonomy.defect_filter import filter_predictions, issue_type_name, model_issue_types

    train = read_issues(args.issue_types, args)
    test = read_issues(args.test, args) if args.test else train
    ok = [i for i, a in enumerate(test.analysed) if a.prepared is not None and a.prepared.english and test.labels[i]]
    analysed = [test.analysed[i] for i in ok]
    kinds = np.array([issue_type_name(test.labels[i]) for i in ok])
    groups = np.array([str(g) for g in test.frame[args.group_col].to_numpy()[ok]])
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")
    print(f"(e) defect or not on a corpus of all issues: {args.test or args.issue_types}, {len(ok)} of {len(test.analysed)} "
          f"rows with English text, {len(set(groups))} groups; " + ", ".join(f"{k} {int((kinds == k).sum())}"
                                                                          for k in sorted(set(kinds))))
    settings = [("rules + the shipped defect filter", None)]
    if args.test:
        t = time.perf_counter()
        rows = [i for i, a in enumerate(train.analysed) if a.prepared is not None and a.prepared.english]
        model, _ = train_table(train, args.label_col, fast=False, params={"source": args.issue_types})
        print(f"issue-type model trained on {args.issue_types} ({len(rows)} rows) in {time.perf_counter() - t:.0f} s; "
              f"evidence weights tried {model.meta.get('evidence_search')}")
        settings.append(("rules + the issue-type model", model))
    defect = kinds == "defect"
    for name, model in settings:
        preds = [p["issue_type"] for p in filter_predictions(analysed, issue_types=model)]
        kept = np.array([p.label == "defect" for p in preds])
        by_rule = np.array([bool(p.evidence) and p.evidence[0]["kind"] == "issue_type" for p in preds])
        if model is None:
            p_defect = np.array([0.0 if r else (p.probability if k else 1 - p.probability)
                                 for p, k, r in zip(preds, kept, by_rule)])
        else:
            p_defect = np.where(by_rule, 0.0, [t[2] for t in model_issue_types(model, analysed)])
        print(f"\n  {name}:")
        print("    " + rate("defects kept", kept[defect], groups[defect]))
        for kind in sorted(set(kinds) - {"defect"}):
            sel = kinds == kind
            print("    " + rate(f"{kind} dropped", ~kept[sel], groups[sel])
                  + f"; by the rules {by_rule[sel].mean():.3f}")
        print("    " + rate("all non-defects dropped", ~kept[~defect], groups[~defect]))
        print(f"    ROC AUC of P(defect) {roc_auc_score(defect, p_defect):.3f}; non-defects among the threads kept: "
              f"{int((kept & ~defect).sum())} of {int(kept.sum())} ({(kept & ~defect).sum() / max(kept.sum(), 1):.1%}; "
              f"{(~defect).mean():.1%} before the filter)")
        for g in sorted(set(groups)):
            sel = groups == g
            print(f"    {g:30} defects kept {int(kept[sel & defect].sum())}/{int((sel & defect).sum())}, non-defects dropped "
                  f"{int((~kept[sel & ~defect]).sum())}/{int((sel & ~defect).sum())}, AUC "
                  f"{roc_auc_score(defect[sel], p_defect[sel]) if len(set(defect[sel])) == 2 else float('nan'):.3f}")


if __name__ == "__main__":
    main()
