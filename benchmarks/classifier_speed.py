"""Classifier speed on the Denchmark threads: evidence pass, weak-label training, fast-model throughput.

Usage: REENG_DATA_DIR=... python benchmarks/classifier_speed.py [STORE] [--limit N]
STORE is a store holding the Denchmark threads; without it one is built in a temporary folder
from the archive (about 30 s). Prints its figures; asserts nothing (speed goals are not tests).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path


def build_store(path: Path, limit: int | None) -> None:
    from miner.denchmark import read_archive
    from miner.store import open_store, save_thread
    from reeng.datasets import locate

    threads, _ = read_archive(locate("denchmark-bugreports"), limit=limit)
    conn = open_store(path)
    for thread in threads:
        save_thread(conn, thread, source="denchmark")
    conn.close()


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("store", nargs="?", type=Path)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    from miner.store import open_store
    from taxonomy import classify, models
    from taxonomy.batch import analyse_many
    from taxonomy.evidence import evidence_keys

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "denchmark.sqlite"
        if args.store is None:
            t = time.perf_counter()
            build_store(store, args.limit)
            print(f"store built in {time.perf_counter() - t:.1f} s")
        conn = open_store(store, create=False)
        threads = list(classify.store_threads(conn))[: args.limit]
        rows = [(th.title, [th.body, *(c.get("body") for c in th.comments)]) for th in threads]
        n = len(rows)
        print(f"threads: {n}")

        t = time.perf_counter()
        plain = analyse_many(rows, total=n, with_evidence=False, progress=False)
        prep_s = time.perf_counter() - t
        print(f"text preparation (regex, 2 processes): {prep_s:.1f} s = {n / prep_s:,.0f} threads/s")

        t = time.perf_counter()
        analysed = analyse_many(rows, total=n, progress=False)
        ev_s = time.perf_counter() - t
        print(f"preparation + spaCy evidence (2 processes): {ev_s:.1f} s = {n / ev_s:,.0f} threads/s")

        t = time.perf_counter()
        preds = classify.builtin_predictions(analysed)
        lab_s = time.perf_counter() - t
        print(f"built-in labeler on analysed threads: {lab_s:.1f} s = {n / lab_s:,.0f} threads/s")

        # Weak labels = the built-in labeler's confident votes (what `train --store` uses); the
        # fits below are timed on their own, the labeling pass is timed above.
        usable = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english]
        labels = {d: [preds[i][d].label for i in usable] for d in preds[0]}
        labels = {d: y for d, y in labels.items() if len({v for v in y if v}) >= 2}
        texts = [analysed[i].prepared for i in usable]
        t = time.perf_counter()
        fast_model = models.train(texts, None, labels, fast=True)
        fit_fast = time.perf_counter() - t
        print(f"fast model fit on weak labels of {len(usable)} threads, {len(labels)} targets: {fit_fast:.1f} s")
        t = time.perf_counter()
        models.train(texts, [evidence_keys(analysed[i].evidence) for i in usable], labels, fast=False)
        fit_full = time.perf_counter() - t
        print(f"full model fit on the same: {fit_full:.1f} s")

        prepared = [a.prepared for a in plain if a.prepared is not None]
        t = time.perf_counter()
        models.predict_proba(fast_model, prepared)
        pred_s = time.perf_counter() - t
        print(f"fast model prediction, {len(fast_model.targets)} targets, prepared text: {len(prepared) / pred_s:,.0f} threads/s")
        print(f"fast model from raw text (preparation + prediction): {n / (prep_s + pred_s):,.0f} threads/s")


if __name__ == "__main__":
    main()
