"""The SQLite store: one file holding repositories, issue threads and what later layers add.

Why SQLite: a study is one portable file, WAL mode lets a reader (the classifier, a notebook)
look while a crawl writes, and every write happens in a transaction, so a crawl killed at any
moment leaves the store as it was after the last committed page. The table layout is the
contract with the other layers and is documented in ``docs/schemas.md``; content columns are
kept apart from fetch metadata (``source``, ``fetched_at``, ``etag``) so that an export of a
mined store equals the export of the corpus it was mined from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reeng.errors import ReengError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS repositories (
    repo        TEXT PRIMARY KEY,          -- "owner/name"
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    stars       INTEGER,
    description TEXT,
    created_at  TEXT,
    repo_type   TEXT,                      -- taxonomy id of dimension repo_type (zoo / solo), if known
    source      TEXT,
    fetched_at  TEXT
);
CREATE TABLE IF NOT EXISTS issues (
    repo           TEXT NOT NULL,          -- "owner/name"
    number         INTEGER NOT NULL,
    title          TEXT,
    body           TEXT,
    state          TEXT,                   -- open / closed
    author         TEXT,
    labels         TEXT NOT NULL DEFAULT '[]',   -- JSON array of label names
    created_at     TEXT,
    updated_at     TEXT,
    closed_at      TEXT,
    comments_count INTEGER,
    reactions      TEXT NOT NULL DEFAULT '{}',   -- JSON object: reaction -> count
    url            TEXT,
    source         TEXT,                   -- fetch metadata from here on
    fetched_at     TEXT,
    etag           TEXT,
    PRIMARY KEY (repo, number)
);
CREATE TABLE IF NOT EXISTS comments (
    repo         TEXT NOT NULL,
    issue_number INTEGER NOT NULL,
    comment_id   INTEGER NOT NULL,
    author       TEXT,
    body         TEXT,
    created_at   TEXT,
    updated_at   TEXT,
    source       TEXT,
    fetched_at   TEXT,
    etag         TEXT,
    PRIMARY KEY (repo, issue_number, comment_id)
);
CREATE INDEX IF NOT EXISTS comments_by_issue ON comments (repo, issue_number, created_at);
CREATE TABLE IF NOT EXISTS crawl_state (
    repo        TEXT PRIMARY KEY,          -- "owner/name"
    since       TEXT,                      -- high-water mark: updated_at of the last committed issue
    api         TEXT,                      -- graphql / rest: the path of the last crawl
    complete    INTEGER NOT NULL DEFAULT 0,-- 1 once a crawl reached the end of the listing
    probe_etag  TEXT,                      -- ETag of the change probe, saved only when complete
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS http_cache (
    key        TEXT PRIMARY KEY,           -- method and URL (never headers, so never a token)
    etag       TEXT NOT NULL,
    fetched_at TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    sample_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    protocol   TEXT NOT NULL,
    parameters TEXT NOT NULL,              -- JSON object
    seed       INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    population INTEGER NOT NULL,           -- issues that qualified
    drawn      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sample_issues (
    sample_id INTEGER NOT NULL REFERENCES samples(sample_id),
    repo      TEXT NOT NULL,
    number    INTEGER NOT NULL,
    PRIMARY KEY (sample_id, repo, number)
);
"""

ISSUE_CONTENT = ("repo", "number", "title", "body", "state", "author", "labels", "created_at",
                 "updated_at", "closed_at", "comments_count", "reactions", "url")
COMMENT_CONTENT = ("repo", "issue_number", "comment_id", "author", "body", "created_at", "updated_at")
FETCH_METADATA = ("source", "fetched_at", "etag")


@dataclass
class Thread:
    """An issue with its comments, as the classifier and exports see it."""

    repo: str
    number: int
    title: str
    body: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    issue: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Title, body and every comment body, in thread order."""
        return "\n\n".join([self.title or "", self.body or "", *(c.get("body") or "" for c in self.comments)])


def open_store(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """Open (or create) a store; a file that is not a reeng store is an error naming it."""
    path = Path(path)
    if not path.exists() and not create:
        raise ReengError(f"{path}: no such store")
    if path.is_dir():
        raise ReengError(f"{path}: is a folder, expected a store file")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.executescript(SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ReengError(f"{path}: not a usable store ({exc})") from None
    if int(version) != SCHEMA_VERSION:
        conn.close()
        raise ReengError(f"{path}: store schema version {version}, this reeng reads version {SCHEMA_VERSION}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic unit of work: committed as a whole or not at all."""
    with conn:
        yield conn


def _json(value: Any, empty: str) -> str:
    if value is None:
        return empty
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def upsert_issue(conn: sqlite3.Connection, issue: dict[str, Any]) -> None:
    """Insert or replace one issue row (content and fetch metadata)."""
    row = {k: issue.get(k) for k in (*ISSUE_CONTENT, *FETCH_METADATA)}
    row["labels"] = _json(row["labels"], "[]")
    row["reactions"] = _json(row["reactions"], "{}")
    cols = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    conn.execute(f"INSERT OR REPLACE INTO issues ({cols}) VALUES ({marks})", row)


