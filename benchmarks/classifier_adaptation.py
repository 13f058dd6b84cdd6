"""What a corpus's own labels add to the built-in labeler there (`classify predict --builtin --adapt`; needs REENG_DATA_DIR).

Usage:
  REENG_DATA_DIR=... python benchmarks/classifier_adaptation.py [--seeds 0,1] [--labeled 25,50,100]

The situation of a researcher with a new corpus: the built-in labeler's text models never saw its
repositories, and a sample of its threads has been labeled (`reeng annotate`). Simulated on the
project's annotations (``taxonomy/data/cv_annotations.csv``) with 5-fold cross-validation by
repository: in each fold, the text models are trained on the other folds' repositories (plus the
other projects' annotations, as shipped), then again with ``k`` randomly drawn threads of the
held-out repositories added (their "labeled sample"). Both label the same held-out threads, those
of the fold beyond the largest ``k`` drawn (folds with fewer threads score none), so every
difference is paired. Printed per dimension: κ of the best guess without the sample, and for each
``k`` its κ and the difference with a paired 95 % bootstrap interval, once per seed (the seed
draws which threads are labeled and which are scored). About 3 minutes per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds of the labeled draws")
    parser.add_argument("--labeled", default="25,50,100", help="comma-separated sizes of the labeled sample per fold")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(k) for k in args.labeled.split(",")]

    from sklearn.model_selection import GroupKFold

    from reeng.datasets import locate
    from taxonomy.annotations import other_training_rows, primary_labels, read_annotations, shipped_threads, train_text_models
    from taxonomy.evaluation import paired_difference, scores
    from taxonomy.labelers import BuiltinLabeler
    from taxonomy.rules import LABEL_DIMENSIONS
    from taxonomy.semantic import default_space

    started = time.perf_counter()
    labels = primary_labels(read_annotations())
    threads = shipped_threads(locate("denchmark-bugreports"))
    keys = sorted(k for k in labels if k in threads)
    _, more = other_training_rows(threads)
    space = BuiltinLabeler(filter=False, text_models=None).space
    semantic = default_space()
    analysed = [threads[k] for k in keys]
    truth = {d: [space.map(d, labels[k][d]) for k in keys] for d in LABEL_DIMENSIONS}
    print(f"{len(keys)} annotated CV threads of {len({k[0] for k in keys})} repositories; labeled samples of "
          f"{', '.join(map(str, sizes))} threads per fold; ready in {time.perf_counter() - started:.1f} s")
    for seed in seeds:
        rng = np.random.default_rng(seed)
        guesses: dict[int, dict[str, dict[int, str | None]]] = {k: {d: {} for d in LABEL_DIMENSIONS} for k in (0, *sizes)}
        fold_started = time.perf_counter()
        for train, test in GroupKFold(5).split(keys, groups=[k[0] for k in keys]):
            drawn = rng.permutation(test)
            scored = drawn[max(sizes):]
            for k in (0, *sizes):
                rows = [*train, *drawn[:k]]
                models = train_text_models([analysed[i] for i in rows] + more[0], [labels[keys[i]] for i in rows] + more[1],
                                           space, semantic_space=semantic)
                labeler = BuiltinLabeler(filter=False, text_models=models, calibrate=False)  # the best guess: no temperature needed
                for i, pred in zip(scored, labeler.label_many([analysed[i] for i in scored])):
                    for dim in LABEL_DIMENSIONS:
                        guesses[k][dim][i] = pred[dim].candidate
        print(f"\nseed {seed} ({time.perf_counter() - fold_started:.0f} s): best guess κ without the sample, then with "
              f"k labeled threads of the new repositories, minus without [paired 95 % CI]")
        for dim in LABEL_DIMENSIONS:
            have = [i for i in sorted(guesses[0][dim]) if truth[dim][i] is not None]
            t = [str(truth[dim][i]) for i in have]
            base = [str(guesses[0][dim][i]) for i in have]
            cells = [f"{dim:14s} n {len(t):3d}  k 0: {scores(t, base, ci=False)['kappa']:.3f}"]
            for k in sizes:
                other = [str(guesses[k][dim][i]) for i in have]
                diff = paired_difference(t, other, base)
                lo, hi = diff["difference_ci"]
                cells.append(f"k {k}: {scores(t, other, ci=False)['kappa']:.3f} ({diff['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}])")
            print("  ".join(cells))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
