"""The miner's stage of ``reeng study``: fill a store with the study's threads and join the gold defects.

With a token (``GITHUB_TOKEN``/``GITHUB_TOKENS``) and a reachable API the stage mines the gold
repositories from GitHub; otherwise it imports the configured offline corpus (the Denchmark
archive, restricted to the gold repositories), so the default study runs on any machine.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reeng.datasets import locate
from reeng.errors import ReengError
from reeng.study import StudyContext


def _reachable(api_url: str, timeout: float = 3.0) -> bool:
    url = urlparse(api_url)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def _gold_defects(ctx: StudyContext) -> Any:
    import pandas as pd

    if "defects" in ctx.artifacts:
        return pd.read_parquet(ctx.artifacts["defects"])
    from taxonomy.gold import import_defects

    return import_defects(ctx.path(ctx.section("gold").get("defects")) or locate("jiang2024-defects"))


def corpus_stage(ctx: StudyContext) -> dict[str, Any]:
    """Mine or import the threads of the study's repositories into ``corpus/store.sqlite``."""
    from miner.client import GitHubClient, Politeness, tokens_from_env
    from miner.crawl import mine
    from miner.exchange import import_denchmark
    from miner.store import open_store, thread_keys

    cfg = ctx.section("corpus")
    defects = _gold_defects(ctx)
    gold_repos = sorted({f"{o}/{r}" for o, r in zip(defects["owner"], defects["repo"])}, key=str.casefold)
    repos = gold_repos if cfg.get("repos", "gold") == "gold" else list(cfg["repos"])
    api_url = cfg.get("api_url") or "https://api.github.com"
    tokens = tokens_from_env(dict(os.environ))
    source = cfg.get("source", "auto")
    online = source == "github" or (source == "auto" and bool(tokens) and _reachable(api_url))

    folder = ctx.out / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    store_path = folder / "store.sqlite"
    conn = open_store(store_path)
    failures: dict[str, str] = {}
    try:
        if online:
            client = GitHubClient(api_url, tokens, politeness=Politeness(max_wait=float(cfg.get("max_wait", 3600))))
            failures = mine(client, conn, repos, api=cfg.get("api", "graphql"))
            origin = f"GitHub ({api_url})"
        else:
            offline = cfg.get("offline") or "denchmark"
            archive = locate("denchmark-bugreports") if offline == "denchmark" else ctx.path(offline)
            _, stats = import_denchmark(Path(archive), conn, repos, cfg.get("limit"))
            origin = f"offline corpus {Path(archive).name}"
            # repositories the user named that the archive lacks failed, as those GitHub does not know do (the gold
            # ones it lacks are expected: it holds 3 of the 27)
            if repos is not gold_repos:
                failures = {r: f"{r}: not in the {origin}" for r in stats.lacking}
        stored = thread_keys(conn)
        in_store = {r.casefold() for r, in conn.execute("SELECT DISTINCT repo FROM issues")}
    finally:
        conn.close()
    if failures and not stored:  # nothing to study: the stage failed completely, not partly
        raise ReengError(f"corpus: no thread collected from any of {len(repos)} repositories "
                         f"({'; '.join(list(failures.values())[:3])})")

    keys = [(f"{o}/{r}".casefold(), int(n)) for o, r, n in zip(defects["owner"], defects["repo"], defects["number"])]
    joined = [k in stored for k in keys]
    gold_issues = set(keys)
    result = {
        "origin": origin, "repositories": len(repos), "repositories_with_threads": len(in_store),
        "threads": len(stored), "gold_defects": len(keys), "gold_defects_with_thread": sum(joined),
        "gold_issues": len(gold_issues), "gold_issues_with_thread": len(gold_issues & stored), "failures": failures,
    }
    (folder / "corpus.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    ctx.artifacts["store"] = store_path
    lines = [f"{len(stored)} threads from {len(in_store)} of {len(repos)} repositories ({origin})",
             f"{sum(joined)} of {len(keys)} gold defects ({len(gold_issues & stored)} of {len(gold_issues)} issues) "
             "have their thread in the store"]
    lines += [f"failed: {message}" for message in failures.values()]
    return {**result, "lines": lines}
