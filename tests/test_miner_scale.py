"""The miner at GitHub scale, over real HTTP against the local server (synthetic corpora, in process):
64-bit ids, repository identity, issues edited mid-crawl, deleted and transferred issues, fixes."""

from __future__ import annotations

import json
import sqlite3

import pytest

from miner import payloads
from miner.client import GitHubClient, Politeness
from miner.crawl import mine
from miner.store import open_store, save_thread, transaction, upsert_repository
from tests.miner_helpers import FAKE_TOKEN, build_corpus, export_text, served, stamp, synthetic_thread

BIG = 2_250_077_004  # a real-world comment id above 2^31 - 1


def crawl(url, store, repos, **options):
    """Mine in this process (fast); return the run's statistics and failures."""
    client = GitHubClient(url, [FAKE_TOKEN], politeness=Politeness(secondary_wait=0.05, backoff=0.01))
    conn = open_store(store)
    try:
        failures = mine(client, conn, list(repos), progress=False, **options)
    finally:
        conn.close()
    return client.stats, failures


def rows(store, sql, *args):
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite", {"acme/zoo": 12, "acme/detector": 5},
                        long_thread=3)
    conn = open_store(path)
    thread = synthetic_thread("acme/zoo", 13, 2)
    thread["comments"][0]["comment_id"] = BIG
    thread["comments"][1]["comment_id"] = 2**53 + 7
    save_thread(conn, thread, source="synthetic")
    conn.close()
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Two repositories with ordinary ids (identity tests must not trip over 64-bit ids)."""
    return build_corpus(tmp_path_factory.mktemp("plain") / "corpus.sqlite", {"acme/zoo": 13, "acme/detector": 5},
                        long_thread=3)


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_comment_and_issue_ids_above_2_31(corpus, tmp_path, api):
    with served(corpus) as url:
        stats, failures = crawl(url, tmp_path / "m.sqlite", ["acme/zoo"], api=api)
    assert failures == {}
    ids = {r[0] for r in rows(tmp_path / "m.sqlite", "SELECT comment_id FROM comments WHERE issue_number = 13")}
    assert ids == {BIG, 2**53 + 7}
    issue_ids = [r[0] for r in rows(tmp_path / "m.sqlite", "SELECT issue_id FROM issues")]
    assert all(i is not None and i > 2**31 for i in issue_ids)


def test_a_missing_full_database_id_is_kept_under_a_derived_id():
    node = {"id": "IC_kwDOabc", "fullDatabaseId": None, "author": None, "body": "x", "createdAt": stamp(1)}
    first, again = payloads.graphql_comment(node), payloads.graphql_comment(dict(node))
    assert first["comment_id"] == again["comment_id"] < 0  # stable, and never a real (positive) id
    assert payloads.graphql_comment({**node, "fullDatabaseId": str(BIG)})["comment_id"] == BIG


def test_names_are_case_insensitive_and_never_duplicate_threads(plain, tmp_path):
    store = tmp_path / "m.sqlite"
    with served(plain) as url:
        crawl(url, store, ["acme/zoo"])
        _, failures = crawl(url, store, ["ACME/Zoo", "acme/ZOO"])
    assert failures == {}
    assert rows(store, "SELECT DISTINCT repo FROM issues") == [("acme/zoo",)]
    assert rows(store, "SELECT count(*) FROM issues")[0][0] == 13
    node_id, database_id = rows(store, "SELECT node_id, database_id FROM repositories WHERE repo = 'acme/zoo'")[0]
    assert node_id and database_id


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_a_renamed_repository_is_followed_and_its_threads_move(plain, tmp_path, api):
    store = tmp_path / "m.sqlite"
    with served(plain) as url:
        crawl(url, store, ["acme/zoo"], api=api)
    conn = sqlite3.connect(store)  # another layer's table joined on (repo, number)
    conn.execute("CREATE TABLE predictions (repo TEXT, number INTEGER, label TEXT)")
    conn.execute("INSERT INTO predictions VALUES ('acme/zoo', 3, 'x')")
    conn.commit()
    conn.close()
    with served(plain, "rename=acme/zoo>newco/zoo-v2") as url:
        stats, failures = crawl(url, store, ["acme/zoo"], api=api)
        _, again = crawl(url, store, ["acme/zoo", "newco/zoo-v2"], api=api)
    assert failures == again == {}
    assert stats.renamed == {"acme/zoo": "newco/zoo-v2"}
    assert rows(store, "SELECT DISTINCT repo FROM issues") == [("newco/zoo-v2",)]
    assert rows(store, "SELECT count(*) FROM issues")[0][0] == 13
    assert rows(store, "SELECT repo FROM predictions") == [("newco/zoo-v2",)]
    assert rows(store, "SELECT alias, repo, reason FROM repository_aliases") == [("acme/zoo", "newco/zoo-v2", "renamed")]


def _burst_corpus(path):
    """150 issues updated in one second, then 10 later: listing pages fall inside the second."""
    conn = open_store(path)
    with transaction(conn):
        upsert_repository(conn, {"repo": "acme/burst", "stars": 10})
    for number in range(1, 161):
        thread = synthetic_thread("acme/burst", number, number % 3)
        thread["updated_at"] = "2021-03-01T10:00:00Z" if number <= 150 else stamp(100 + number)
        save_thread(conn, thread, source="synthetic")
    conn.close()
    return path


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_issues_edited_and_opened_mid_crawl_are_not_lost(tmp_path, api):
    corpus = _burst_corpus(tmp_path / "burst.sqlite")
    # after the third listing (probe, first page, first page of the one-second window) the oldest
    # issue is edited (it leaves the window) and a new one is opened
    with served(corpus, "edit_after=3") as url:
        _, failures = crawl(url, tmp_path / "m.sqlite", ["acme/burst"], api=api)
        expected = url.server.corpus.save(tmp_path / "now.sqlite")
    assert failures == {}
    assert rows(expected, "SELECT count(*) FROM issues")[0][0] == 161
    assert export_text(tmp_path / "m.sqlite", tmp_path / "a") == export_text(expected, tmp_path / "b")


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_deleted_and_transferred_issues_are_marked_and_kept(plain, tmp_path, api):
    store = tmp_path / "m.sqlite"
    with served(plain) as url:
        crawl(url, store, ["acme/zoo", "acme/detector"], api=api)
    with served(plain, "deleted=acme/zoo#3,transferred=acme/zoo#4>acme/detector") as url:
        stats, failures = crawl(url, store, ["acme/zoo"], api=api, check_removed=True)
    assert failures == {} and stats.removed == 2
    marked = rows(store, "SELECT number, removed, removed_at IS NOT NULL, moved_to, title FROM issues "
                         "WHERE repo = 'acme/zoo' AND removed IS NOT NULL ORDER BY number")
    assert marked == [(3, "deleted", 1, None, synthetic_thread("acme/zoo", 3, 0)["title"]),
                      (4, "transferred", 1, "acme/detector#6", synthetic_thread("acme/zoo", 4, 0)["title"])]
    assert rows(store, "SELECT count(*) FROM comments WHERE repo = 'acme/zoo' AND issue_number = 4")[0][0] == 4
    issues = [json.loads(line) for line in export_text(store, tmp_path / "x")[0].splitlines()]
    assert {(i["number"], i["removed"]) for i in issues if i["repo"] == "acme/zoo" and i["removed"]} == {
        (3, "deleted"), (4, "transferred")}


def _fixture_files(n: int, size: int = 0) -> list[dict]:
    body = "".join(f"+line {k} of a long change\n" for k in range(size // 26)) if size else "+x = 1\n-x = 0"
    return [{"filename": f"src/module_{n}_{k}.py", "status": "modified", "additions": 3 + k, "deletions": k,
             "patch": f"@@ -1 +1 @@\n{body}"} for k in range(2)]


@pytest.fixture(scope="module")
def fixes_corpus(tmp_path_factory):
    """Timelines and fixes written as fixtures: closers (pull request, commit), a pull request that
    says it closes the issue, a commit that mentions it, labels, and a mention that is no fix."""
    path = build_corpus(tmp_path_factory.mktemp("fixes") / "corpus.sqlite", {"acme/zoo": 8}, long_thread=3)
    conn = open_store(path)

    def event(n, k, kind, **extra):
        return {"event_id": f"E_{n}_{k}", "kind": kind, "actor": "maintainer", "created_at": stamp(50 + n, k),
                "label": None, "state_reason": None, "source_kind": None, "source_repo": None, "source_ref": None,
                "will_close": None, **extra}

    sha = "a" * 40
    timelines = {
        2: [event(2, 1, "labeled", label="bug"),
            event(2, 2, "cross-referenced", source_kind="issue", source_repo="acme/zoo", source_ref="5", will_close=0),
            event(2, 3, "closed", state_reason="completed", source_kind="pull", source_repo="acme/zoo", source_ref="50")],
        3: [event(3, k, "labeled" if k % 2 else "unlabeled", label=f"l{k}") for k in range(1, 7)]
           + [event(3, 8, "cross-referenced", source_kind="pull", source_repo="other/fork", source_ref="7", will_close=1),
              event(3, 9, "referenced", source_kind="commit", source_repo="acme/zoo", source_ref=sha)],
        4: [event(4, 1, "closed", state_reason="not_planned")],
        5: [event(5, 1, "closed", state_reason="completed", source_kind="commit", source_repo="acme/zoo",
                  source_ref="b" * 40)],
    }
    fixes = {2: [("pull", "acme/zoo", "50", "closer", _fixture_files(50))],
             3: [("pull", "other/fork", "7", "cross-referenced", _fixture_files(7)),
                 ("commit", "acme/zoo", sha, "referenced", _fixture_files(1))],
             5: [("commit", "acme/zoo", "b" * 40, "closer", _fixture_files(2, size=150_000))]}
    for number, events in timelines.items():
        thread = synthetic_thread("acme/zoo", number, number % 12)
        thread["events"] = events
        thread["state_reason"] = {2: "completed", 4: "not_planned"}.get(number)
        thread["fixes"] = [payloads.fix_files({"kind": k, "fix_repo": r, "fix_ref": ref, "link": link}, files,
                                              limit=10**9) for k, r, ref, link, files in fixes.get(number, [])]
        save_thread(conn, thread, source="fixture")
    with transaction(conn):
        upsert_repository(conn, {"repo": "other/fork", "stars": 1})
    conn.close()
    return path


def test_fixes_and_timeline_events_are_mined(fixes_corpus, tmp_path):
    store = tmp_path / "m.sqlite"
    with served(fixes_corpus) as url:
        plain, _ = crawl(url, tmp_path / "plain.sqlite", ["acme/zoo"], page_size=5)
        stats, failures = crawl(url, store, ["acme/zoo"], page_size=5, fixes=True)
    assert failures == {}
    from miner.exchange import export_store

    exported = {}
    for name, path in (("mined", store), ("corpus", fixes_corpus)):
        conn = open_store(path, create=False)
        export_store(conn, tmp_path / name, "jsonl")
        conn.close()
        exported[name] = {t: (tmp_path / name / f"{t}.jsonl").read_text().splitlines() for t in ("events", "fixes")}
    assert exported["mined"]["events"] == exported["corpus"]["events"] and len(exported["mined"]["events"]) == 13
    mined = [json.loads(line) for line in exported["mined"]["fixes"]]
    corpus = [json.loads(line) for line in exported["corpus"]["fixes"]]
    assert [(f["issue_number"], f["kind"], f["fix_ref"], f["link"]) for f in mined] == [
        (f["issue_number"], f["kind"], f["fix_ref"], f["link"]) for f in corpus]
    big = next(f for f in mined if f["issue_number"] == 5)
    assert big["patch_truncated"] == 1 and 199_000 < len(big["patch"].encode()) <= payloads.PATCH_LIMIT
    assert big["additions"] == 7 and json.loads(big["files"])[1]["path"] == "src/module_2_1.py"
    small = [f for f in mined if f["issue_number"] != 5]
    assert small == [f for f in corpus if f["issue_number"] != 5]
    assert rows(store, "SELECT state_reason FROM issues WHERE number IN (2, 4) ORDER BY number") == [("completed",), ("not_planned",)]
    # cost: one REST request per linked fix, timelines ride in the same GraphQL pages (plus one
    # follow-up query for the issue with more than a page of events)
    assert stats.fix_requests == 4 and stats.fixes == 4
    assert stats.requests - plain.requests <= stats.fix_requests + 1
