"""The notebook API: one entry (reeng.Corpus) over DataFrames, and notebooks that use nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import reeng
from tests.analysis_helpers import make_store

ROOT = Path(__file__).resolve().parents[1]
# The analysis notebooks; reproduce_a_defect.ipynb drives the reproduction harness's own API.
API_NOTEBOOKS = ("mine_classify_analyse.ipynb", "reproduce_study_figures.ipynb")


def test_notebooks_import_only_the_api():
    for name in API_NOTEBOOKS:
        cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, flags=re.M)
        internal = [m for m in imports if m.split(".")[0] in ("miner", "taxonomy", "analysis") or m.startswith("reeng.")]
        assert internal == [], (name, internal)
        assert "reeng" in imports, name
        assert "sqlite3" not in code and "SELECT " not in code and "execute(" not in code, name


def test_corpus_reads_labels_analyses_and_releases(tmp_path):
    truth = make_store(tmp_path / "s.db", n=120)
    corpus = reeng.Corpus(tmp_path / "s.db")
    threads, comments = corpus.threads(), corpus.comments()
    assert isinstance(threads, pd.DataFrame) and len(threads) == len(truth) and comments.empty
    assert len(corpus.threads(sample=1)) == len(corpus.sample_issues(1)) == len(truth) // 3
    defects = corpus.defects(sample=1)
    assert set(defects["provenance"]) == {"model:builtin@1"} and "stage_probability" in defects
    result = corpus.analyse(tmp_path / "out", formats=("png",), workers=1)
    assert (tmp_path / "out" / "report.html").is_file() and result.tables.claims
    summary = corpus.release(tmp_path / "release", salt="s" * 20)
    assert summary.rows["issues"] == len(truth) and reeng.validate_release(tmp_path / "release") == []
    labels = pd.read_parquet(tmp_path / "release" / "data" / "defect_labels.parquet")
    assert set(labels["provenance"]) == {"model"} and labels["probability"].notna().all()


@pytest.mark.usefixtures("without_local_data")
def test_corpus_label_warns_in_a_notebook_when_it_runs_on_the_rules_alone(tmp_path):
    from taxonomy.classify import BUILTIN_VERSION
    from tests.test_classifier_store import make_store as thread_store

    corpus = reeng.Corpus(thread_store(tmp_path / "threads.sqlite"))
    with pytest.warns(reeng.ReengWarning, match="evidence rules alone"):
        labels = corpus.label()
    assert set(labels["model_version"]) == {f"{BUILTIN_VERSION}+rules-only+no-study-labels"}
    kept = labels[labels["dimension"] == "reengineering"]
    assert set(kept["label"].dropna()) == {"yes"}


def test_corpus_label_checks_the_threshold_and_the_store_as_the_cli_does(tmp_path):
    """The notebook refuses what `reeng classify predict` refuses, before it labels or writes anything."""
    from contextlib import closing

    from miner.store import open_store
    from tests.test_classifier_store import make_store as thread_store

    corpus = reeng.Corpus(thread_store(tmp_path / "threads.sqlite"))
    for bad in (2, -0.1, "0.5"):
        with pytest.raises(reeng.ReengError, match="a probability between 0 and 1"):
            corpus.label(threshold=bad)
    with closing(open_store(tmp_path / "threads.sqlite", create=False)) as conn:
        assert "predictions" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    open_store(tmp_path / "empty.sqlite").close()
    with pytest.raises(reeng.ReengError, match=r"empty.sqlite: the store holds no threads \(mine or import some first\)"):
        reeng.Corpus(tmp_path / "empty.sqlite").label()


def test_corpus_mine_authenticates_with_the_environments_tokens_as_the_cli_does(tmp_path, monkeypatch):
    """GITHUB_TOKEN[S] reach the client (the token never the store); without any, the CLI's warning."""
    import hashlib
    import logging

    from tests.miner_helpers import FAKE_TOKEN, build_corpus

    source = reeng.Corpus(build_corpus(tmp_path / "source.sqlite", {"acme/detector": 4}, long_thread=3))
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("reeng.miner").addHandler(handler)
    try:
        with source.serve() as url:
            monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
            monkeypatch.delenv("GITHUB_TOKENS", raising=False)
            stats = reeng.Corpus(tmp_path / "mined.sqlite").mine(["acme/detector"], api_url=url, api="rest")
            assert stats["issues"] == 4 and not stats["failures"]
            assert set(url.server.max_inflight) == {hashlib.sha256(FAKE_TOKEN.encode()).hexdigest()}
            assert not any("GITHUB_TOKEN" in line for line in said)
            monkeypatch.delenv("GITHUB_TOKEN")
            reeng.Corpus(tmp_path / "mined2.sqlite").mine(["acme/detector"], api_url=url, api="rest")
    finally:
        logging.getLogger("reeng.miner").removeHandler(handler)
    assert "no GITHUB_TOKEN or GITHUB_TOKENS: unauthenticated requests (github.com allows 60 an hour)" in said
    assert FAKE_TOKEN.encode() not in (tmp_path / "mined.sqlite").read_bytes()


