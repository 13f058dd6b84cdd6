"""The raw archive: every response of a crawl, compressed, with the request that produced it.

Why: a study's corpus should be auditable and re-parseable offline (a parser bug found later
must not mean crawling GitHub again). The archive is its own SQLite file (WAL), so a crawl killed
mid-write loses at most the response being written and never corrupts the earlier ones. The
Authorization header is never written; request headers are filtered to an allow-list.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from miner import payloads, store
from reeng.errors import ReengError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    params           TEXT NOT NULL,     -- JSON object of query parameters
    request_headers  TEXT NOT NULL,     -- JSON object, allow-listed: never Authorization
    request_body     BLOB,              -- zlib-compressed JSON (GraphQL query and variables)
    status           INTEGER NOT NULL,
    response_headers TEXT NOT NULL,     -- JSON object
    body             BLOB NOT NULL      -- zlib-compressed response body as received
);
"""
SAFE_REQUEST_HEADERS = {"accept", "if-none-match", "content-type", "user-agent", "x-github-api-version"}


class Archive:
    """Append-only store of raw responses; each record is committed on its own.

    Shared by the crawl's worker threads (``reeng mine --jobs N``): one connection, writes serialised by a lock.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            try:
                _check_not_other(self.conn, self.path)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.executescript(SCHEMA)
            except BaseException:
                self.conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise ReengError(f"{self.path}: not a usable archive ({exc})") from None

    def record(self, method: str, url: str, params: dict[str, Any] | None, body: Any, headers: dict[str, str],
               status: int, response_headers: dict[str, str], raw: str) -> None:
        safe = {k: v for k, v in headers.items() if k.lower() in SAFE_REQUEST_HEADERS}
        request_body = zlib.compress(json.dumps(body).encode()) if body is not None else None
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT INTO responses(at, method, url, params, request_headers, request_body, status, "
                "response_headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (datetime.now(timezone.utc).isoformat(timespec="seconds"), method, url,
                 json.dumps(params or {}, sort_keys=True), json.dumps(safe, sort_keys=True), request_body, status,
                 json.dumps(response_headers, sort_keys=True), zlib.compress((raw or "").encode())))

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _check_not_other(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is a reeng store (``--archive`` the same file as ``--store``, or another store)
    or another SQLite database: an archive never adds its table to a file that holds something else."""
    if conn.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID:
        raise ReengError(f"{path}: a reeng store, not a raw archive (give --archive a file of its own)")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    others = sorted(tables - {"responses", "sqlite_sequence"})
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ReengError(f"{path}: an SQLite database but not a raw archive (its tables: {shown})")


def read_archive(path: Path | str) -> Iterator[dict[str, Any]]:
    """Every archived exchange, decompressed, in the order it happened."""
    conn = sqlite3.connect(Path(path))
    conn.row_factory = sqlite3.Row
    try:
        for row in conn.execute("SELECT * FROM responses ORDER BY id"):
            item = dict(row)
            item["request_body"] = json.loads(zlib.decompress(item["request_body"])) if item["request_body"] else None
            item["body"] = zlib.decompress(item["body"]).decode()
            for key in ("params", "request_headers", "response_headers"):
                item[key] = json.loads(item[key])
            yield item
    except sqlite3.DatabaseError as exc:
        raise ReengError(f"{path}: not a usable archive ({exc})") from None
    finally:
        conn.close()


_ISSUES = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues$")
_COMMENTS = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments$")


def reparse(path: Path | str, conn: sqlite3.Connection) -> dict[str, int]:
    """Rebuild the threads of an archived crawl into a store, offline, replaying answers in order.

    GraphQL issue pages and their follow-up comment queries, REST listings and comment pages are
    read with the same :mod:`miner.payloads` functions the crawler uses; 304s and error answers
    carry no content and are skipped. A REST thread whose comments were not re-fetched (it was
    unchanged) keeps the comments replayed for it earlier.
    """
    threads: dict[tuple[str, int], dict[str, Any]] = {}
    for ex in read_archive(path):
        if ex["status"] != 200:
            continue
        body = json.loads(ex["body"] or "null")
        url = ex["url"].split("?", 1)[0]
        if ex["method"] == "POST":
            variables = (ex["request_body"] or {}).get("variables") or {}
            repo = f"{variables.get('owner')}/{variables.get('name')}"
            repository = ((body or {}).get("data") or {}).get("repository") or {}
            for node in (repository.get("issues") or {}).get("nodes", []):
                thread = payloads.graphql_issue(repo, node)
                threads[(repo, thread["number"])] = thread
            for alias, value in repository.items():
                if alias.startswith("i") and alias[1:].isdigit() and (repo, int(alias[1:])) in threads:
                    threads[(repo, int(alias[1:]))]["comments"].extend(
                        payloads.graphql_comment(c) for c in value["comments"]["nodes"])
        elif (match := _ISSUES.search(url)) and isinstance(body, list):
            for item in body:
                if payloads.is_pull_request(item):
                    continue
                issue = payloads.rest_issue(match["repo"], item)
                earlier = threads.get((match["repo"], issue["number"]))
                issue["comments"] = earlier["comments"] if earlier else []
                threads[(match["repo"], issue["number"])] = issue
        elif (match := _COMMENTS.search(url)) and isinstance(body, list):
            thread = threads.get((match["repo"], int(match["number"])))
            if thread is not None:
                if str(ex["params"].get("page", "1")) == "1" and "page=" not in ex["url"]:
                    thread["comments"] = []
                thread["comments"].extend(payloads.rest_comment(c) for c in body)
    with store.transaction(conn):
        for thread in threads.values():
            store.write_thread(conn, thread, source=f"archive:{Path(path).name}")
    return {"issues": len(threads), "comments": sum(len(t["comments"]) for t in threads.values())}
