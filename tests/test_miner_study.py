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
