"""Label Studio round trip: push 500 threads with pre-annotations (goal <= 30 s), pull 1,000 annotations (goal <= 10 s).

Against a local Label Studio on 127.0.0.1 (started here from reeng's Label Studio environment,
see ``reeng annotate install``). The store holds synthetic threads shaped like GitHub issues
(an opening post with a traceback in a code block, four comments) with the built-in labeler's
predictions; two raters each annotate every task through the API (not timed), then ``pull``
(fetch, check against taxonomy and store, agreement, one transaction) is timed. Each timing is
repeated ``--runs`` times; the median and the range are printed.

Run: python benchmarks/annotation_roundtrip.py [--threads 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miner.store import open_store, save_thread  # noqa: E402
from reeng.settings import cache_dir  # noqa: E402
from taxonomy.annotate_config import result_item  # noqa: E402
from taxonomy.annotate_server import add_user, env_dir, local_server  # noqa: E402
from taxonomy.annotate_studio import Studio, pull, push  # noqa: E402
from taxonomy.model import load_taxonomy  # noqa: E402

ADMIN = {"LABEL_STUDIO_USERNAME": "lead@example.org", "LABEL_STUDIO_PASSWORD": "lead-pass-2024",
         "LABEL_STUDIO_USER_TOKEN": "reeng-bench-token-0123456789abcdef"}
PROBLEMS = ["CUDA out of memory", "mAP lower than reported", "ImportError: cannot import name", "loss becomes nan",
            "shape mismatch in conv layer", "segmentation fault in the data loader"]


def make_store(path: Path, threads: int) -> None:
    rng = random.Random(0)
    conn = open_store(path)
    for n in range(1, threads + 1):
        problem = rng.choice(PROBLEMS)
        body = (f"When training with the default config I get {problem}.\n```\nTraceback (most recent call last):\n"
                + "".join(f'  File "train.py", line {i}, in step\n' for i in range(20)) + f"RuntimeError: {problem}\n```\n"
                + "Environment: torch 1.7, CUDA 10.2, 2 GPUs. " * 8)
        comments = [{"comment_id": n * 10 + i, "author": f"user{i}", "created_at": f"2021-01-0{i + 1}T00:00:00Z",
                     "body": f"Same here. {rng.choice(PROBLEMS)} with batch size {2 ** i}."} for i in range(4)]
        save_thread(conn, {"repo": f"acme/model{n % 7}", "number": n, "title": f"{problem} (run {n})", "body": body,
                           "author": "reporter", "comments": comments}, source="benchmark")
    conn.close()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (range {min(values):.2f}-{max(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.sqlite"
        make_store(store, args.threads)
        from reeng.cli import main as reeng

        try:
            reeng(["classify", "predict", "--builtin", "--store", str(store)])
        except SystemExit as exc:
            if exc.code:
                raise
        conn = open_store(store, create=False)
        with local_server(env_dir(), Path(tmp) / "ls-data", ADMIN, template=cache_dir() / "label-studio-test-template") as url:
            studio = Studio(url, ADMIN["LABEL_STUDIO_USER_TOKEN"])
            push_times = []
            for run in range(args.runs):
                start = time.perf_counter()
                result = push(conn, studio, f"bench {run}", taxonomy=taxonomy)
                push_times.append(time.perf_counter() - start)
                assert result["imported"] == args.threads and result["with_predictions"] >= 0.9 * args.threads
            tasks = studio.export(result["project_id"])
            raters = [Studio(url, add_user(url, f"rater{i}@example.org", f"rater{i}-pass-2024")) for i in (1, 2)]
            rng = random.Random(1)
            stages = ["training", "modeling", "environment", "data_pipeline"]

            def annotate(job: tuple[Studio, dict]) -> None:
                rater, task = job
                result = [result_item(taxonomy, "framework", None, "pytorch"),
                          result_item(taxonomy, "stage", 1, rng.choice(stages)),
                          result_item(taxonomy, "impact", 1, rng.choice(["crash", "hang", "bad_performance"])),
                          result_item(taxonomy, "root_cause", 1, "hyperparameters")]
                rater.client.annotations.create(id=task["id"], result=result)

            start = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(annotate, [(r, t) for r in raters for t in tasks]))
            submit = time.perf_counter() - start
            pull_times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                pulled = pull(conn, studio, f"bench {args.runs - 1}", taxonomy=taxonomy)
                pull_times.append(time.perf_counter() - start)
            assert len(pulled.annotations) == 2 * args.threads
    print(f"push  {args.threads} threads with pre-annotations: {spread(push_times)}   goal <= 30 s   "
          f"ratio to goal {statistics.median(push_times) / 30:.2f}")
    print(f"pull  {2 * args.threads} annotations (2 raters):      {spread(pull_times)}   goal <= 10 s   "
          f"ratio to goal {statistics.median(pull_times) / 10:.2f}")
    print(f"(not timed against a goal: submitting the {2 * args.threads} annotations through the API took {submit:.1f} s)")


if __name__ == "__main__":
    main()
