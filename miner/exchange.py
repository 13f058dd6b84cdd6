"""Moving threads in and out of a store: export (parquet / jsonl / csv), JSONL and Denchmark import.

Exports hold content columns only (``miner.store.ISSUE_CONTENT`` / ``COMMENT_CONTENT``), never
fetch metadata, in a fixed order (issues by repo and number; comments by repo, issue number and
comment id), so two stores with the same threads export byte-identical JSONL and CSV however
the threads were obtained. ``labels`` and ``reactions`` stay JSON text in every format.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from miner import store
from miner.denchmark import ArchiveStats, read_archive
from reeng.errors import ReengError
from reeng.outputs import staged_dir

FORMATS = ("parquet", "jsonl", "csv")


def _rows(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")]


def export_store(conn: sqlite3.Connection, out: Path, fmt: str = "parquet") -> dict[str, int]:
    """Write ``issues.<fmt>`` and ``comments.<fmt>`` into ``out`` (atomically); return row counts."""
    if fmt not in FORMATS:
        raise ReengError(f"{fmt!r}: unknown export format (expected {', '.join(FORMATS)})")
    tables = {
        "issues": (_rows(conn, "issues", store.ISSUE_CONTENT, "repo, number"), store.ISSUE_CONTENT),
        "comments": (_rows(conn, "comments", store.COMMENT_CONTENT, "repo, issue_number, comment_id"),
                     store.COMMENT_CONTENT),
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
            for col in ("number", "comments_count", "issue_number", "comment_id"):
                if col in frame:
                    frame[col] = frame[col].astype("Int64")
            if fmt == "csv":
                frame.to_csv(path, index=False, lineterminator="\n")
            else:
                frame.to_parquet(path, index=False)
    return {name: len(rows) for name, (rows, _) in tables.items()}


def import_jsonl(folder: Path, conn: sqlite3.Connection) -> dict[str, int]:
    """Read an export (``issues.jsonl`` + ``comments.jsonl``) back into a store."""
    paths = {name: Path(folder) / f"{name}.jsonl" for name in ("issues", "comments")}
    for path in paths.values():
        if not path.is_file():
            raise ReengError(f"{path}: missing (expected an export made with --format jsonl)")
    comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
    issues = []
    for name, path in paths.items():
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    key = (row["repo"], row["number"] if name == "issues" else row["issue_number"])
                except (ValueError, KeyError, TypeError):
                    raise ReengError(f"{path}:{line_no}: not an exported {name[:-1]} row") from None
                if name == "issues":
                    issues.append(row)
                else:
                    comments.setdefault(key, []).append(row)
    source = f"jsonl:{Path(folder).name}"
    with store.transaction(conn):
        for issue in issues:
            issue["comments"] = comments.pop((issue["repo"], issue["number"]), [])
            store.write_thread(conn, issue, source=source)
    orphans = sum(len(v) for v in comments.values())
    if orphans:
        raise ReengError(f"{paths['comments']}: {orphans} comments belong to no issue in {paths['issues']}")
    return {"issues": len(issues), "comments": sum(len(i["comments"]) for i in issues)}


def import_denchmark(path: Path, conn: sqlite3.Connection, repos: Iterable[str] | None = None,
                     limit: int | None = None, progress: bool = True) -> tuple[dict[str, int], ArchiveStats]:
    """Read the Denchmark archive in place into a store, committing in batches of a few hundred threads."""
    threads, stats = read_archive(path, repos, limit)
    counts = {"issues": 0, "comments": 0}
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with store.transaction(conn):
            for thread in batch:
                store.write_thread(conn, thread, source="denchmark")
        batch.clear()

    with Progress(transient=True, disable=not progress, console=Console(stderr=True)) as bar:
        task = bar.add_task("denchmark", total=limit)
        for thread in threads:
            batch.append(thread)
            counts["issues"] += 1
            counts["comments"] += len(thread["comments"])
            bar.advance(task)
            if len(batch) >= 500:
                flush()
        flush()
    return counts, stats