def replace_comments(conn: sqlite3.Connection, repo: str, number: int, comments: Iterable[dict[str, Any]]) -> int:
    """Make the stored comments of one issue exactly ``comments`` (edits and deletions included)."""
    conn.execute("DELETE FROM comments WHERE repo = ? AND issue_number = ?", (repo, number))
    count = 0
    for c in comments:
        row = {k: c.get(k) for k in (*COMMENT_CONTENT, *FETCH_METADATA)}
        row["repo"], row["issue_number"] = repo, number
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        conn.execute(f"INSERT INTO comments ({cols}) VALUES ({marks})", row)
        count += 1
    return count


def save_thread(conn: sqlite3.Connection, thread: dict[str, Any], *, source: str, fetched_at: str | None = None,
                etag: str | None = None) -> None:
    """Store one issue dict with its ``comments`` list atomically, replacing any earlier copy."""
    with transaction(conn):
        write_thread(conn, thread, source=source, fetched_at=fetched_at, etag=etag)


def write_thread(conn: sqlite3.Connection, thread: dict[str, Any], *, source: str, fetched_at: str | None = None,
                 etag: str | None = None) -> None:
    """Like :func:`save_thread` but inside the caller's transaction (a crawl commits a page at once)."""
    upsert_issue(conn, {**thread, "source": source, "fetched_at": fetched_at, "etag": etag})
    replace_comments(conn, thread["repo"], thread["number"],
                     ({**c, "source": source, "fetched_at": fetched_at} for c in thread.get("comments", [])))


def upsert_repository(conn: sqlite3.Connection, repo: dict[str, Any]) -> None:
    """Insert or replace one repository row (``repo`` is "owner/name")."""
    owner, _, name = repo["repo"].partition("/")
    row = {"repo": repo["repo"], "owner": owner, "name": name,
           **{k: repo.get(k) for k in ("stars", "description", "created_at", "repo_type", "source", "fetched_at")}}
    cols = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    conn.execute(f"INSERT OR REPLACE INTO repositories ({cols}) VALUES ({marks})", row)


def iter_threads(conn: sqlite3.Connection, repos: Iterable[str] | None = None) -> Iterator[Thread]:
    """Every stored thread in (repo, number) order, comments in creation order."""
    where, params = "", []
    if repos is not None:
        repos = list(repos)
        where = f"WHERE repo IN ({', '.join('?' for _ in repos)})"
        params = repos
    for issue in conn.execute(f"SELECT * FROM issues {where} ORDER BY repo, number", params).fetchall():
        comments = conn.execute(
            "SELECT * FROM comments WHERE repo = ? AND issue_number = ? ORDER BY created_at, comment_id",
            (issue["repo"], issue["number"]),
        ).fetchall()
        yield Thread(
            repo=issue["repo"], number=issue["number"], title=issue["title"] or "", body=issue["body"] or "",
            comments=[dict(c) for c in comments], issue=dict(issue),
        )


def issue_versions(conn: sqlite3.Connection, repo: str) -> dict[int, tuple[str | None, int | None, str | None]]:
    """``number -> (updated_at, comments_count, etag)`` of the stored issues of one repository.

    The crawler compares a fresh listing against this to skip comment fetches for threads that
    did not change.
    """
    rows = conn.execute("SELECT number, updated_at, comments_count, etag FROM issues WHERE repo = ?", (repo,))
    return {r["number"]: (r["updated_at"], r["comments_count"], r["etag"]) for r in rows}


def stored_comments(conn: sqlite3.Connection, repo: str, number: int) -> list[dict[str, Any]]:
    """The stored comments of one issue (content columns), in creation order."""
    rows = conn.execute(
        f"SELECT {', '.join(COMMENT_CONTENT)} FROM comments WHERE repo = ? AND issue_number = ? "
        "ORDER BY created_at, comment_id", (repo, number))
    return [dict(r) for r in rows]


def crawl_state(conn: sqlite3.Connection, repo: str) -> dict[str, Any]:
    """The crawl state of one repository (empty dict before its first crawl)."""
    row = conn.execute("SELECT * FROM crawl_state WHERE repo = ?", (repo,)).fetchone()
    return dict(row) if row else {}


def set_crawl_state(conn: sqlite3.Connection, repo: str, **values: Any) -> None:
    """Update some columns of a repository's crawl state (call inside the page's transaction)."""
    conn.execute("INSERT OR IGNORE INTO crawl_state(repo) VALUES (?)", (repo,))
    for key, value in values.items():
        if key not in {"since", "api", "complete", "probe_etag", "finished_at"}:
            raise ValueError(f"unknown crawl_state column {key}")
        conn.execute(f"UPDATE crawl_state SET {key} = ? WHERE repo = ?", (value, repo))


def cached_etag(conn: sqlite3.Connection, key: str) -> str | None:
    """The ETag last seen for a request key, if any."""
    row = conn.execute("SELECT etag FROM http_cache WHERE key = ?", (key,)).fetchone()
    return row["etag"] if row else None


def cache_etag(conn: sqlite3.Connection, key: str, etag: str, fetched_at: str) -> None:
    conn.execute("INSERT OR REPLACE INTO http_cache(key, etag, fetched_at) VALUES (?, ?, ?)", (key, etag, fetched_at))


def thread_keys(conn: sqlite3.Connection) -> set[tuple[str, int]]:
    """``(repo casefolded, number)`` of every stored thread: the key gold defects join on.

    GitHub treats owner and repository names case-insensitively and published sheets do not
    always keep GitHub's spelling, so joins compare casefolded names.
    """
    return {(r.casefold(), int(n)) for r, n in conn.execute("SELECT repo, number FROM issues")}
