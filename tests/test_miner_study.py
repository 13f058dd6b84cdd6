"""The study's corpus stage, offline: the Denchmark archive restricted to the gold repositories."""

from __future__ import annotations

import json

import pytest

from reeng.settings import data_dir
from reeng.study import STAGES, load_config, run_study


def test_corpus_stage_joins_gold_defects_offline(tmp_path, monkeypatch):
    if data_dir() is None:
        pytest.skip("REENG_DATA_DIR is not configured")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_TOKENS", raising=False)
    assert list(STAGES).index("corpus") == list(STAGES).index("agreement") + 1
    config, config_dir = load_config(None)
    ctx = run_study(config, config_dir, tmp_path / "study", ["gold", "corpus"])
    summary = json.loads((tmp_path / "study" / "corpus" / "corpus.json").read_text())
    assert summary["origin"].startswith("offline corpus")
    assert summary["repositories"] == 27 and summary["repositories_with_threads"] == 3
    assert 0 < summary["gold_defects_with_thread"] < summary["gold_defects"]
    assert (tmp_path / "study" / "corpus" / "store.sqlite").is_file()
    assert ctx.summary["corpus"]["gold_issues_with_thread"] == summary["gold_issues_with_thread"]


def test_corpus_stage_mines_when_a_token_and_the_api_are_there(tmp_path, monkeypatch):
    if data_dir() is None:
        pytest.skip("REENG_DATA_DIR is not configured")
    from miner.store import open_store, save_thread
    from reeng.datasets import locate
    from taxonomy.gold import import_defects
    from tests.miner_helpers import FAKE_TOKEN, served, synthetic_thread

    gold = import_defects(locate("jiang2024-defects"))
    yolov5 = gold[(gold["owner"] == "ultralytics") & (gold["repo"] == "yolov5")]
    corpus = tmp_path / "corpus.sqlite"
    conn = open_store(corpus)
    for number in sorted(set(yolov5["number"])):  # synthetic text under the gold issue numbers
        save_thread(conn, synthetic_thread("ultralytics/yolov5", int(number), 2), source="synthetic")
    conn.close()
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    config, config_dir = load_config(None)
    with served(corpus) as url:
        config["corpus"] = {**config["corpus"], "api_url": url, "repos": ["ultralytics/yolov5"]}
        run_study(config, config_dir, tmp_path / "study", ["gold", "corpus"])
    summary = json.loads((tmp_path / "study" / "corpus" / "corpus.json").read_text())
    assert summary["origin"] == f"GitHub ({url})" and summary["failures"] == {}
    assert summary["gold_defects_with_thread"] == len(yolov5) > 0


def test_an_offline_corpus_without_the_named_repositories_fails_the_study(tmp_path, monkeypatch, capsys):
    """`corpus: {source: offline, repos: [...]}` naming repositories the archive lacks ran on with an empty store and
    exit 0 ("0 threads from 0 of 1 repositories"); they fail as repositories GitHub does not know do, and an empty
    list of repositories is refused with the config's other errors."""
    if data_dir() is None:
        pytest.skip("REENG_DATA_DIR is not configured")
    import yaml

    from tests.bad_input_helpers import error_line, nothing_beside
    from tests.conftest import run_main

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_TOKENS", raising=False)
    config = tmp_path / "study.yaml"

    def study(repos: list[str], *flags: str) -> tuple[int, str]:
        config.write_text(yaml.safe_dump({"stages": ["corpus"], "corpus": {"source": "offline", "repos": repos}}))
        code, _, err = run_main(["study", str(config), "--out", str(tmp_path / "out"), *flags], capsys)
        return code, err

    code, err = study(["nobody/nothing"])
    assert code == 2 and error_line(err, progress=True) == ("error: corpus: no thread collected from any of 1 repositories "
                                                            "(nobody/nothing: not in the offline corpus denchmark_bugreports.tar.xz)")
    nothing_beside(tmp_path / "out")
    code, err = study(["ultralytics/yolov3", "nobody/nothing"], "--keep-going")
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"]["corpus"]["complete"] is False and "nobody/nothing" in summary["failed"]["corpus"]["failed"]
    assert list(summary["corpus"]["failures"]) == ["nobody/nothing"] and summary["corpus"]["threads"] > 0
    code, err = study([])
    assert code == 2 and "corpus.repos: either `gold` or a list of OWNER/REPO names, one or more" in error_line(err)
