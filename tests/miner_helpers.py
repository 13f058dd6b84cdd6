"""Shared pieces of the miner tests: a synthetic corpus, a local server in a thread, CLI runs.

The synthetic corpus is written here (no thread text from any published data set) and is shaped
to exercise the crawler: a thread longer than a page of comments, empty bodies, labels,
reactions, non-ASCII text, issues sharing one ``updated_at`` second, and a deleted author.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from miner.server import running
from miner.store import open_store, save_thread, upsert_repository, transaction
from tests.conftest import ROOT, run_reeng

FAKE_TOKEN = "ghp_reengTESTtoken_4f1c9a7e2b"  # distinctive: must never show up anywhere


def stamp(day: int, second: int = 0) -> str:
    return f"2021-{1 + day // 28:02d}-{1 + day % 28:02d}T10:00:{second:02d}Z"


def synthetic_thread(repo: str, number: int, n_comments: int) -> dict[str, Any]:
    day = number % 300
    comments = [{"comment_id": number * 1000 + k, "author": f"user{k % 7}", "body": f"comment {k} on #{number} — ✓",
                 "created_at": stamp(day, k % 60), "updated_at": stamp(day, k % 60)} for k in range(n_comments)]
    return {
        "repo": repo, "number": number, "title": f"Issue {number}: mAP differs from the paper",
        "body": "" if number % 11 == 0 else f"Training on COCO gives {number / 10:.1f} mAP.\n```\nloss: nan\n```",
        "state": "closed" if number % 3 else "open", "author": None if number % 13 == 0 else f"reporter{number % 5}",
        "labels": ["bug"] if number % 4 == 0 else [], "created_at": stamp(day),
        "updated_at": stamp(day + 1, 59 if number % 10 == 0 else number % 50),
        "closed_at": stamp(day + 1) if number % 3 else None, "comments_count": n_comments,
        "reactions": {"+1": 2, "eyes": 1} if number % 6 == 0 else {},
        "url": f"https://github.com/{repo}/issues/{number}", "comments": comments,
    }


def build_corpus(path: Path, repos: dict[str, int] | None = None, long_thread: int = 230) -> Path:
    """A store with ``repo -> issue count`` threads; issue 7 of the first repository is long."""
    repos = repos or {"acme/detector": 160, "acme/zoo": 25}
    conn = open_store(path)
    for i, (repo, count) in enumerate(repos.items()):
        with transaction(conn):
            upsert_repository(conn, {"repo": repo, "stars": 5000 - i, "description": f"{repo} detection models"})
        for number in range(1, count + 1):
            n = long_thread if (i == 0 and number == 7) else number % 12
            save_thread(conn, synthetic_thread(repo, number, n), source="synthetic")
    conn.close()
    return path


served = running  # the local server in a thread: ``with served(corpus, faults, port) as url``


def reeng(*args: str, token: str | None = FAKE_TOKEN, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m reeng ARGS`` in a subprocess with exactly the given token (none of the caller's)."""
    token_env = {"GITHUB_TOKEN": token} if token else {}
    return run_reeng(*args, cwd=ROOT, env={**token_env, **(env or {})}, unset=("GITHUB_TOKEN", "GITHUB_TOKENS"),
                     timeout=timeout)


FAST = ("--secondary-wait", "0.05", "--backoff", "0.01", "--no-progress")


def export_text(store: Path, out: Path) -> tuple[str, str]:
    """The JSONL export of a store, as text (issues, comments)."""
    from miner.exchange import export_store

    conn = open_store(store, create=False)
    try:
        export_store(conn, out, "jsonl")
    finally:
        conn.close()
    return (out / "issues.jsonl").read_text(encoding="utf-8"), (out / "comments.jsonl").read_text(encoding="utf-8")


def denchmark_archive(path: Path, reports: Iterable[tuple[str, int, str, str]]) -> Path:
    """A Denchmark-shaped .tar.xz: one ``bugreports/<owner+name>/<number>.xml`` per (repo, number, title,
    description) of ``reports``, each with one comment."""
    with tarfile.open(path, "w:xz") as tar:
        for repo, number, title, description in reports:
            xml = (f'<bug id="{number}" author="u{number % 7}" open_date="2021-01-01T00:00:00Z" closed_time="">'
                   f"<summary>{title}</summary><description>{description}</description><comments>"
                   f'<comment id="1" author="v" date="2021-01-02T00:00:00Z">Which version do you use?</comment>'
                   f"</comments></bug>").encode()
            info = tarfile.TarInfo(f"bugreports/{repo.replace('/', '+')}/{number}.xml")
            info.size = len(xml)
            tar.addfile(info, io.BytesIO(xml))
    return path
