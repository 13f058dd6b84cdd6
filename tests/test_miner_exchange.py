"""Export, JSONL and Denchmark import, sampling and repository selection."""

from __future__ import annotations

import json
import lzma
import sqlite3

import pandas as pd
import pytest

from miner.exchange import export_store, import_denchmark, import_jsonl
from miner.sample import draw, protocol
from miner.store import open_store
from reeng.errors import ReengError
from reeng.settings import data_dir
from tests.miner_helpers import FAKE_TOKEN, build_corpus, export_text, reeng, served


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite")


@pytest.fixture(scope="module")
def denchmark():
    root = data_dir()
    path = root / "denchmark" / "denchmark_bugreports.tar.xz" if root else None
    if path is None or not path.is_file():
        pytest.skip("REENG_DATA_DIR with the Denchmark archive is not configured")
    return path


def test_export_formats_agree_and_jsonl_round_trips(corpus, tmp_path):
    conn = open_store(corpus, create=False)
    counts = {fmt: export_store(conn, tmp_path / fmt, fmt) for fmt in ("parquet", "jsonl", "csv")}
    expected = conn.execute("SELECT count(*), sum(comments_count) FROM issues").fetchone()
    conn.close()
    assert counts["parquet"] == counts["csv"] == {"issues": expected[0], "comments": expected[1], "events": 0, "fixes": 0}
    parquet = pd.read_parquet(tmp_path / "parquet" / "comments.parquet")
    jsonl = pd.read_json(tmp_path / "jsonl" / "comments.jsonl", lines=True)
    assert list(parquet.columns) == ["repo", "issue_number", "comment_id", "author", "body", "created_at", "updated_at"]
    assert parquet["body"].tolist() == jsonl["body"].tolist()
    issues = pd.read_csv(tmp_path / "csv" / "issues.csv")
    assert "etag" not in issues and "fetched_at" not in issues
    assert issues[["repo", "number"]].apply(tuple, axis=1).is_monotonic_increasing

    copy = tmp_path / "copy.sqlite"
    result = reeng("import", "jsonl", str(tmp_path / "jsonl"), "--store", str(copy))
    assert result.returncode == 0, result.stderr
    assert export_text(copy, tmp_path / "a") == export_text(corpus, tmp_path / "b")
    (tmp_path / "jsonl" / "issues.jsonl").write_text("{not json\n")
    with pytest.raises(ReengError, match="issues.jsonl:1: not an exported issue row"):
        import_jsonl(tmp_path / "jsonl", open_store(tmp_path / "x.sqlite"))


def test_sample_follows_the_protocol_and_replays(corpus, tmp_path):
    store = tmp_path / "s.sqlite"
    store.write_bytes(corpus.read_bytes())
    conn = open_store(store)
    params = protocol("jiang2024", min_comments=5)
    first, second = draw(conn, "jiang2024", params, seed=7), draw(conn, "jiang2024", params, seed=7)
    other = draw(conn, "jiang2024", params, seed=8)
    assert first["drawn"] == second["drawn"] != other["drawn"]
    qualifying = conn.execute("SELECT count(*) FROM issues WHERE repo='acme/detector' AND state='closed' "
                              "AND comments_count >= 5").fetchone()[0]
    assert first["population"]["acme/detector"] == qualifying <= 200
    assert sum(d["repo"] == "acme/detector" for d in first["drawn"]) == 20  # small population: 20 issues
    recorded = conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = ? ORDER BY repo, number",
                            (first["sample_id"],)).fetchall()
    assert [{"repo": r, "number": n} for r, n in recorded] == first["drawn"]
    row = conn.execute("SELECT protocol, seed, parameters FROM samples WHERE sample_id = ?", (first["sample_id"],)).fetchone()
    assert row[0] == "jiang2024" and row[1] == 7 and json.loads(row[2])["min_comments"] == 5
    assert protocol("jiang2024").size(1000) == 100 and protocol("jiang2024").size(150) == 20
    conn.close()
    cli = reeng("sample", "--store", str(store), "--seed", "7", "--min-comments", "5", "--json")
    assert cli.returncode == 0 and json.loads(cli.stdout)["drawn"] == first["drawn"]


