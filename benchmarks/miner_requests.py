"""Requests per 100 issues (with all comments), GraphQL vs REST, and issues/s against the local server.

Corpora: with REENG_DATA_DIR set, the first N Denchmark threads of one large repository
(tensorflow/tensorflow: the per-issue cost) and the first N threads of the archive (many small
repositories: per-repository overhead shows); else a synthetic repository. Each path crawls a fresh store, then re-crawls the unchanged
corpus. "naive REST" is computed, not crawled: one listing request per 100 issues plus one
comments request per issue, what a crawler that fetches every thread's comments would pay.

    PYTHONPATH=. python benchmarks/miner_requests.py [--issues 2000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miner.client import GitHubClient  # noqa: E402
from miner.crawl import mine  # noqa: E402
from miner.exchange import import_denchmark  # noqa: E402
from miner.server import running  # noqa: E402
from miner.store import open_store  # noqa: E402
from reeng.settings import data_dir  # noqa: E402


def build(path: Path, n: int, repo: str | None) -> str:
    root = data_dir()
    archive = root / "denchmark" / "denchmark_bugreports.tar.xz" if root else None
    conn = open_store(path)
    if archive and archive.is_file():
        import_denchmark(archive, conn, [repo] if repo else None, limit=n, progress=False)
        origin = f"first {n} Denchmark threads" + (f" of {repo}" if repo else "")
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from miner_helpers import build_corpus

        conn.close()
        path.unlink()
        build_corpus(path, {"acme/detector": n})
        conn = open_store(path)
        origin = f"{n} synthetic threads"
    conn.close()
    return origin


def crawl(url: str, corpus: Path, store: Path, api: str) -> tuple[dict, float]:
    repos = [r for (r,) in sqlite3.connect(corpus).execute("SELECT DISTINCT repo FROM issues ORDER BY repo")]
    client = GitHubClient(url, ["benchmark-token"])
    conn = open_store(store)
    started = time.perf_counter()
    mine(client, conn, repos, api=api, progress=False)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=2000)
    args = parser.parse_args()
    print("requests include the per-repository overhead: a change probe (and, on REST, the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        for repo in ("tensorflow/tensorflow", None) if data_dir() else (None,):
            report(Path(tmp), args.issues, repo)


if __name__ == "__main__":
    main()
