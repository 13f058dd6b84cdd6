"""Label Studio round trip: push 500 threads with pre-annotations (goal <= 30 s), pull 1,000 annotations (goal <= 10 s).

Against a local Label Studio on 127.0.0.1 (started here from reeng's Label Studio environment,
see ``reeng annotate install``). The store holds synthetic threads shaped like GitHub issues
(an opening post with a traceback in a code block, four comments) with the built-in labeler's
predictions; two raters' annotations of every task are imported in bulk (not timed), then ``pull``
(fetch, check against taxonomy and store, agreement, one transaction) is timed. Each timing is
repeated ``--runs`` times; the median and the range are printed.

Run: python benchmarks/annotation_roundtrip.py [--threads 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miner.store import open_store, save_thread  # noqa: E402
from reeng.settings import cache_dir  # noqa: E402
from taxonomy.annotate_config import labeling_config, result_item, taxonomy_tag  # noqa: E402
from taxonomy.annotate_server import LOCAL_TEST_ADMIN, add_user, env_dir, local_server  # noqa: E402
from taxonomy.annotate_studio import Studio, pull, push  # noqa: E402
from taxonomy.model import load_taxonomy  # noqa: E402

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


def server_cpu() -> float:
    """CPU seconds used so far by this process's child processes (the Label Studio server), from /proc."""
    ticks, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in children.read_text().split():
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
                todo.append(int(child))
    return ticks / os.sysconf("SC_CLK_TCK")


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
        with local_server(env_dir(), Path(tmp) / "ls-data", LOCAL_TEST_ADMIN, template=cache_dir() / "label-studio-test-template") as url:
            studio = Studio(url, LOCAL_TEST_ADMIN["LABEL_STUDIO_USER_TOKEN"])
            push_times, push_server, push_client = [], [], []
            for run in range(args.runs):
                start, server, client = time.perf_counter(), server_cpu(), time.process_time()
                result = push(conn, studio, f"bench {run}", taxonomy=taxonomy)
                push_times.append(time.perf_counter() - start)
                push_server.append(server_cpu() - server)
                push_client.append(time.process_time() - client)
                assert result["imported"] == args.threads and result["with_predictions"] >= 0.9 * args.threads
            # two raters' annotations, imported in bulk (through the API one by one they take minutes, and are not what is timed)
            raters = [f"rater{i}@example.org" for i in (1, 2)]
            for rater in raters:
                add_user(url, rater, "rater-pass-2024")
            rng = random.Random(1)
            stages, impacts = ["training", "modeling", "environment", "data_pipeline"], ["crash", "hang", "bad_performance"]

            def annotation(rater: str) -> dict:
                return {"completed_by": {"email": rater}, "result": [
                    result_item(taxonomy, "framework", None, "pytorch"), result_item(taxonomy, "stage", 1, rng.choice(stages)),
                    result_item(taxonomy, "impact", 1, rng.choice(impacts)), result_item(taxonomy, "root_cause", 1, "hyperparameters")]}

            project, _ = studio.ensure_project("bench pull", labeling_config(taxonomy), taxonomy_tag(taxonomy))
            tasks = [{"data": t["data"], "annotations": [annotation(r) for r in raters]} for t in studio.export(result["project_id"])]
            studio.import_tasks(project.id, tasks)
            pull_times, pull_server, pull_client = [], [], []
            for _ in range(args.runs):
                start, server, client = time.perf_counter(), server_cpu(), time.process_time()
                pulled = pull(conn, studio, "bench pull", taxonomy=taxonomy)
                pull_times.append(time.perf_counter() - start)
                pull_server.append(server_cpu() - server)
                pull_client.append(time.process_time() - client)
                print("pull phases, wall seconds:", pulled.timings, flush=True)
            assert len(pulled.annotations) == 2 * args.threads
    load = os.getloadavg()[0]
    print(f"push  {args.threads} threads with pre-annotations: {spread(push_times)}   goal <= 30 s   "
          f"ratio to goal {statistics.median(push_times) / 30:.2f}")
    print(f"      CPU: server {statistics.median(push_server):.2f} s + client {statistics.median(push_client):.2f} s")
    print(f"pull  {2 * args.threads} annotations (2 raters):      {spread(pull_times)}   goal <= 10 s   "
          f"ratio to goal {statistics.median(pull_times) / 10:.2f}")
    print(f"      CPU: server {statistics.median(pull_server):.2f} s + client {statistics.median(pull_client):.2f} s")
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} cores; on a busy machine wall time exceeds CPU time)")

if __name__ == "__main__":
    main()