def test_corpus_mine_of_repositories_that_cannot_be_read_leaves_no_empty_store(tmp_path, monkeypatch):
    """As `reeng mine`: a misspelt repository or an unreachable URL that brings no thread into a new store is
    one ReengError and no store file; a store that holds threads keeps them, the failure returned."""
    from tests.miner_helpers import FAKE_TOKEN, build_corpus

    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    source = reeng.Corpus(build_corpus(tmp_path / "source.sqlite", {"acme/detector": 2}))
    store = tmp_path / "new.sqlite"
    with source.serve() as url:
        for api_url in (url, "http://127.0.0.1:9"):
            with pytest.raises(reeng.ReengError, match="acme/detectr"):
                reeng.Corpus(store).mine(["acme/detectr"], api_url=api_url, api="rest")
            assert not store.exists()
        assert reeng.Corpus(store).mine(["acme/detector"], api_url=url, api="rest")["issues"] == 2
        stats = reeng.Corpus(store).mine(["acme/detectr"], api_url=url, api="rest")
    assert list(stats["failures"]) == ["acme/detectr"] and len(reeng.Corpus(store).threads()) == 2


def test_corpus_import_and_mine_check_their_input_before_a_store_is_created(tmp_path, monkeypatch):
    """As `reeng import denchmark` and `reeng mine`: a repository the archive lacks, a limit below 1, a missing or
    unconfigured archive, an unknown API are one error each, and no store file is left behind."""
    from tests.miner_helpers import denchmark_archive

    archive = denchmark_archive(tmp_path / "d.tar.xz", [("acme/one", n, f"crash {n}", "it fails") for n in (1, 2, 3)]
                                + [("acme/two", 1, "slow", "it is slow")])
    store = tmp_path / "new.sqlite"
    corpus = reeng.Corpus(store)
    for call, message in (
            (lambda: corpus.import_denchmark(archive, repos=["acme/onee"]), "acme/onee: not in the archive d.tar.xz"),
            (lambda: corpus.import_denchmark(archive, limit=0), "limit 0: a whole number, 1 or more"),
            (lambda: corpus.import_denchmark(archive, limit=-5), "limit -5: a whole number, 1 or more"),
            (lambda: corpus.import_denchmark(archive, repos=["not a name"]), "'not a name': not a repository name"),
            (lambda: corpus.import_denchmark(tmp_path / "missing.tar.xz"), "missing.tar.xz: no such archive"),
            (lambda: corpus.mine(["acme/one"], api="soap", api_url="http://127.0.0.1:9", tokens=["x"]),
             "'soap': unknown API")):
        with pytest.raises(reeng.ReengError, match=message):
            call()
        assert not store.exists()
    monkeypatch.setenv("REENG_DATA_DIR", str(tmp_path / "no-data"))
    with pytest.raises(reeng.ReengError):
        corpus.import_denchmark()
    assert not store.exists()
    assert corpus.import_denchmark(archive, repos="acme/one") == {"issues": 3, "comments": 3}
    assert reeng.Corpus(tmp_path / "limited.sqlite").import_denchmark(archive, limit=1)["issues"] == 1


