"""End to end on real threads: the gold issues found in the Denchmark archive (needs REENG_DATA_DIR).

These 25 issues (28 defects) are the classifier's development set. Their text was never used to
write or tune a rule; they are only scored here, and a quality floor checks that the built-in
labeler stays above what a constant labeler reaches (kappa 0).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reeng.cli import main

pytestmark = pytest.mark.shared_data
if not os.environ.get("REENG_DATA_DIR"):
    pytest.skip("REENG_DATA_DIR is not set: the Denchmark archive and the gold CSV are needed", allow_module_level=True)

# Floors on the development set, well below the measured values (docs/classifier.md) and far above a constant labeler.
FLOORS = {"stage": 0.25, "root_cause": 0.10, "impact": 0.25, "reporter": 0.15}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from miner.denchmark import read_archive
    from miner.store import open_store, save_thread
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    gold = import_defects(locate("jiang2024-defects"))
    keys = {(f"{o}/{r}".lower(), int(n)) for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)}
    path = tmp_path_factory.mktemp("dench") / "store.sqlite"
    conn = open_store(path)
    threads, _ = read_archive(locate("denchmark-bugreports"), repos=sorted({k[0] for k in keys}))
    for thread in threads:
        if (thread["repo"].lower(), thread["number"]) in keys or thread["number"] % 25 == 0:
            save_thread(conn, thread, source="denchmark")
    conn.close()
    return path


def floor_met(truth: list[str], predicted: list[str | None], floor: float) -> bool:
    from taxonomy.evaluation import scores

    kappa = scores(truth, predicted, ci=False)["kappa_abstain_wrong"]
    return kappa is not None and kappa >= floor


@pytest.mark.parametrize("encoder", [None, "local sentence encoder"])
def test_quality_floor_on_the_development_set(store: Path, encoder: str | None) -> None:
    """The same floors with and without the optional sentence embeddings (skipped where they are not installed)."""
    from miner.store import open_store
    from reeng.datasets import locate
    from taxonomy.classify import gold_training_labels, join_gold
    from taxonomy.labelers import BuiltinLabeler

    folder = None
    if encoder is not None:
        from tests.test_classifier_models import local_embedding_model

        folder = local_embedding_model()
    join = join_gold(open_store(store, create=False), locate("jiang2024-defects"), human=False, progress=False)
    assert len(join.defects) >= 25
    labels = gold_training_labels(join)
    preds = BuiltinLabeler(threshold=0.0, embedding_model=folder).label_many([join.analysed[i] for i in join.rows])
    for dim, floor in FLOORS.items():
        rows = [j for j, y in enumerate(labels[dim]) if y is not None]
        truth = [str(labels[dim][j]) for j in rows]
        assert floor_met(truth, [preds[j][dim].label for j in rows], floor), dim
        majority = max(set(truth), key=truth.count)
        assert not floor_met(truth, [majority] * len(truth), floor)  # a constant labeler fails the same floor


def test_predict_builtin_and_gold_eval(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["classify", "predict", "--builtin", "--store", str(store), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["threads"] >= 25 and set(summary["dimensions"]) >= {"stage", "impact", "issue_type"}
    main(["classify", "gold-eval", "--store", str(store), "--no-cv", "--json"])  # the CV path: test_classifier_train
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 25 and result["defects"] == 28
    # every gold thread of this store comes from the archive: the development set, none held out
    assert result["splits"]["development"]["defects"] == 28 and result["splits"]["held_out"]["defects"] == 0
    for dim in ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter"):
        assert {"kappa", "kappa_ci", "coverage", "n"} <= set(result["dimensions"][dim])
        assert result["dimensions"][dim]["n"] >= 25
