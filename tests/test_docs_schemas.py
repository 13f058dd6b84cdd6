"""docs/schemas.md names every column of every table the code writes, and no column the code does not write.

The page is the contract between layers; these tests read it and compare it with the schemas in the code, so a
column added, renamed or dropped on either side fails here instead of drifting.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[1] / "docs" / "schemas.md").read_text()


def _section(heading: str) -> str:
    """The text under the ``## heading`` (up to the next ``## ``)."""
    start = DOC.index(f"\n## {heading}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end >= 0 else None]


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and braces."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "({"
        depth -= ch in ")}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in parts + [cur] if p.strip()]


def _signatures(text: str) -> dict[str, list[str]]:
    """``name(col, col TYPE, ...)`` written in backticks or at the start of a bullet -> its column names."""
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"`(\w+)\(", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        found[m.group(1)] = [re.match(r"\w+", p).group(0) for p in _split_top(text[m.end():i - 1])]
    return found


def _table_after(text: str, anchor: str) -> list[str]:
    """The first column of the first Markdown table after ``anchor`` (``owner, repo`` cells split)."""
    rest = text[text.index(anchor):]
    rows = re.findall(r"^\| ([^|]+?) \|", rest[rest.index("| column |"):].split("\n\n")[0], re.M)
    return [c.strip("` ") for cell in rows[2:] for c in cell.split(",") if c.strip("` ")]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


@pytest.fixture()
def store(tmp_path):
    from miner.store import open_store
    from taxonomy import annotate, annotate_studio, predictions

    conn = open_store(tmp_path / "s.sqlite")
    predictions.ensure_table(conn)
    annotate.ensure_human_labels(conn)
    conn.execute(annotate.QUEUED_SCHEMA)
    conn.execute(annotate_studio.ANNOTATIONS_SCHEMA)
    yield conn
    conn.close()


def test_store_tables_match_the_page(store):
    documented = _signatures(_section("Store"))
    documented.update({k: v for k, v in _signatures(_section("Predictions")).items()
                       if k in {"human_labels", "queued_threads"}})
    tables = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}
    assert tables - {"predictions", "human_annotations"} <= set(documented), "a store table the page does not describe"
    for table in tables - {"predictions", "human_annotations", "human_labels"}:
        assert documented[table] == _columns(store, table), table
    # human_labels: the sheet columns, then the provenance columns `annotate pull` adds (its own table on the page)
    studio = _table_after(_section("Human labels from Label Studio"), "adds three")
    assert _columns(store, "human_labels") == documented["human_labels"] + [c for c in studio if c != "provenance"]
    assert _table_after(_section("Predictions"), "Created by") == _columns(store, "predictions")
    annotations = _table_after(_section("Human labels from Label Studio"), "`human_annotations`")
    assert sorted(annotations) == sorted(_columns(store, "human_annotations"))


def test_archive_table_matches_the_page(tmp_path):
    from miner.archive import SCHEMA

    conn = sqlite3.connect(tmp_path / "a.sqlite")
    conn.executescript(SCHEMA)
    assert _signatures(_section("Store"))["responses"] == _columns(conn, "responses")


def test_export_columns_are_the_store_content_columns():
    from miner import store

    documented = _signatures(_section("Store"))
    for table, content in (("issues", store.ISSUE_CONTENT), ("comments", store.COMMENT_CONTENT),
                           ("events", store.EVENT_CONTENT), ("fixes", store.FIX_CONTENT)):
        assert [c for c in documented[table] if c not in (*store.FETCH_METADATA, "issue_id")] == list(content), table


def test_defect_tables_match_the_page():
    from taxonomy.gold import DEFECT_SCHEMA, NON_REENGINEERING_SCHEMA

    section = _section("Defect table")
    assert _table_after(section, "One row per defect") == list(DEFECT_SCHEMA)
    listed = re.search(r"`non_reengineering.parquet`[^:]*\):(.*?)\.\n", section, re.S).group(1)
    assert [c.strip() for c in listed.split(",")] == list(NON_REENGINEERING_SCHEMA)


def test_release_tables_match_the_page():
    from analysis.release import DEFECT_LABEL_COLUMNS, FILTER_DECISION_COLUMNS

    section = _section("Dataset release")
    assert _table_after(section, "`defect_labels`") == list(DEFECT_LABEL_COLUMNS)
    assert _table_after(section, "`filter_decisions`") == list(FILTER_DECISION_COLUMNS)


def test_stats_json_keys_match_the_page():
    from dataclasses import fields

    from analysis.stats import ChiSquare

    listed = re.search(r"`stats.json`: `\{table: \{(.*?)\}\}`", _section("Analysis outputs"), re.S).group(1)
    assert [c.strip() for c in listed.split(",")] == [f.name for f in fields(ChiSquare)]


def test_gold_eval_keys_match_the_page():
    """The keys of the document `gold_eval` builds (read from its source: running it trains models)."""
    import ast
    import inspect

    from taxonomy import classify

    tree = ast.parse(inspect.getsource(classify.gold_eval))
    built = next(n.value for n in ast.walk(tree) if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "result")
    keys = {k.value for k in built.keys} | {n.slice.value for n in ast.walk(tree) if isinstance(n, ast.Subscript)
                                             and getattr(n.value, "id", "") == "result" and isinstance(n.slice, ast.Constant)}
    listed = re.search(r"`classify/gold_eval.json` is `\{(.*?)\}`\n", _section("Human labels from Label Studio"), re.S).group(1)
    top, depth = set(), 0
    for m in re.finditer(r'[{}]|"(\w+)"', listed):
        depth += {"{": 1, "}": -1}.get(m.group(0), 0)
        if m.group(1) and depth == 0:
            top.add(m.group(1))
    assert top == keys
