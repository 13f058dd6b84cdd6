"""End to end on real threads: gold issues from the Denchmark archive (needs REENG_DATA_DIR)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reeng.cli import main

pytestmark = pytest.mark.shared_data
if not os.environ.get("REENG_DATA_DIR"):
    pytest.skip("REENG_DATA_DIR is not set: the Denchmark archive and the gold CSV are needed", allow_module_level=True)

# Gold issues of the Jiang et al. study whose threads are in Denchmark (a development set).
GOLD_THREADS = {("ultralytics/yolov5", 41), ("ultralytics/yolov5", 58), ("ultralytics/yolov5", 147)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from miner.denchmark import read_archive
    from miner.store import open_store, save_thread
    from reeng.datasets import locate

    path = tmp_path_factory.mktemp("dench") / "store.sqlite"
    conn = open_store(path)
    threads, _ = read_archive(locate("denchmark-bugreports"), repos=["ultralytics/yolov5"])
    for thread in threads:
        if (thread["repo"], thread["number"]) in GOLD_THREADS or thread["number"] % 10 == 0:
            save_thread(conn, thread, source="denchmark")
    conn.close()
    return path


def test_predict_builtin_and_gold_eval(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["classify", "predict", "--builtin", "--store", str(store), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["threads"] >= 3 and set(summary["dimensions"]) >= {"stage", "impact", "issue_type"}
    main(["classify", "gold-eval", "--store", str(store), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 3 and "development set" in result["note"]
    for dim in ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter"):
        assert {"macro_f1", "kappa", "n"} <= set(result["dimensions"][dim])
        assert result["dimensions"][dim]["n"] >= 3
