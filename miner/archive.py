"""The raw archive: every response of a crawl, compressed, with the request that produced it.

Why: a study's corpus should be auditable and re-parseable offline (a parser bug found later
must not mean crawling GitHub again). The archive is its own SQLite file (WAL), so a crawl killed
mid-write loses at most the response being written and never corrupts the earlier ones. The
Authorization header is never written; request headers are filtered to an allow-list.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
    """Append-only store of raw responses; each record is committed on its own."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ReengError(f"{self.path}: not a usable archive ({exc})") from None

    def record(self, method: str, url: str, params: dict[str, Any] | None, body: Any, headers: dict[str, str],
               status: int, response_headers: dict[str, str], raw: str) -> None:
        safe = {k: v for k, v in headers.items() if k.lower() in SAFE_REQUEST_HEADERS}
        request_body = zlib.compress(json.dumps(body).encode()) if body is not None else None
        with self.conn:
            self.conn.execute(
                "INSERT INTO responses(at, method, url, params, request_headers, request_body, status, "
                "response_headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (datetime.now(timezone.utc).isoformat(timespec="seconds"), method, url,
                 json.dumps(params or {}, sort_keys=True), json.dumps(safe, sort_keys=True), request_body, status,
                 json.dumps(response_headers, sort_keys=True), zlib.compress((raw or "").encode())))

    def close(self) -> None:
        self.conn.close()


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
