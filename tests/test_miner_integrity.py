"""Store integrity, bad input to the miner's commands, the token pool, and run provenance."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sqlite3
import time

import pytest

from miner.client import GitHubClient, Politeness
from miner.crawl import mine
from miner.store import open_store, save_thread
from reeng.errors import ReengError
from tests.conftest import run_main
from tests.miner_helpers import FAKE_TOKEN, FAST, build_corpus, denchmark_archive, export_text, reeng, served, synthetic_thread


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite", {"acme/zoo": 30, "acme/detector": 20},
                        long_thread=3)


def random_archive(path, n, repo="acme/zoo"):
    """A Denchmark-shaped .tar.xz of ``n`` synthetic bug reports (hard to compress, so truncation bites)."""
    rng = random.Random(0)
    return denchmark_archive(path, ((repo, i, f"report {i}", "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(3000)))
                                    for i in range(1, n + 1)))


def count(store, table="issues"):
    conn = sqlite3.connect(store)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


# -- store integrity ------------------------------------------------------------------------------
def test_a_truncated_archive_commits_nothing_and_says_so(tmp_path, capsys):
    archive = random_archive(tmp_path / "d.tar.xz", 1200)
    truncated = tmp_path / "truncated.tar.xz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    code, _, err = run_main(["import", "denchmark", str(truncated), "--store", str(tmp_path / "new.sqlite")], capsys)
    assert code == 2 and "archive is truncated or corrupt" in err
    assert "nothing was imported (" in err and "threads read were rolled back" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "new.sqlite").exists()
    existing = tmp_path / "existing.sqlite"
    save_thread(open_store(existing), synthetic_thread("acme/other", 1, 2), source="x")
    code, _, err = run_main(["import", "denchmark", str(truncated), "--store", str(existing)], capsys)
    assert code == 2 and count(existing) == 1
    code, out, _ = run_main(["import", "denchmark", str(archive), "--store", str(existing)], capsys)
    assert code == 0 and count(existing) == 1201


def test_missing_input_or_unknown_repository_leaves_no_store(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    archive = random_archive(tmp_path / "d.tar.xz", 5)
    for args, message in [(["import", "denchmark", str(tmp_path / "nope.tar.xz")], "no such archive"),
                          (["import", "jsonl", str(tmp_path / "nodir")], "no such folder"),
                          (["import", "denchmark", str(archive), "--repos", "nope/nope"], "nope/nope: not in the archive"),
                          (["import", "archive", str(tmp_path / "nope.sqlite")], "no such archive")]:
        code, _, err = run_main([*args, "--store", str(store)], capsys)
        assert code == 2 and message in err and "Traceback" not in err, args
        assert not store.exists() and not tmp_path.joinpath("s.sqlite-wal").exists(), args


def test_empty_damaged_and_foreign_files_are_refused(corpus, tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    code, _, err = run_main(["export", "--store", str(empty), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "an empty file, not a reeng store" in err and empty.stat().st_size == 0

    foreign = tmp_path / "raw.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY, body BLOB)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    for args in (["export", "--out", str(tmp_path / "out")], ["import", "jsonl", str(tmp_path)],
                 ["sample", "--seed", "1"]):
        code, _, err = run_main([*args, "--store", str(foreign)], capsys)
        assert code == 2 and "an SQLite database but not a reeng store (its tables: responses)" in err, args
    assert foreign.read_bytes() == before

    damaged = tmp_path / "damaged.sqlite"
    shutil.copy(corpus, damaged)
    data = bytearray(damaged.read_bytes())
    page, noise = 4096, random.Random(1)
    for share in (0.4, 0.5, 0.6):  # pages in the middle: the header (page 1) stays intact
        start = int(len(data) // page * share) * page
        data[start:start + page] = bytes(noise.randrange(256) for _ in range(page))
    damaged.write_bytes(bytes(data))
    with pytest.raises(ReengError, match="the store is damaged \\(quick_check: "):
        open_store(damaged, create=False)
    for args in (["export", "--out", str(tmp_path / "out")], ["sample", "--seed", "1"]):
        code, _, err = run_main([*args, "--store", str(damaged)], capsys)
        assert code == 2 and "the store is damaged" in err and "Traceback" not in err



def test_archive_is_never_a_store_and_comes_after_the_store_is_checked(corpus, tmp_path, capsys):
    def tables(path):
        conn = sqlite3.connect(path)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()

    offline = ("--api-url", "http://127.0.0.1:9", *FAST)
    junk, new = tmp_path / "junk.sqlite", tmp_path / "new.sqlite"
    junk.write_bytes(b"not a database at all" * 50)
    code, _, err = run_main(["mine", "acme/zoo", "--store", str(junk), "--archive", str(new), *offline], capsys)
    assert code == 2 and err.count("error:") == 1 and "not a usable store" in err
    assert not new.exists()  # the store is checked first: nothing of the archive is left behind

    store, other = tmp_path / "s.sqlite", tmp_path / "other.sqlite"
    shutil.copy(corpus, store)
    shutil.copy(corpus, other)
    before = tables(store)
    for archive in (store, other):  # the store itself, and another store (same application_id)
        code, _, err = run_main(["mine", "acme/zoo", "--store", str(store), "--archive", str(archive), *offline], capsys)
        assert code == 2 and err.count("error:") == 1 and f"{archive}: a reeng store, not a raw archive" in err, err
        assert "responses" not in tables(archive) and tables(archive) == before
    fresh = tmp_path / "fresh.sqlite"  # a new store named as its own archive: refused, no file left
    code, _, err = run_main(["mine", "acme/zoo", "--store", str(fresh), "--archive", str(fresh), *offline], capsys)
    assert code == 2 and "a reeng store, not a raw archive" in err and not fresh.exists()
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    code, _, err = run_main(["mine", "acme/zoo", "--store", str(store), "--archive", str(foreign), *offline], capsys)
    assert code == 2 and "an SQLite database but not a raw archive (its tables: notes)" in err
    assert tables(foreign) == {"notes"}

def test_closing_checkpoints_so_a_copied_file_holds_everything(corpus, tmp_path):
    store = tmp_path / "s.sqlite"
    shutil.copy(corpus, store)
    reader = sqlite3.connect(store)  # a notebook keeps the store open
    reader.execute("SELECT count(*) FROM issues").fetchone()
    conn = open_store(store)
    save_thread(conn, synthetic_thread("acme/zoo", 999, 3), source="late")
    conn.close()
    copy = tmp_path / "copy" / "s.sqlite"
    copy.parent.mkdir()
    shutil.copy(store, copy)  # the .sqlite alone, no -wal
    reader.close()
    assert count(copy) == count(corpus) + 1


def test_a_locked_store_says_what_it_waits_for(corpus, tmp_path):
    store = tmp_path / "s.sqlite"
    shutil.copy(corpus, store)
    export = tmp_path / "export"
    run = reeng("export", "--store", str(store), "--format", "jsonl", "--out", str(export))
    assert run.returncode == 0
    holder = sqlite3.connect(store)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        result = reeng("import", "jsonl", str(export), "--store", str(store), env={"REENG_STORE_WAIT": "1.5"})
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2
    assert "is locked by another process writing to it" in result.stderr
    assert f"error: {store}: still locked by another process after 1.5 s (set REENG_STORE_WAIT" in result.stderr
    assert waited < 25  # not the old silent 30 s
    bad = reeng("export", "--store", str(store), "--out", str(export), env={"REENG_STORE_WAIT": "soon"})
    assert bad.returncode == 2 and "REENG_STORE_WAIT='soon'" in bad.stderr


def test_a_full_disk_is_an_error_naming_the_store(corpus, tmp_path):
    store = tmp_path / "s.sqlite"
    shutil.copy(corpus, store)
    conn = open_store(store)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    thread = synthetic_thread("acme/zoo", 5000, 1)
    thread["body"] = "x" * 200_000
    with pytest.raises(ReengError, match=f"{store}: database or disk is full"):
        save_thread(conn, thread, source="big")
    assert conn.execute("SELECT count(*) FROM issues WHERE number = 5000").fetchone()[0] == 0
    conn.close()


# -- bad input to the miner's commands -------------------------------------------------------------
def test_jsonl_rows_are_checked(corpus, tmp_path, capsys):
    export = tmp_path / "export"
    export_text(corpus, export)
    issues = export / "issues.jsonl"
    lines = issues.read_bytes().splitlines(keepends=True)
    cases = [(b'{"repo": "acme/zoo", "number": "not-a-number", "title": "x"}\n', "number 'not-a-number' is not an integer"),
             (b'{"repo": "acme/zoo", "number": 1, "title": "caf\xe9"}\n', "not UTF-8 text"),
             (b'{"repo": "nonsense", "number": 1}\n', "repo 'nonsense' is not OWNER/REPO")]
    for bad, message in cases:
        issues.write_bytes(lines[0] + bad)
        code, _, err = run_main(["import", "jsonl", str(export), "--store", str(tmp_path / "s.sqlite")], capsys)
        assert code == 2 and f"issues.jsonl:2: {message}" in err, message
        assert not (tmp_path / "s.sqlite").exists()


def test_sample_options_and_repositories_are_checked(corpus, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    shutil.copy(corpus, store)
    for args, message in [(["--min-comments", "-3"], "min-comments -3: must be 0 or more"),
                          (["--small-draw", "-1"], "small-draw -1: must be 0 or more"),
                          (["--repos", "nope/nope"], "nope/nope: no threads of this repository in the store")]:
        code, _, err = run_main(["sample", "--store", str(store), "--seed", "1", *args], capsys)
        assert code == 2 and message in err, args
    code, out, _ = run_main(["sample", "--store", str(store), "--seed", "1", "--min-comments", "1",
                             "--repos", "ACME/Zoo", "--json"], capsys)
    assert code == 0 and set(json.loads(out)["population"]) == {"acme/zoo"}
    assert count(store, "samples") == 1  # the refused draws recorded nothing


def test_log_file_api_url_and_selection_config_are_checked(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    code, _, err = run_main(["mine", "acme/zoo", "--store", str(store), "--log", "/dev/full", *FAST], capsys)
    assert code == 2 and "--log /dev/full: cannot write (No space left on device)" in err and "Logging error" not in err
    code, _, err = run_main(["mine", "acme/zoo", "--store", str(store), "--api-url", "notaurl", *FAST], capsys)
    assert code == 2 and "--api-url 'notaurl': not an http(s) URL" in err
    assert not store.exists()
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)) * 4)
    code, _, err = run_main(["repos", "search", "--config", str(garbage), "--api-url", "http://127.0.0.1:9"], capsys)
    assert code == 2 and "not a YAML text file" in err
    typed = tmp_path / "typed.yaml"
    typed.write_text("min_stars: lots\n")
    code, _, err = run_main(["repos", "search", "--config", str(typed), "--api-url", "http://127.0.0.1:9"], capsys)
    assert code == 2 and "min_stars must be an integer >= 0, not 'lots'" in err


def test_retry_after_in_both_forms():
    from miner.client import retry_after

    now = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after("120", now) == 120
    assert retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now) == 90
    assert retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0  # already past
    assert retry_after("soon", now) is None and retry_after(None, now) is None


# -- the token pool and concurrency ---------------------------------------------------------------
def test_a_revoked_token_is_dropped_by_position(corpus, caplog):
    tokens = [FAKE_TOKEN + "1", FAKE_TOKEN + "revoked", FAKE_TOKEN + "3"]
    with served(corpus, f"bad_token={tokens[1]}") as url:
        client = GitHubClient(url, tokens, politeness=Politeness(), sleep=lambda s: None)
        with caplog.at_level(logging.WARNING, logger="reeng.miner"):
            for _ in range(4):
                assert client.get("/repos/acme/zoo").status == 200
    warning = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert warning == ["token 2 of 3 in GITHUB_TOKENS was rejected (401 Bad credentials): dropped, 2 left"]
    assert all(FAKE_TOKEN not in r.getMessage() for r in caplog.records)


def test_requests_go_to_the_token_with_most_budget_left(corpus):
    import hashlib

    tokens = [FAKE_TOKEN + "a", FAKE_TOKEN + "b"]
    with served(corpus, "primary_after=10") as url:
        client = GitHubClient(url, tokens, politeness=Politeness(), sleep=lambda s: None)
        for _ in range(8):
            client.get("/repos/acme/zoo")
        used = {t: url.server.budget.state[(hashlib.sha256(t.encode()).hexdigest(), "core")][0] for t in tokens}
    assert used == {tokens[0]: 4, tokens[1]: 4}


def test_jobs_mine_concurrently_one_request_per_token_at_a_time(corpus, tmp_path):
    repos = [f"acme/r{i}" for i in range(6)]
    many = build_corpus(tmp_path / "many.sqlite", {r: 8 for r in repos}, long_thread=3)
    tokens = [FAKE_TOKEN + str(i) for i in range(3)]
    with served(many) as url:
        client = GitHubClient(url, tokens, politeness=Politeness())
        conn = open_store(tmp_path / "m.sqlite")
        failures = mine(client, conn, repos, jobs=4, progress=False)
        conn.close()
        assert max(url.server.max_inflight.values()) == 1  # GitHub: one request at a time per user
        with pytest.raises(ReengError, match="--jobs 11: expected 1 to 10"):
            mine(client, open_store(tmp_path / "x.sqlite"), repos, jobs=11)
    assert failures == {} and set(client.stats.repositories.values()) == {"complete"}
    assert export_text(tmp_path / "m.sqlite", tmp_path / "a") == export_text(many, tmp_path / "b")


# -- run provenance -------------------------------------------------------------------------------
def test_runs_record_version_arguments_times_and_statistics(corpus, tmp_path):
    store = tmp_path / "s.sqlite"
    with served(corpus) as url:
        result = reeng("mine", "acme/zoo", "--store", str(store), "--api-url", url, *FAST)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    run = dict(conn.execute("SELECT * FROM runs").fetchone())
    conn.close()
    from reeng import __version__

    assert run["command"] == "mine" and run["tool_version"] == __version__ and run["status"] == "ok"
    args = json.loads(run["args"])
    assert args["repos"] == ["acme/zoo"] and args["api_url"] == url and args["api"] == "graphql"
    assert run["started_at"] <= run["finished_at"]
    assert json.loads(run["stats"])["issues"] == 30
    assert FAKE_TOKEN.encode() not in store.read_bytes()


def _mine_and_signal(corpus, store, sig: str, *args: str, program: tuple[str, ...] = ("-m", "reeng"),
                     env: dict[str, str] | None = None) -> tuple[int, str, tuple]:
    """Start ``mine acme/zoo acme/detector`` in a child, send ``sig`` once it has committed issues: its exit status,
    stderr, and its ``runs`` row (status, finished_at, stats) with the count of stored issues."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    full_env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GITHUB_TOKENS")}
    full_env.update(GITHUB_TOKEN=FAKE_TOKEN, PYTHONPATH=os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]),
                    **(env or {}))
    with served(corpus, "latency=0.2") as url:
        proc = subprocess.Popen([sys.executable, *program, "mine", "acme/zoo", "acme/detector", "--store", str(store),
                                 "--api-url", url, "--api", "rest", *args, *FAST], cwd=ROOT, env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                # a test run in the background (CI: `make test &`) starts with SIGINT ignored, and
                                # Python then keeps ignoring it: give the child the default, as a terminal would
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (store.exists() and _tables_and_issues(store)):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=20)  # --jobs 2: the workers stop too, the queue is dropped
    conn = sqlite3.connect(store)
    row = (*conn.execute("SELECT status, finished_at, stats FROM runs").fetchone(),
           conn.execute("SELECT count(*) FROM issues").fetchone()[0])
    conn.close()
    return proc.returncode, err, row