def test_repository_search_applies_criteria_and_zoo_rule(tmp_path):
    corpus = build_corpus(tmp_path / "repos.sqlite", {
        "acme/yolo-fast": 90, "open-mmlab/mmdetection": 80, "acme/tiny-yolo": 90, "acme/yolo-few": 20,
        "acme/many": 90}, long_thread=3)
    conn = sqlite3.connect(corpus)
    for repo, stars, desc in [("acme/yolo-fast", 3000, "YOLO detector in PyTorch"),
                              ("open-mmlab/mmdetection", 9000, "detection toolbox: yolo, retinanet"),
                              ("acme/tiny-yolo", 500, "tiny yolo"), ("acme/yolo-few", 2000, "yolo, few issues"),
                              ("acme/many", 4000, "yolo, detr and centernet in one place")]:
        conn.execute("UPDATE repositories SET stars = ?, description = ? WHERE repo = ?", (stars, desc, repo))
    conn.commit()
    conn.close()
    config = tmp_path / "criteria.yaml"
    config.write_text("architectures: [yolo, detr, centernet]\nzoo:\n  min_architectures: 3\n")
    with served(corpus) as url:
        result = reeng("repos", "search", "--config", str(config), "--api-url", url, "--json",
                       "--store", str(tmp_path / "sel.sqlite"))
        bad = reeng("repos", "search", "--config", str(tmp_path / "none.yaml"), "--api-url", url)
        secret = reeng("repos", "search", "--config", str(config), "--api-url", url.replace("//", "//me:s3cretXYZ@"),
                       "--store", str(tmp_path / "sel2.sqlite"))
    assert secret.returncode == 0, secret.stderr
    assert b"s3cretXYZ" not in (tmp_path / "sel2.sqlite").read_bytes()  # the selection's source: the URL
    assert result.returncode == 0, result.stderr
    selection = {r["repo"]: r for r in json.loads(result.stdout)}
    assert set(selection) == {"open-mmlab/mmdetection", "acme/many", "acme/yolo-fast"}
    assert selection["open-mmlab/mmdetection"]["repo_type"] == "zoo"      # listed
    assert selection["acme/many"]["repo_type"] == "zoo"                   # three architectures
    assert selection["acme/yolo-fast"]["repo_type"] == "solo"
    assert selection["acme/yolo-fast"]["closed_issues"] == 60
    assert bad.returncode == 2 and "no such selection config" in bad.stderr
    stored = sqlite3.connect(tmp_path / "sel.sqlite").execute("SELECT repo, repo_type FROM repositories").fetchall()
    assert ("acme/many", "zoo") in stored


def test_repository_search_takes_its_tokens_as_mine_does(tmp_path):
    """`repos search` reads its tokens through the client's shared rule: without one it warns as `reeng mine` does."""
    from miner.client import NO_TOKENS

    corpus = build_corpus(tmp_path / "repos.sqlite", {"acme/yolo-fast": 3}, long_thread=3)
    config = tmp_path / "criteria.yaml"
    config.write_text("architectures: [yolo]\nmin_stars: 1\nmin_closed_issues: 0\n")
    with served(corpus) as url:
        bare = reeng("repos", "search", "--config", str(config), "--api-url", url, "--json", token=None)
        with_token = reeng("repos", "search", "--config", str(config), "--api-url", url, "--json")
    assert bare.returncode == 0 and with_token.returncode == 0, bare.stderr + with_token.stderr
    assert [r["repo"] for r in json.loads(bare.stdout)] == ["acme/yolo-fast"]
    assert f"WARNING {NO_TOKENS}" in bare.stderr
    assert NO_TOKENS not in with_token.stderr and FAKE_TOKEN not in with_token.stderr


