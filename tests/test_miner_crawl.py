"""The crawler end to end over real HTTP against the local server (synthetic corpus, no shared data)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from miner.store import open_store, save_thread
from tests.miner_helpers import FAKE_TOKEN, FAST, build_corpus, export_text, reeng, served, synthetic_thread

REPOS = ("acme/detector", "acme/zoo")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite")


def mine(url, store, *extra, token=FAKE_TOKEN, repos=REPOS):
    result = reeng("mine", *repos, "--store", str(store), "--api-url", url, "--json", *FAST, *extra, token=token)
    stats = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, stats


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_mined_store_exports_exactly_the_corpus(corpus, tmp_path, api):
    with served(corpus, "pulls=4") as url:
        result, stats = mine(url, tmp_path / "mined.sqlite", "--api", api)
    assert result.returncode == 0, result.stderr
    assert export_text(tmp_path / "mined.sqlite", tmp_path / "a") == export_text(corpus, tmp_path / "b")
    assert stats["comments"] >= 230 and stats["failures"] == {}
    if api == "rest":
        assert stats["pulls_skipped"] == 8  # listed by REST, never stored
    else:
        # One probe per repository, 2-3 issue pages for acme/detector's 160 issues (pages overlap
        # by the issues of the last second), 1 for acme/zoo, 2 for the 230-comment thread's rest.
        assert stats["requests"] <= 2 + 3 + 1 + 2
    stars = sqlite3.connect(tmp_path / "mined.sqlite").execute(
        "SELECT stars FROM repositories WHERE repo = 'acme/detector'").fetchone()[0]
    assert stars == 5000


def test_unchanged_recrawl_is_only_304_and_changes_are_picked_up(corpus, tmp_path):
    store = tmp_path / "mined.sqlite"
    changed = tmp_path / "changed.sqlite"
    changed.write_bytes(corpus.read_bytes())
    with served(corpus) as url:
        first, _ = mine(url, store)
        assert first.returncode == 0, first.stderr
        again, stats = mine(url, store)
    assert again.returncode == 0
    assert stats["requests"] == stats["not_modified"] == len(REPOS)  # one conditional probe each
    assert stats["budget_used"] == 0 and stats["issues"] == 0

    conn = open_store(changed)
    thread = synthetic_thread("acme/zoo", 3, 4)
    thread["comments"].append({"comment_id": 99, "author": "late", "body": "fixed by upgrading", "created_at":
                               "2022-06-01T00:00:00Z", "updated_at": "2022-06-01T00:00:00Z"})
    thread.update(comments_count=5, updated_at="2022-06-01T00:00:00Z", state="closed")
    save_thread(conn, thread, source="edit")
    save_thread(conn, {**synthetic_thread("acme/zoo", 26, 1), "updated_at": "2022-06-02T00:00:00Z"}, source="edit")
    conn.close()
    port = int(url.rsplit(":", 1)[1])  # same base URL: GitHub's URLs inside answers do not move either
    with served(changed, port=port) as url:
        third, stats = mine(url, store, "--api", "rest")
    assert third.returncode == 0, third.stderr
    assert stats["repositories"] == {"acme/detector": "unchanged", "acme/zoo": "complete"}
    assert export_text(store, tmp_path / "a") == export_text(changed, tmp_path / "b")
    # Only the two changed threads (and the page boundary, unchanged, skipped) were fetched.
    assert stats["issues"] == 2


def test_faults_are_survived_and_logged(corpus, tmp_path):
    spec = "5xx=0.06,secondary403=0.04,secondary429_noretry=0.04,reset=0.04,retry_after=0,seed=3"
    with served(corpus, spec) as url:
        result, stats = mine(url, tmp_path / "mined.sqlite", "--api", "rest", "--attempts", "10")
    assert result.returncode == 0, result.stderr
    assert stats["retries"] > 0 and stats["waits"] == result.stderr.count("waiting ")
    assert export_text(tmp_path / "mined.sqlite", tmp_path / "a") == export_text(corpus, tmp_path / "b")


def test_token_never_written_anywhere(corpus, tmp_path):
    store, archive, log = tmp_path / "mined.sqlite", tmp_path / "raw.sqlite", tmp_path / "mine.log"
    with served(corpus, "5xx=0.05,secondary403=0.05,retry_after=0,seed=5") as url:
        result, _ = mine(url, store, "--archive", str(archive), "--log", str(log), "--api", "rest")
        assert result.returncode == 0, result.stderr
    with served(corpus, f"bad_token={FAKE_TOKEN}") as url:  # the error path: a rejected token
        bad = reeng("mine", "acme/zoo", "--store", str(tmp_path / "bad.sqlite"), "--api-url", url, *FAST,
                    "--archive", str(archive), "--log", str(log))
    export_text(store, tmp_path / "export")
    assert bad.returncode == 2 and "GitHub rejected the token (401 Bad credentials)" in bad.stderr
    from miner.archive import read_archive

    exchanges = list(read_archive(archive))
    assert len(exchanges) > 100 and all("authorization" not in {k.lower() for k in e["request_headers"]} for e in exchanges)
    for path in [store, archive, log, *tmp_path.joinpath("export").iterdir(), *tmp_path.glob("*-wal")]:
        assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    assert FAKE_TOKEN not in result.stdout + result.stderr + bad.stdout + bad.stderr



@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_credentials_in_the_api_url_are_written_nowhere(corpus, tmp_path, api):
    """http://user:secret@host: the credentials are dropped once, where the URL is parsed (GraphQL URLs kept them)."""
    secret = "s3cretPassw0rdXYZ"
    store, archive, log = tmp_path / "mined.sqlite", tmp_path / "raw.sqlite", tmp_path / "mine.log"
    with served(corpus, "5xx=0.05,seed=4") as url:
        result, stats = mine(url.replace("http://", f"http://me:{secret}@"), store, "--api", api,
                             "--archive", str(archive), "--log", str(log), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert export_text(store, tmp_path / "a") == export_text(corpus, tmp_path / "b")
    from miner.archive import read_archive

    exchanges = list(read_archive(archive))
    assert len(exchanges) == stats["requests"] and all("@" not in e["url"] for e in exchanges)
    assert all(secret not in json.dumps(e) for e in exchanges)  # decompressed bodies included
    for path in [store, archive, log, *tmp_path.glob("*-wal")]:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout + result.stderr
    assert "warning: --api-url: the credentials in the URL are not used" in result.stderr

def test_bad_inputs_give_one_clear_error_and_keep_other_repositories(corpus, tmp_path):
    store = tmp_path / "mined.sqlite"
    with served(corpus, f"disabled=acme/zoo,bad_token=wrong-{FAKE_TOKEN[:4]}") as url:
        malformed, _ = mine(url, store, repos=("not-a-repo",))
        partial, stats = mine(url, store, repos=("acme/ghost", "acme/zoo", "acme/detector"))
        unauthorized, _ = mine(url, tmp_path / "other.sqlite", token=f"wrong-{FAKE_TOKEN[:4]}")
    assert malformed.returncode == 2 and "'not-a-repo': not a repository name" in malformed.stderr
    assert "Traceback" not in malformed.stderr + partial.stderr + unauthorized.stderr
    assert partial.returncode == 2
    error = partial.stderr.strip().splitlines()[-1]
    assert "acme/ghost: no such repository" in error and "acme/zoo: issues are disabled (410)" in error
    assert stats["repositories"] == {"acme/ghost": "failed", "acme/zoo": "failed", "acme/detector": "complete"}
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT count(*) FROM issues WHERE repo = 'acme/detector'").fetchone()[0] == 160
    assert unauthorized.returncode == 2 and "401" in unauthorized.stderr.strip().splitlines()[-1]

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    result = reeng("mine", "acme/zoo", "--store", str(corrupt), "--api-url", "http://127.0.0.1:9", *FAST)
    assert result.returncode == 2 and f"{corrupt}: not a usable store" in result.stderr


@pytest.mark.parametrize("failure", ["401", "404", "unreachable"])
def test_a_failed_mine_keeps_its_store_only_with_data(corpus, tmp_path, failure):
    """One rule for a failed mine (a 404 or an unreachable URL left a new, empty store, its archive and log behind;
    a 401 removed the store only): a store the run created and committed no thread to goes, with the archive and log
    it created; a store with data before, or one that received pages, stays, the run recorded as failed."""
    import shutil

    repo = "acme/ghost" if failure == "404" else "acme/zoo"
    with served(corpus, f"bad_token={FAKE_TOKEN}" if failure == "401" else None) as served_url:
        url = "http://127.0.0.1:9" if failure == "unreachable" else served_url

        def failing(store, *repos):
            files = [store, tmp_path / f"{store.stem}-raw.sqlite", tmp_path / f"{store.stem}.log"]
            result = reeng("mine", *(repos or (repo,)), "--store", str(store), "--archive", str(files[1]),
                           "--log", str(files[2]), "--api-url", url, *FAST)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.strip().splitlines()[-1].startswith("error: ") and result.stderr.count("error:") == 1
            return files

        new = failing(tmp_path / "new.sqlite")
        assert [p.name for p in tmp_path.iterdir()] == []  # neither the store nor its archive, log, WAL
        shutil.copy(corpus, tmp_path / "before.sqlite")
        before = failing(tmp_path / "before.sqlite")
        partly = failing(tmp_path / "partly.sqlite", "acme/zoo", repo) if failure == "404" else []
    for store in (before[0], *partly[:1]):
        assert all(p.is_file() for p in (before if store == before[0] else partly))
        conn = sqlite3.connect(store)
        status, stats = conn.execute("SELECT status, stats FROM runs ORDER BY run_id DESC").fetchone()
        threads = conn.execute("SELECT count(*) FROM issues WHERE repo = 'acme/zoo'").fetchone()[0]
        conn.close()
        assert status == "failed" and json.loads(stats)["error"] and threads == 25
    assert not any(p.exists() for p in new)


def test_max_wait_bounds_a_secondary_limit(corpus, tmp_path):
    with served(corpus, "secondary429_noretry=1") as url:
        result = reeng("mine", "acme/zoo", "--store", str(tmp_path / "s.sqlite"), "--api-url", url,
                       "--secondary-wait", "60", "--max-wait", "5", "--no-progress")
    assert result.returncode == 2
    assert "GitHub asks to wait 60 s, more than --max-wait 5 s" in result.stderr


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_archive_reparses_into_the_same_threads(corpus, tmp_path, api):
    archive = tmp_path / "raw.sqlite"
    with served(corpus, "pulls=2,5xx=0.05,seed=9") as url:
        result, _ = mine(url, tmp_path / "mined.sqlite", "--api", api, "--archive", str(archive), "--page-size", "40")
        assert result.returncode == 0, result.stderr
        again, _ = mine(url, tmp_path / "mined.sqlite", "--api", api, "--archive", str(archive))
    replay = reeng("import", "archive", str(archive), "--store", str(tmp_path / "replayed.sqlite"))
    assert replay.returncode == 0, replay.stderr
    assert export_text(tmp_path / "replayed.sqlite", tmp_path / "a") == export_text(corpus, tmp_path / "b")



@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_archive_is_written_by_parallel_jobs(corpus, tmp_path, api):
    """--jobs 2 --archive: the workers share the archive (it once crashed: an sqlite3 connection of another thread)."""
    store, archive = tmp_path / "mined.sqlite", tmp_path / "raw.sqlite"
    with served(corpus) as url:
        result, stats = mine(url, store, "--api", api, "--jobs", "2", "--archive", str(archive))
    assert result.returncode == 0, result.stderr
    assert stats["repositories"] == {"acme/detector": "complete", "acme/zoo": "complete"}
    assert export_text(store, tmp_path / "a") == export_text(corpus, tmp_path / "b")
    from miner.archive import read_archive

    exchanges = list(read_archive(archive))
    assert len(exchanges) == stats["requests"] and all(e["status"] == 200 for e in exchanges)
    text = " ".join(e["url"] + json.dumps(e["request_body"]) for e in exchanges)
    assert all(repo.split("/")[1] in text for repo in REPOS)
    replay = reeng("import", "archive", str(archive), "--store", str(tmp_path / "replayed.sqlite"))
    assert replay.returncode == 0, replay.stderr
    assert export_text(tmp_path / "replayed.sqlite", tmp_path / "c") == export_text(corpus, tmp_path / "d")

def test_graphql_pages_shrink_when_big_pages_time_out(corpus, tmp_path):
    with served(corpus, "graphql_timeout_above=30") as url:
        result, stats = mine(url, tmp_path / "mined.sqlite")
    assert result.returncode == 0, result.stderr
    assert "pages of 100 issues keep failing; asking for 50" in result.stderr
    assert "pages of 50 issues keep failing; asking for 25" in result.stderr
    assert export_text(tmp_path / "mined.sqlite", tmp_path / "a") == export_text(corpus, tmp_path / "b")
