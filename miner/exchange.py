"""Moving threads in and out of a store: export (parquet / jsonl / csv), JSONL and Denchmark import.

Exports hold content columns only (``miner.store.ISSUE_CONTENT`` / ``COMMENT_CONTENT``), never
fetch metadata, in a fixed order (issues by repo and number; comments by repo, issue number and
comment id), so two stores with the same threads export byte-identical JSONL and CSV however
the threads were obtained. ``labels`` and ``reactions`` stay JSON text in every format.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from miner import store
from miner.denchmark import ArchiveStats, check_limit, read_archive
from reeng.errors import ReengError
from reeng.outputs import spreadsheet_safe, staged_dir
from reeng.progress import progress_bar

FORMATS = ("parquet", "jsonl", "csv")


def _rows(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")]


def export_store(conn: sqlite3.Connection, out: Path, fmt: str = "parquet") -> dict[str, int]:
    """Write ``issues``, ``comments``, ``events`` and ``fixes`` (``.<fmt>``) into ``out`` atomically; return row counts."""
    if fmt not in FORMATS:
        raise ReengError(f"{fmt!r}: unknown export format (expected {', '.join(FORMATS)})")
    tables = {
        "issues": (_rows(conn, "issues", store.ISSUE_CONTENT, "repo, number"), store.ISSUE_CONTENT),
        "comments": (_rows(conn, "comments", store.COMMENT_CONTENT, "repo, issue_number, comment_id"),
                     store.COMMENT_CONTENT),
        "events": (_rows(conn, "events", store.EVENT_CONTENT, "repo, issue_number, created_at, event_id"),
                   store.EVENT_CONTENT),
        "fixes": (_rows(conn, "fixes", store.FIX_CONTENT, "repo, issue_number, kind, fix_repo, fix_ref"),
                  store.FIX_CONTENT),
    }
    with staged_dir(out) as staging:
        for name, (rows, columns) in tables.items():
            path = staging / f"{name}.{fmt}"
            if fmt == "jsonl":
                with path.open("w", encoding="utf-8", newline="\n") as fh:
                    for row in rows:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            import pandas as pd

            frame = pd.DataFrame(rows, columns=list(columns))
            for col in ("number", "comments_count", "issue_number", "comment_id", "will_close", "additions",
                        "deletions", "patch_truncated"):
                if col in frame:
                    frame[col] = frame[col].astype("Int64")
            if fmt == "csv":  # opened in spreadsheets: text that would run as a formula is escaped
                spreadsheet_safe(frame).to_csv(path, index=False, lineterminator="\n")
            else:
                frame.to_parquet(path, index=False)
    return {name: len(rows) for name, (rows, _) in tables.items()}


def _jsonl_rows(path: Path, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of an exported JSONL file, each row checked: one clear error per bad line."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            where = f"{path}:{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ReengError(f"{where}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ReengError(f"{where}: not an exported {kind} row (not JSON)") from None
            if not isinstance(row, dict):
                raise ReengError(f"{where}: not an exported {kind} row (not a JSON object)")
            numbers = ("number",) if kind == "issue" else ("issue_number", "comment_id")
            for key in numbers:
                if not isinstance(row.get(key), int) or isinstance(row.get(key), bool):
                    raise ReengError(f"{where}: {key} {row.get(key)!r} is not an integer")
            if not isinstance(row.get("repo"), str) or not store.REPO_NAME.match(row["repo"]):
                raise ReengError(f"{where}: repo {row.get('repo')!r} is not OWNER/REPO")
            yield line_no, row


def import_jsonl(folder: Path, conn: sqlite3.Connection) -> dict[str, int]:
    """Read an export (``issues.jsonl`` + ``comments.jsonl``) back into a store, in one transaction."""
    if not Path(folder).is_dir():
        raise ReengError(f"{folder}: no such folder (expected an export made with --format jsonl)")
    paths = {name: Path(folder) / f"{name}.jsonl" for name in ("issues", "comments")}
    for path in paths.values():
        if not path.is_file():
            raise ReengError(f"{path}: missing (expected an export made with --format jsonl)")
    comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
    issues = [row for _, row in _jsonl_rows(paths["issues"], "issue")]
    for _, row in _jsonl_rows(paths["comments"], "comment"):
        comments.setdefault((row["repo"], row["issue_number"]), []).append(row)
    orphans = sum(n for key, n in ((k, len(v)) for k, v in comments.items())
                  if key not in {(i["repo"], i["number"]) for i in issues})
    if orphans:
        raise ReengError(f"{paths['comments']}: {orphans} comments belong to no issue in {paths['issues']}")
    source = f"jsonl:{Path(folder).name}"
    with store.transaction(conn):
        for issue in issues:
            issue["comments"] = comments.get((issue["repo"], issue["number"]), [])
            store.write_thread(conn, issue, source=source)
    return {"issues": len(issues), "comments": sum(len(i["comments"]) for i in issues)}


def check_denchmark_import(path: Path | str, repos: Iterable[str] | str | None = None,
                           limit: int | None = None) -> tuple[Path, list[str] | None]:
    """The archive and the repositories of a Denchmark import, checked before a store is opened (``reeng
    import denchmark`` and ``Corpus.import_denchmark``): every name OWNER/REPO (one name alone is one
    repository), an archive that exists, a limit of 1 or more."""
    names = [repos] if isinstance(repos, str) else repos
    wanted = None if names is None else [store.check_repo_name(r.strip() if isinstance(r, str) else r) for r in names]
    if not Path(path).is_file():
        raise ReengError(f"{path}: no such archive")
    check_limit(limit)
    return Path(path), wanted


def import_denchmark(path: Path, conn: sqlite3.Connection, repos: Iterable[str] | None = None,
                     limit: int | None = None, progress: bool = True,
                     require_all: bool = False) -> tuple[dict[str, int], ArchiveStats]:
    """Read the Denchmark archive in place into a store, all or nothing (one transaction).

    A truncated archive commits nothing and says so: a store never holds an unknown part of an
    archive. ``require_all``: a ``repos`` entry the archive does not hold is an error too (the
    user typed it); the study's stage keeps whichever gold repositories the archive has.
    """
    path, repos = check_denchmark_import(path, repos, limit)
    threads, stats = read_archive(path, repos, limit)
    counts = {"issues": 0, "comments": 0}
    found: set[str] = set()
    try:
        with store.transaction(conn), progress_bar(progress) as bar:
            task = bar.add_task("denchmark", total=limit)
            for thread in threads:
                store.write_thread(conn, thread, source="denchmark")
                found.add(thread["repo"].casefold())
                counts["issues"] += 1
                counts["comments"] += len(thread["comments"])
                bar.advance(task)
            # with a limit reached, the archive was not read to its end: a repository not met yet may follow
            if limit is None or counts["issues"] < limit:
                stats.lacking = [r for r in repos or [] if r.casefold() not in found]
            if stats.lacking and require_all:
                raise ReengError(f"{', '.join(stats.lacking)}: not in the archive {Path(path).name}")
    except ReengError as exc:
        raise ReengError(f"{exc}; nothing was imported ({counts['issues']} threads read were rolled back)") from None
    return counts, stats