def test_denchmark_import_and_truncated_archive(denchmark, tmp_path):
    conn = open_store(tmp_path / "d.sqlite")
    counts, stats = import_denchmark(denchmark, conn, ["ULTRALYTICS/yolov3"], limit=40, progress=False)
    assert counts["issues"] == 40 == stats.files
    bodies = " ".join(r[0] for r in conn.execute("SELECT body FROM issues UNION ALL SELECT body FROM comments"))
    assert "<denchmark-" not in bodies and "&gt;" not in bodies and "&amp;" not in bodies
    assert {r[0] for r in conn.execute("SELECT DISTINCT repo FROM issues")} == {"ultralytics/yolov3"}

    truncated = tmp_path / "truncated.tar.xz"
    with denchmark.open("rb") as fh:
        truncated.write_bytes(fh.read(300_000))
    result = reeng("import", "denchmark", str(truncated), "--store", str(tmp_path / "t.sqlite"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {truncated}: archive is truncated or corrupt")
    assert len(result.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.tar.xz"
    garbage.write_bytes(lzma.compress(b"not a tar"))
    assert "not a readable archive" in reeng("import", "denchmark", str(garbage), "--store",
                                             str(tmp_path / "g.sqlite")).stderr


def test_preset_is_the_studys_27_repositories(denchmark):
    from miner.repos import preset_repositories

    preset = preset_repositories("jiang2024")
    assert len(preset) == 27
    types = {r["repo"]: r["repo_type"] for r in preset}
    assert types["open-mmlab/mmdetection"] == "zoo" and types["matterport/Mask_RCNN"] == "solo"
    assert types["jwyang/faster-rcnn.pytorch"] == "solo"


def test_sample_protocol_and_seed_are_checked_for_the_cli_and_the_notebook_alike(corpus, tmp_path):
    """`reeng sample --state any` and Corpus.sample(state="any") draw from every state; a mistyped state or
    parameter, a seed that is not a whole number of 0 or more: one error each, and no sample recorded."""
    import reeng

    assert protocol("jiang2024", state="any").state == "" and protocol("jiang2024", state="open").state == "open"
    for overrides, message in (({"state": "closd"}, "state 'closd': one of open, closed, any"),
                               ({"fractoin": 0.5}, "fractoin: not a parameter of protocol 'jiang2024'"),
                               ({"min_comments": "5"}, "min-comments '5': a whole number"),
                               ({"fraction": "0.5"}, "fraction '0.5': a number")):
        with pytest.raises(ReengError, match=message):
            protocol("jiang2024", **overrides)
    store = tmp_path / "s.sqlite"
    store.write_bytes(corpus.read_bytes())
    sampled = reeng.Corpus(store)
    for seed in ("x", -1, 1.5, True):
        with pytest.raises(ReengError, match=f"seed {seed!r}: a whole number, 0 or more"):
            sampled.sample(seed=seed)
    with pytest.raises(ReengError, match="state 'closd'"):
        sampled.sample(seed=1, state="closd")
    conn = open_store(store, create=False)
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    any_state = sampled.sample(seed=1, state="any", min_comments=5)
    zoo = sampled.sample(seed=1, repos=["acme/zoo"], min_comments=0)
    states = {r[0] for r in conn.execute("SELECT DISTINCT i.state FROM sample_issues s JOIN issues i USING (repo, number) "
                                         "WHERE s.sample_id = ?", (any_state,))}
    assert states == {"open", "closed"}
    assert set(sampled.sample_issues(zoo)["repo"]) == {"acme/zoo"}
    conn.close()


def test_a_repository_the_archive_lacks_is_an_error_with_a_limit_too(tmp_path):
    """With --limit the check was skipped: a misspelt repository read the whole archive, imported nothing and exited 0."""
    from tests.miner_helpers import denchmark_archive

    archive = denchmark_archive(tmp_path / "d.tar.xz", [("a/b", n, f"t{n}", "d") for n in (1, 2, 3)])
    typo = reeng("import", "denchmark", str(archive), "--store", str(tmp_path / "t.sqlite"), "--repos", "a/b,x/typo",
                 "--limit", "100")
    assert typo.returncode == 2 and "x/typo: not in the archive" in typo.stderr and not (tmp_path / "t.sqlite").exists()
    reached = reeng("import", "denchmark", str(archive), "--store", str(tmp_path / "r.sqlite"), "--repos", "a/b,x/later",
                    "--limit", "2")  # the limit ends the reading: a repository not met yet may come later
    assert reached.returncode == 0, reached.stderr