def test_analyse_and_compare_check_their_options_as_reeng_analyze_does(tmp_path):
    """Labels, figure formats and the design are checked by the analysis itself: one error each, nothing written."""
    make_store(tmp_path / "s.db", n=60)
    corpus = reeng.Corpus(tmp_path / "s.db")
    defects, out = corpus.defects(), tmp_path / "out"
    labels = "--labels: give two different names separated by a comma, e.g. human,machine"
    formats = "--formats: a comma-separated list of png, pdf, svg starting with png"
    for call, message in ((lambda: reeng.compare(defects, defects, out, labels=("a", "a")), labels),
                          (lambda: reeng.compare(defects, defects, out, labels=("a", "b", "c")), labels),
                          (lambda: reeng.compare(defects, defects, out, labels="a"), labels),
                          (lambda: reeng.compare(defects, defects, out, design="nope"),
                           "--design 'nope': one of independent, corpus_vs_study, paired"),
                          (lambda: reeng.analyse(defects, out, formats=["jpg"]), formats),
                          (lambda: reeng.analyse(defects, out, formats="pdf"), formats),
                          (lambda: reeng.analyse(defects, out, formats=["pdf", "png"]), formats),
                          (lambda: reeng.analyse(defects, out, human="store"), "--human store: needs --store"),
                          (lambda: corpus.analyse(out, human="store"), "s.db: the store holds no human labels")):
        with pytest.raises(reeng.ReengError, match=re.escape(message)):
            call()
        assert not out.exists()


def test_corpus_release_takes_a_salt_file_and_an_author_as_text(tmp_path):
    """salt_file="salt.txt" is a path (not an AttributeError); authors="Alice Smith" is one author, not 11 letters."""
    make_store(tmp_path / "s.db", n=30)
    corpus = reeng.Corpus(tmp_path / "s.db")
    salt = tmp_path / "private" / "salt.txt"
    summary = corpus.release(tmp_path / "release", salt_file=str(salt), authors="Alice Smith")
    assert salt.is_file() and summary.salt_origin == f"generated and kept in {salt.resolve()}"
    package = json.loads((tmp_path / "release" / "datapackage.json").read_text())
    assert package["contributors"] == [{"title": "Alice Smith", "role": "author"}]
    assert reeng.validate_release(tmp_path / "release") == []
    with pytest.raises(reeng.ReengError, match="authors: names as text"):
        corpus.release(tmp_path / "release2", salt="s" * 20, authors=["Alice Smith", 7])


def test_machine_defects_takes_a_plain_connection_and_refuses_wrong_types(tmp_path):
    """docs/schemas.md: a store or a connection (sqlite3.connect's, no row factory); a sample id or a probability
    of the wrong type is one error naming it, not "no sample 1" or a TypeError."""
    import sqlite3

    from taxonomy import machine_defects

    make_store(tmp_path / "s.db", n=60)
    expected = machine_defects(tmp_path / "s.db", sample=1)
    conn = sqlite3.connect(tmp_path / "s.db")
    pd.testing.assert_frame_equal(machine_defects(conn, sample=1), expected)
    conn.close()
    corpus = reeng.Corpus(tmp_path / "s.db")
    for call in (lambda: corpus.defects(sample="1"), lambda: corpus.threads(sample="1")):
        with pytest.raises(reeng.ReengError, match=r"sample '1': a sample id \(a whole number"):
            call()
    with pytest.raises(reeng.ReengError, match="--min-probability '0.5': must be between 0 and 1"):
        corpus.defects(min_probability="0.5")


def test_a_corpus_needs_a_path_and_release_names_an_unknown_option(tmp_path):
    """Corpus(None) raised a TypeError from pathlib; release(bogus=1) a TypeError from the options' dataclass."""
    from reeng.api import Corpus
    from reeng.errors import ReengError

    with pytest.raises(ReengError, match=r"Corpus\(None\): give the store file's path"):
        Corpus(None)
    with pytest.raises(ReengError, match="release: unknown option.s. bogus .known: title, version"):
        Corpus(tmp_path / "s.sqlite").release(tmp_path / "rel", bogus=1)
    assert not (tmp_path / "rel").exists() and not (tmp_path / "s.sqlite").exists()