@pytest.mark.parametrize("sig, jobs", [("SIGTERM", "1"), ("SIGINT", "1"), ("SIGTERM", "2")])
def test_an_interrupted_mine_is_recorded_as_interrupted(corpus, tmp_path, sig, jobs):
    """SIGTERM left the run 'running' with no end; SIGINT recorded 'failed' with an empty error."""
    import signal

    code, err, (status, finished, stats, kept) = _mine_and_signal(corpus, tmp_path / "s.sqlite", sig, "--jobs", jobs)
    assert code == 128 + getattr(signal, sig), err
    assert err.strip().splitlines()[-1] == "aborted" and "Traceback" not in err
    assert status == "interrupted" and finished and json.loads(stats)["error"] == f"interrupted by {sig}"
    assert 0 < kept < 50  # what was committed before the signal stays; the next run resumes


SECOND_SIGNAL = """
import os, signal, sys
import miner.store
from reeng.cli import main

write = miner.store.finish_run

def second_signal_while_recording(conn, run_id, status, *args):
    if status == "interrupted":  # the user presses Ctrl-C again (or a supervisor sends SIGTERM) as the row is written
        os.kill(os.getpid(), getattr(signal, os.environ["SECOND_SIGNAL"]))
    write(conn, run_id, status, *args)

miner.store.finish_run = second_signal_while_recording
main(sys.argv[1:])
"""


@pytest.mark.parametrize("first, second", [("SIGINT", "SIGINT"), ("SIGTERM", "SIGINT"), ("SIGINT", "SIGTERM")])
def test_a_second_signal_while_the_interruption_is_recorded_does_not_leave_the_run_running(corpus, tmp_path, first, second):
    """The second signal landed in the write of the 'interrupted' row: the run stayed 'running' with no end."""
    import signal

    code, err, (status, finished, stats, _) = _mine_and_signal(corpus, tmp_path / "s.sqlite", first,
                                                               program=("-c", SECOND_SIGNAL), env={"SECOND_SIGNAL": second})
    assert code == 128 + getattr(signal, first), err
    assert err.strip().splitlines()[-1] == "aborted" and "Traceback" not in err
    assert status == "interrupted" and finished and json.loads(stats)["error"] == f"interrupted by {first}"


def _tables_and_issues(store):
    """The run has started and committed a page of issues (read-only: the crawl holds the store)."""
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM issues").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False
