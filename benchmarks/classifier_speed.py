"""Classifier speed on the Denchmark threads: hygiene, evidence pass, labeling, training, model files.

Usage: REENG_DATA_DIR=... python benchmarks/classifier_speed.py [STORE] [--limit N]
STORE is a store holding the Denchmark threads; without it one is built in a temporary folder
from the archive (about 30 s). Prints its figures; asserts nothing (speed goals are not tests).
Goals (issue 9): fast model >= 2,000 threads/s on prepared text; built-in labeling of all 26k
threads <= 120 s; the role split and hygiene add <= 20 %; a model trained on 1,500 issues is
<= 5 MB and saves and loads in <= 1 s each.
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
    from taxonomy import classify
    from taxonomy import supervised as models
    from taxonomy.batch import analyse_many
    from taxonomy.rules import rule_features
    from taxonomy.thread import thread_parts

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "denchmark.sqlite"
        if args.store is None:
            t = time.perf_counter()
            build_store(store, args.limit)
            print(f"store built in {time.perf_counter() - t:.1f} s")
        conn = open_store(store, create=False)
        threads = list(classify.store_threads(conn))[: args.limit]
        raw_rows = [(th.title, [th.body, *(c.get("body") for c in th.comments)]) for th in threads]
        n = len(raw_rows)
        print(f"threads: {n}")

        t = time.perf_counter()
        analyse_many(raw_rows, total=n, with_evidence=False, progress=False)
        raw_s = time.perf_counter() - t
        t = time.perf_counter()
        parts = [thread_parts(th) for th in threads]
        rows = [(p.title, p.opening, p.discussion) for p in parts]
        plain = analyse_many(rows, total=n, with_evidence=False, progress=False)
        prep_s = time.perf_counter() - t
        print(f"text preparation without roles/hygiene: {raw_s:.1f} s; with them: {prep_s:.1f} s "
              f"({100 * (prep_s / raw_s - 1):+.0f} %, goal <= +20 %) = {n / prep_s:,.0f} threads/s; "
              f"{sum(p.dropped_bot_comments for p in parts)} bot/template comments dropped")

        t = time.perf_counter()
        analysed = analyse_many(rows, total=n, progress=False)
        ev_s = time.perf_counter() - t
        print(f"preparation + spaCy evidence (2 processes): {ev_s:.1f} s = {n / ev_s:,.0f} threads/s")

        t = time.perf_counter()
        preds = classify.builtin_predictions(analysed)
        lab_s = time.perf_counter() - t
        print(f"built-in labeler on analysed threads: {lab_s:.1f} s = {n / lab_s:,.0f} threads/s; "
              f"built-in labeling end to end {ev_s + lab_s:.1f} s for {n} threads "
              f"(= {(ev_s + lab_s) * 26_145 / n:.0f} s for 26,145; goal <= 120 s)")

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
        models.train(texts, [rule_features(analysed[i].evidence) for i in usable], labels, fast=False)
        fit_full = time.perf_counter() - t
        print(f"full model fit on the same: {fit_full:.1f} s")

        # Model files: a full model trained on 1,500 issues (one target), saved and loaded.
        k = min(1_500, len(usable))
        target = next(iter(labels))
        small = models.train(texts[:k], [rule_features(analysed[i].evidence) for i in usable[:k]],
                             {target: labels[target][:k]}, fast=False)
        path = Path(tmp) / "model.skops"
        t = time.perf_counter()
        models.save(small, path)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        models.load(path)
        load_s = time.perf_counter() - t
        print(f"model of {k} issues: {path.stat().st_size / 1e6:.2f} MB, save {save_s:.2f} s, load {load_s:.2f} s "
              "(goal <= 5 MB, <= 1 s each)")

        prepared = [a.prepared for a in plain if a.prepared is not None]
        t = time.perf_counter()
        models.predict_proba(fast_model, prepared)
        pred_s = time.perf_counter() - t
        print(f"fast model prediction, {len(fast_model.targets)} targets, prepared text: {len(prepared) / pred_s:,.0f} threads/s")
        print(f"fast model from raw text (preparation + prediction): {n / (prep_s + pred_s):,.0f} threads/s")


if __name__ == "__main__":
    main()
