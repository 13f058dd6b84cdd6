"""Requests per 100 issues (with all comments), GraphQL vs REST, issues/s against the local server, the
added cost of fixes (timeline events + changed files), and ``--jobs 4`` vs ``--jobs 1``.

Corpora: with REENG_DATA_DIR set, the first N Denchmark threads of one large repository
(tensorflow/tensorflow: the per-issue cost) and the first N threads of the archive (many small
repositories: per-repository overhead shows); else a synthetic repository. Each path crawls a fresh store, then re-crawls the unchanged
corpus. "naive REST" is computed, not crawled: one listing request per 100 issues plus one
comments request per issue, what a crawler that fetches every thread's comments would pay.

Fixes: a synthetic repository whose closed issues carry a timeline (a label, and for a third of
them a closing pull request with changed files); crawled without and with ``--fixes``, the extra
requests are divided by the linked fixes. Jobs: 20 small synthetic repositories (50 issues each),
4 tokens, the server in its own process with and without 20 ms of latency per answer (GitHub is
far away); wall time of ``--jobs 1`` and ``--jobs 4``, three runs each (median, min-max).

    PYTHONPATH=. python benchmarks/miner_requests.py [--issues 2000] [--skip-denchmark]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miner.client import GitHubClient  # noqa: E402
from miner.crawl import mine  # noqa: E402
from miner.exchange import import_denchmark  # noqa: E402
from miner.server import running  # noqa: E402
from miner.payloads import fix_files  # noqa: E402
from miner.store import open_store, save_thread  # noqa: E402
from reeng.settings import data_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.miner_helpers import build_corpus, synthetic_thread  # noqa: E402


def build(path: Path, n: int, repo: str | None) -> str:
    root = data_dir()
    archive = root / "denchmark" / "denchmark_bugreports.tar.xz" if root else None
    conn = open_store(path)
    if archive and archive.is_file():
        import_denchmark(archive, conn, [repo] if repo else None, limit=n, progress=False)
        origin = f"first {n} Denchmark threads" + (f" of {repo}" if repo else "")
    else:
        conn.close()
        path.unlink()
        build_corpus(path, {"acme/detector": n})
        conn = open_store(path)
        origin = f"{n} synthetic threads"
    conn.close()
    return origin


def crawl(url: str, corpus: Path, store: Path, api: str, **options) -> tuple[dict, float]:
    repos = [r for (r,) in sqlite3.connect(corpus).execute("SELECT DISTINCT repo FROM issues ORDER BY repo")]
    client = GitHubClient(url, options.pop("tokens", ["benchmark-token"]))
    conn = open_store(store)
    started = time.perf_counter()
    mine(client, conn, repos, api=api, progress=False, **options)
    elapsed = time.perf_counter() - started
    conn.close()
    return client.stats.to_dict(), elapsed


def report(tmp: Path, n: int, repo: str | None) -> None:
    corpus = tmp / f"corpus-{repo is None}.sqlite"
    origin = build(corpus, n, repo)
    db = sqlite3.connect(corpus)
    issues, comments, repos = db.execute("SELECT count(*), sum(comments_count), count(DISTINCT repo) FROM issues").fetchone()
    pages = sum(-(-k // 100) for (k,) in db.execute("SELECT count(*) FROM issues GROUP BY repo"))
    long_threads = db.execute("SELECT count(*) FROM issues WHERE comments_count > 100").fetchone()[0]
    db.close()
    print(f"\ncorpus: {origin}: {issues} issues, {comments} comments, {repos} repositories, "
          f"{long_threads} threads with > 100 comments")
    print(f"{'path':<22}{'requests':>9}{'per 100 issues':>16}{'issues/s':>10}{'re-crawl requests':>19}{'304s':>6}")
    with running(corpus) as url:
        for api in ("graphql", "rest"):
            store = tmp / f"{api}-{repo is None}.sqlite"
            first, seconds = crawl(url, corpus, store, api)
            again, _ = crawl(url, corpus, store, api)
            print(f"{api:<22}{first['requests']:>9}{100 * first['requests'] / issues:>16.2f}"
                  f"{issues / seconds:>10.0f}{again['requests']:>19}{again['not_modified']:>6}")
    naive = pages + issues
    print(f"{'naive REST (computed)':<22}{naive:>9}{100 * naive / issues:>16.2f}")


def fixes_cost(tmp: Path, n: int) -> None:
    """Requests per 100 issues without and with --fixes, and the added requests per linked fix."""
    corpus = build_corpus(tmp / "fixes-corpus.sqlite", {"acme/detector": n}, long_thread=3)
    conn = open_store(corpus)
    linked = 0
    for number in range(1, n + 1):
        thread = synthetic_thread("acme/detector", number, number % 12)
        if thread["state"] != "closed":
            continue
        events = [{"event_id": f"L{number}", "kind": "labeled", "label": "bug", "created_at": thread["created_at"]}]
        fixes = []
        if number % 3 == 1:
            events.append({"event_id": f"C{number}", "kind": "closed", "state_reason": "completed",
                           "created_at": thread["closed_at"], "source_kind": "pull", "source_repo": "acme/detector",
                           "source_ref": str(10_000 + number)})
            files = [{"filename": f"models/layer{k}.py", "status": "modified", "additions": 5, "deletions": 2,
                      "patch": "@@ -1,2 +1,5 @@\n-old\n+new"} for k in range(3)]
            fixes.append(fix_files({"kind": "pull", "fix_repo": "acme/detector", "fix_ref": str(10_000 + number),
                                    "link": "closer"}, files))
            linked += 1
        save_thread(conn, {**thread, "events": events, "fixes": fixes}, source="synthetic")
    conn.close()
    print(f"\nfixes: {n} synthetic issues, {linked} closed by a pull request (3 changed files each)")
    print(f"{'path':<22}{'requests':>9}{'per 100 issues':>16}{'issues/s':>10}{'fix requests':>14}")
    rows = {}
    with running(corpus) as url:
        for label, fixes in (("graphql", False), ("graphql --fixes", True)):
            stats, seconds = crawl(url, corpus, tmp / f"fixes-{fixes}.sqlite", "graphql", fixes=fixes)
            rows[label] = stats
            print(f"{label:<22}{stats['requests']:>9}{100 * stats['requests'] / n:>16.2f}{n / seconds:>10.0f}"
                  f"{stats['fix_requests']:>14}")
    added = rows["graphql --fixes"]["requests"] - rows["graphql"]["requests"]
    print(f"added requests per linked fix: {added / linked:.2f} ({added} for {linked} fixes; timelines ride in the "
          "issue pages)")


def jobs_ratio(tmp: Path, runs: int = 3) -> None:
    """Wall time of --jobs 1 and --jobs 4 on 20 small repositories, server in its own process."""
    corpus = build_corpus(tmp / "jobs-corpus.sqlite", {f"acme/small{i:02d}": 50 for i in range(20)}, long_thread=3)
    tokens = [f"benchmark-token-{i}" for i in range(4)]
    print("\njobs: 20 repositories x 50 issues, 4 tokens, server in a separate process")
    print(f"{'latency per answer':<20}{'--jobs 1 (s)':>16}{'--jobs 4 (s)':>16}{'ratio 4/1':>11}")
    for latency in (0.0, 0.02):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "reeng", "serve-github", "--corpus", str(corpus),
                                   "--faults", f"latency={latency}"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            url = server.stdout.readline().split()[-1]
            times: dict[int, list[float]] = {1: [], 4: []}
            for k in range(runs):
                for jobs in (1, 4):
                    _, seconds = crawl(url, corpus, tmp / f"jobs-{latency}-{jobs}-{k}.sqlite", "graphql", jobs=jobs,
                                       tokens=tokens)
                    times[jobs].append(seconds)
        finally:
            server.terminate()
            server.wait()
        one, four = statistics.median(times[1]), statistics.median(times[4])
        print(f"{f'{latency * 1000:.0f} ms':<20}{one:>8.2f} ({min(times[1]):.2f}-{max(times[1]):.2f})"
              f"{four:>8.2f} ({min(times[4]):.2f}-{max(times[4]):.2f}){four / one:>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=2000)
    parser.add_argument("--skip-denchmark", action="store_true", help="Only the synthetic corpora.")
    args = parser.parse_args()
    print("requests include the per-repository overhead: a change probe (and, on REST, the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_denchmark:
            for repo in ("tensorflow/tensorflow", None) if data_dir() else (None,):
                report(Path(tmp), args.issues, repo)
        fixes_cost(Path(tmp), min(args.issues, 1000))
        jobs_ratio(Path(tmp))


if __name__ == "__main__":
    main()
