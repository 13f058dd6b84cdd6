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
import logging
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reeng.errors import ReengError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x7265656E  # "reen": PRAGMA application_id, the marker of a reeng store
STORE_WAIT_ENV = "REENG_STORE_WAIT"  # seconds to wait for a store another process is writing (default 30)
log = logging.getLogger("reeng.miner")
REPO_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")

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
    fetched_at  TEXT,
    node_id     TEXT,                      -- GitHub's global node id (stable across renames)
    database_id INTEGER                    -- GitHub's 64-bit repository id (stable across renames)
);
CREATE TABLE IF NOT EXISTS repository_aliases (
    alias   TEXT PRIMARY KEY,              -- a name casefolded: as typed, or a former name
    repo    TEXT NOT NULL,                 -- the canonical "owner/name" it resolves to
    reason  TEXT NOT NULL,                 -- spelling / renamed
    seen_at TEXT
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
    state_reason   TEXT,                   -- completed / not_planned / reopened (GitHub's stateReason)
    removed        TEXT,                   -- deleted / transferred, once a re-fetch says so (content kept)
    removed_at     TEXT,                   -- when the miner saw it removed
    moved_to       TEXT,                   -- "owner/name#number" of a transferred issue
    source         TEXT,                   -- fetch metadata from here on
    fetched_at     TEXT,
    etag           TEXT,
    issue_id       INTEGER,                -- GitHub's 64-bit issue id
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
CREATE TABLE IF NOT EXISTS events (
    repo         TEXT NOT NULL,
    issue_number INTEGER NOT NULL,
    event_id     TEXT NOT NULL,            -- GitHub's node id of the timeline item
    kind         TEXT NOT NULL,            -- closed / cross-referenced / referenced / labeled / unlabeled
    actor        TEXT,
    created_at   TEXT,
    label        TEXT,                     -- labeled / unlabeled: the label's name
    state_reason TEXT,                     -- closed: completed / not_planned
    source_kind  TEXT,                     -- pull / commit / issue: what closed or referenced the issue
    source_repo  TEXT,                     -- "owner/name" of that pull request, commit or issue
    source_ref   TEXT,                     -- its number (pull, issue) or commit SHA
    will_close   INTEGER,                  -- cross-referenced: 1 when the pull request closes the issue
    PRIMARY KEY (repo, issue_number, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_issue ON events (repo, issue_number, created_at);
CREATE TABLE IF NOT EXISTS fixes (
    repo          TEXT NOT NULL,
    issue_number  INTEGER NOT NULL,
    kind          TEXT NOT NULL,           -- pull / commit
    fix_repo      TEXT NOT NULL,           -- "owner/name" holding the pull request or commit
    fix_ref       TEXT NOT NULL,           -- pull request number or commit SHA
    link          TEXT NOT NULL,           -- closer / cross-referenced / referenced: how the timeline links it
    url           TEXT,
    files         TEXT NOT NULL DEFAULT '[]',  -- JSON array of {path, status, additions, deletions}
    additions     INTEGER,
    deletions     INTEGER,
    patch         TEXT,                    -- unified diff of the files, at most 200 KB (UTF-8)
    patch_truncated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repo, issue_number, kind, fix_repo, fix_ref)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    command      TEXT NOT NULL,            -- mine / import denchmark / import jsonl / import archive
    tool_version TEXT NOT NULL,
    args         TEXT NOT NULL,            -- JSON array of the command line (never a token)
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL,            -- running / ok / failed
    stats        TEXT                      -- JSON object: the run's statistics
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
                 "updated_at", "closed_at", "comments_count", "reactions", "url", "state_reason", "removed",
                 "removed_at", "moved_to")
COMMENT_CONTENT = ("repo", "issue_number", "comment_id", "author", "body", "created_at", "updated_at")
EVENT_CONTENT = ("repo", "issue_number", "event_id", "kind", "actor", "created_at", "label", "state_reason",
                 "source_kind", "source_repo", "source_ref", "will_close")
FIX_CONTENT = ("repo", "issue_number", "kind", "fix_repo", "fix_ref", "link", "url", "files", "additions",
               "deletions", "patch", "patch_truncated")
FETCH_METADATA = ("source", "fetched_at", "etag")
# Columns a version-1 store lacks; added in place when such a store is opened.
ADDED_COLUMNS = {"repositories": ("node_id TEXT", "database_id INTEGER"),
                 "issues": ("state_reason TEXT", "removed TEXT", "removed_at TEXT", "moved_to TEXT",
                            "issue_id INTEGER")}


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


class StoreConnection(sqlite3.Connection):
    """A store's connection: knows its file, and checkpoints the WAL into it on close.

    Without the checkpoint, what was written while another connection (a notebook, a second
    command) had the store open can stay in ``-wal`` after close, and a copy of the ``.sqlite``
    file alone would silently miss it.
    """

    path: Path
    wait: float

    def close(self) -> None:
        try:
            if not self.in_transaction:
                self.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # already closed, or read-only: nothing to checkpoint
        super().close()


def store_wait() -> float:
    """Seconds to wait for a store locked by another process (``REENG_STORE_WAIT``, default 30)."""
    raw = os.environ.get(STORE_WAIT_ENV, "30")
    try:
        wait = float(raw)
        if wait < 0:
            raise ValueError
    except ValueError:
        raise ReengError(f"{STORE_WAIT_ENV}={raw!r}: expected a number of seconds >= 0") from None
    return wait


def open_store(path: Path | str, *, create: bool = True) -> StoreConnection:
    """Open (or create) a store; a file that is not a usable reeng store is one clear error naming it.

    Opening runs ``PRAGMA quick_check`` (damage anywhere in the file, not only its header, is
    caught before a command reads half of it) and checks the store's marker, so an SQLite file
    that is something else (a raw archive, another tool's database) is refused, never given
    reeng's tables. Version-1 stores are upgraded in place.
    """
    path = Path(path)
    if path.is_dir():
        raise ReengError(f"{path}: is a folder, expected a store file")
    fresh = not path.exists() or path.stat().st_size == 0
    if fresh and not create:
        raise ReengError(f"{path}: no such store" if not path.exists() else f"{path}: an empty file, not a reeng store")
    wait = store_wait()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=wait, factory=StoreConnection, check_same_thread=False)
        conn.path, conn.wait = path, wait
        conn.row_factory = sqlite3.Row
        _check_or_create(conn, path, fresh)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            sqlite3.Connection.close(conn)
        raise ReengError(f"{path}: not a usable store ({exc})") from None
    except ReengError:
        if conn is not None:
            sqlite3.Connection.close(conn)
        raise
    return conn


@contextmanager
def opened(path: Path | str, *, create: bool = True) -> Iterator[StoreConnection]:
    """A store for one command, closed (and checkpointed) at the end. A store file this command
    created is removed again when the command fails with no thread committed to it, so bad input
    (or a repository that cannot be read) never leaves an empty store; one that held data before,
    or received threads, is kept, with the command's ``runs`` row saying it failed. An interrupted
    command (SIGINT, or SIGTERM where the command records its run) keeps it: what it committed, and
    its ``runs`` row saying it was interrupted."""
    path = Path(path)
    existed = path.exists()
    conn = open_store(path, create=create)
    try:
        yield conn
    except BaseException as exc:
        empty = not existed and not isinstance(exc, KeyboardInterrupt) and not holds_threads(conn)
        conn.close()
        if empty:
            remove_database(path)
        raise
    conn.close()


def holds_threads(conn: sqlite3.Connection) -> bool:
    """Whether the store holds any thread (False for one too broken to say)."""
    try:
        return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM issues)").fetchone()[0])
    except sqlite3.Error:  # a store too broken to say holds nothing worth keeping
        return False


def remove_database(path: Path) -> None:
    """An SQLite file with its WAL and shared-memory files."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def _check_or_create(conn: StoreConnection, path: Path, fresh: bool) -> None:
    if not fresh:
        try:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise  # not SQLite at all: "not a usable store"
            problems = [str(exc)]
        if problems != ["ok"]:
            raise ReengError(f"{path}: the store is damaged (quick_check: {problems[0]}); restore it from a copy")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    marked = conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    if tables and not marked and "meta" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ReengError(f"{path}: an SQLite database but not a reeng store (its tables: {shown})")
    version = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None and not marked:
            raise ReengError(f"{path}: an SQLite database but not a reeng store (no schema_version in meta)")
        version = int(row[0]) if row else None
    if version is not None and version > SCHEMA_VERSION:
        raise ReengError(f"{path}: store schema version {version}, this reeng reads version {SCHEMA_VERSION}")
    if marked and version == SCHEMA_VERSION:
        return
    if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
        raise ReengError(f"{path}: cannot switch the store to WAL mode (read-only file?)")
    with transaction(conn):
        _create(conn)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _create(conn: sqlite3.Connection) -> None:
    """The tables (inside the caller's transaction), and the columns a version-1 store lacks."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``; if another process holds the store for long, say so and wait (``REENG_STORE_WAIT``)."""
    path, wait = getattr(conn, "path", "store"), getattr(conn, "wait", 30.0)
    quiet = min(wait, 1.0)  # short transactions of a concurrent writer pass without a word
    for timeout in (quiet, wait - quiet):
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        if timeout == quiet and wait > quiet:
            log.warning("%s is locked by another process writing to it (a crawl, an import, a classification); "
                        "waiting up to %g s more (set %s to change)", path, wait - quiet, STORE_WAIT_ENV)
    raise ReengError(f"{path}: still locked by another process after {wait:g} s (set {STORE_WAIT_ENV} to wait longer)")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic unit of work: committed as a whole or not at all (joins an open transaction).

    SQLite's "database or disk is full" becomes an error naming the store; nothing of the unit
    is written.
    """
    if conn.in_transaction:
        yield conn
        return
    try:
        _begin(conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.rollback()
        if "full" in str(exc):
            raise ReengError(f"{getattr(conn, 'path', 'store')}: database or disk is full; nothing of the "
                             "interrupted write was kept (free space and run again)") from None
        raise


def _json(value: Any, empty: str) -> str:
    if value is None:
        return empty
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any], verb: str = "INSERT OR REPLACE") -> None:
    conn.execute(f"{verb} INTO {table} ({', '.join(row)}) VALUES ({', '.join(f':{k}' for k in row)})", row)


def upsert_issue(conn: sqlite3.Connection, issue: dict[str, Any]) -> None:
    """Insert or replace one issue row (content and fetch metadata)."""
    row = {k: issue.get(k) for k in (*ISSUE_CONTENT, *FETCH_METADATA, "issue_id")}
    row["labels"] = _json(row["labels"], "[]")
    row["reactions"] = _json(row["reactions"], "{}")
    _insert(conn, "issues", row)


def replace_comments(conn: sqlite3.Connection, repo: str, number: int, comments: Iterable[dict[str, Any]]) -> int:
    """Make the stored comments of one issue exactly ``comments`` (edits and deletions included)."""
    conn.execute("DELETE FROM comments WHERE repo = ? AND issue_number = ?", (repo, number))
    count = 0
    for c in comments:
        row = {k: c.get(k) for k in (*COMMENT_CONTENT, *FETCH_METADATA)}
        row["repo"], row["issue_number"] = repo, number
        _insert(conn, "comments", row, "INSERT")
        count += 1
    return count


def replace_events(conn: sqlite3.Connection, repo: str, number: int, events: Iterable[dict[str, Any]]) -> None:
    """Make the stored timeline events of one issue exactly ``events``."""
    conn.execute("DELETE FROM events WHERE repo = ? AND issue_number = ?", (repo, number))
    for event in events:
        _insert(conn, "events", {**{k: event.get(k) for k in EVENT_CONTENT}, "repo": repo, "issue_number": number})


def replace_fixes(conn: sqlite3.Connection, repo: str, number: int, fixes: Iterable[dict[str, Any]]) -> None:
    """Make the stored fixes (linked pull requests and commits with their files) of one issue exactly ``fixes``."""
    conn.execute("DELETE FROM fixes WHERE repo = ? AND issue_number = ?", (repo, number))
    for fix in fixes:
        row = {**{k: fix.get(k) for k in FIX_CONTENT}, "repo": repo, "issue_number": number}
        row["files"] = _json(row["files"], "[]")
        row["patch_truncated"] = int(bool(row["patch_truncated"]))
        _insert(conn, "fixes", row)


def save_thread(conn: sqlite3.Connection, thread: dict[str, Any], *, source: str, fetched_at: str | None = None,
                etag: str | None = None) -> None:
    """Store one issue dict with its ``comments`` list atomically, replacing any earlier copy."""
    with transaction(conn):
        write_thread(conn, thread, source=source, fetched_at=fetched_at, etag=etag)


def write_thread(conn: sqlite3.Connection, thread: dict[str, Any], *, source: str, fetched_at: str | None = None,
                 etag: str | None = None) -> None:
    """Like :func:`save_thread` but inside the caller's transaction (a crawl commits a page at once).

    ``events`` and ``fixes``, when the thread has them, replace the stored ones; a thread
    fetched without its timeline leaves them as they were.
    """
    upsert_issue(conn, {**thread, "source": source, "fetched_at": fetched_at, "etag": etag})
    replace_comments(conn, thread["repo"], thread["number"],
                     ({**c, "source": source, "fetched_at": fetched_at} for c in thread.get("comments", [])))
    if "events" in thread:
        replace_events(conn, thread["repo"], thread["number"], thread["events"])
    if "fixes" in thread:
        replace_fixes(conn, thread["repo"], thread["number"], thread["fixes"])


def upsert_repository(conn: sqlite3.Connection, repo: dict[str, Any]) -> None:
    """Insert or update one repository row (``repo`` is "owner/name"); known ids are never erased."""
    owner, _, name = repo["repo"].partition("/")
    row = {"repo": repo["repo"], "owner": owner, "name": name,
           **{k: repo.get(k) for k in ("stars", "description", "created_at", "repo_type", "source", "fetched_at",
                                       "node_id", "database_id")}}
    keep = ("node_id", "database_id")
    updates = ", ".join(f"{k} = " + (f"coalesce(excluded.{k}, {k})" if k in keep else f"excluded.{k}")
                        for k in row if k != "repo")
    conn.execute(f"INSERT INTO repositories ({', '.join(row)}) VALUES ({', '.join(f':{k}' for k in row)}) "
                 f"ON CONFLICT(repo) DO UPDATE SET {updates}", row)


def check_repo_name(name: str) -> str:
    """``owner/repo`` or a clear error (before any request is made)."""
    if not isinstance(name, str) or not REPO_NAME.match(name):
        raise ReengError(f"{name!r}: not a repository name (expected OWNER/REPO)")
    return name



# -- repository identity ----------------------------------------------------------------------
def canonical_repo(conn: sqlite3.Connection, name: str) -> str:
    """The stored canonical ``owner/name`` a typed name stands for (case-insensitive, former names too)."""
    row = conn.execute("SELECT repo FROM repository_aliases WHERE alias = ?", (name.casefold(),)).fetchone()
    if row:
        return row[0]
    for table in ("repositories", "crawl_state", "issues"):
        row = conn.execute(f"SELECT repo FROM {table} WHERE lower(repo) = ? LIMIT 1", (name.casefold(),)).fetchone()
        if row:
            return row[0]
    return name


def table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables a store holds (other layers' tables appear once their first command wrote them)."""
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _tables_with(conn: sqlite3.Connection, column: str) -> list[str]:
    return [t for t in sorted(table_names(conn)) if column in {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}]


def rename_repo(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Move everything stored under ``old`` to ``new`` in every table with a ``repo`` column (other
    layers' tables included, so their joins on ``(repo, number)`` follow); rows already stored under
    ``new`` win over duplicates. Call inside a transaction."""
    for table in _tables_with(conn, "repo"):
        conn.execute(f"UPDATE OR IGNORE {table} SET repo = ? WHERE repo = ?", (new, old))
        conn.execute(f"DELETE FROM {table} WHERE repo = ?", (old,))
    owner, _, name = new.partition("/")
    conn.execute("UPDATE repositories SET owner = ?, name = ? WHERE repo = ?", (owner, name, new))


def adopt_identity(conn: sqlite3.Connection, typed: str, canonical: str, node_id: str | None,
                   database_id: int | None, seen_at: str) -> list[str]:
    """Record what GitHub says ``typed`` is; return the former names whose rows were moved to ``canonical``.

    Former names are found by the repository's ids (a rename or transfer) and by spelling (the
    same name in another case); each becomes an alias, so typing it again resolves at once.
    """
    with transaction(conn):
        former = {typed} if typed != canonical else set()
        if node_id or database_id is not None:
            former |= {r[0] for r in conn.execute(
                "SELECT repo FROM repositories WHERE repo != ? AND (node_id = ? OR database_id = ?)",
                (canonical, node_id, database_id))}
        former |= {r[0] for r in conn.execute("SELECT DISTINCT repo FROM issues WHERE lower(repo) = ? AND repo != ?",
                                              (canonical.casefold(), canonical))}
        moved = []
        for old in sorted(former):
            stored = any(conn.execute(f"SELECT 1 FROM {t} WHERE repo = ? LIMIT 1", (old,)).fetchone()
                         for t in ("issues", "repositories", "crawl_state"))
            if stored:
                rename_repo(conn, old, canonical)
                moved.append(old)
            reason = "spelling" if old.casefold() == canonical.casefold() else "renamed"
            conn.execute("INSERT OR REPLACE INTO repository_aliases(alias, repo, reason, seen_at) VALUES (?, ?, ?, ?)",
                         (old.casefold(), canonical, reason, seen_at))
        conn.execute("UPDATE repository_aliases SET repo = ? WHERE repo IN (SELECT repo FROM repository_aliases "
                     "WHERE alias = ?)", (canonical, canonical.casefold()))
        conn.execute("DELETE FROM repository_aliases WHERE alias = ?", (canonical.casefold(),))
        upsert_repository(conn, {**_repository_row(conn, canonical), "node_id": node_id, "database_id": database_id})
    return moved


def _repository_row(conn: sqlite3.Connection, repo: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM repositories WHERE repo = ?", (repo,)).fetchone()
    return dict(row) if row else {"repo": repo}


def mark_removed(conn: sqlite3.Connection, repo: str, number: int, how: str, when: str,
                 moved_to: str | None = None) -> None:
    """Mark a stored thread deleted or transferred (its content stays)."""
    with transaction(conn):
        conn.execute("UPDATE issues SET removed = ?, removed_at = ?, moved_to = ? WHERE repo = ? AND number = ?",
                     (how, when, moved_to, repo, number))


# -- run provenance ---------------------------------------------------------------------------
def start_run(conn: sqlite3.Connection, command: str, args: list[str], started_at: str) -> int:
    """Record a run as it starts (tool version, arguments); :func:`finish_run` completes it."""
    from reeng import __version__

    with transaction(conn):
        cur = conn.execute("INSERT INTO runs(command, tool_version, args, started_at, status) VALUES (?, ?, ?, ?, ?)",
                           (command, __version__, json.dumps(args), started_at, "running"))
    return int(cur.lastrowid)


def finish_run(conn: sqlite3.Connection, run_id: int, status: str, finished_at: str, stats: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute("UPDATE runs SET status = ?, finished_at = ?, stats = ? WHERE run_id = ?",
                     (status, finished_at, json.dumps(stats, sort_keys=True, default=str), run_id))


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
