"""predict --builtin on a store, the predictions table, annotation sheets, agreement, queue, study stage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from miner.store import open_store, save_thread
from taxonomy.rules import LABEL_DIMENSIONS
from tests.conftest import run_main as run

THREADS = [
    ("acme/detector", 1, "ModuleNotFoundError after install",
     "After pip install with torch==1.7.0:\n```\nModuleNotFoundError: No module named 'ops._ext'\n```", []),
    ("acme/detector", 2, "Out of memory when training",
     "python train.py --batch-size 64\n```\nRuntimeError: CUDA out of memory. Tried to allocate 1 GiB\n```", ["try a smaller batch size"]),
    ("acme/detector", 3, "Cannot reproduce the mAP on COCO",
     "With the default config I cannot reproduce the results: mAP is 0.31, lower than reported (0.37).", []),
    ("acme/detector", 4, "", "", []),
]


def make_store(path: Path) -> Path:
    conn = open_store(path)
    for repo, number, title, body, comments in THREADS:
        save_thread(conn, {"repo": repo, "number": number, "title": title, "body": body,
                           "comments": [{"comment_id": i + 1, "body": c} for i, c in enumerate(comments)]}, source="test")
    conn.close()
    return path



@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = make_store(tmp_path / "s.sqlite")
    code, _, err = run(["classify", "predict", "--builtin", "--store", str(path), "--json"], capsys)
    assert code == 0, err
    return path


def test_predict_builtin_writes_labels_probabilities_evidence(store: Path) -> None:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    rows = {(r["number"], r["dimension"]): r for r in conn.execute("SELECT * FROM predictions WHERE model='builtin'")}
    assert rows[(1, "stage")]["label"] == "environment"
    assert rows[(3, "manifestation")]["label"] == "reproducibility"
    oom = rows[(2, "impact")]
    evidence = json.loads(oom["evidence"])
    assert evidence["candidate"] == "memory_exhaustion"
    assert any("out of memory" in s["text"] for s in evidence["spans"])
    # The probability is calibrated (for a CUDA OOM, crash stays plausible too): the label is the best guess
    # exactly when its probability reaches the threshold, else the row waits for review.
    assert 0.3 <= oom["probability"] <= 1
    answered = oom["probability"] >= 0.5
    assert oom["label"] == ("memory_exhaustion" if answered else None) and oom["needs_review"] == int(not answered)
    assert evidence["reason"] == (None if answered else "below threshold")
    empty = rows[(4, "stage")]
    assert empty["label"] is None and empty["needs_review"] == 1 and json.loads(empty["evidence"])["reason"] == "empty"
    # The text models read every readable thread: an abstention there is a guess below the threshold, even where no
    # rule's span backs it, never "no evidence".
    waiting = [json.loads(r["evidence"]) for (n, dim), r in rows.items()
               if n != 4 and dim in LABEL_DIMENSIONS and r["needs_review"]]
    assert waiting and {e["reason"] for e in waiting} == {"below threshold"}
    assert any(not e["spans"] for e in waiting)


@pytest.mark.usefixtures("without_local_data")
def test_without_study_labels_and_archive_the_labeler_warns_and_keeps_threads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user without the local data: one warning line says what the labels lack, and a thread no rule calls
    non-reengineering is kept (the rules' tie of uniform priors dropped 461 of 590 yolov5/yolov3 threads)."""
    from taxonomy.classify import BUILTIN_VERSION

    path = make_store(tmp_path / "s.sqlite")
    code, out, err = run(["classify", "predict", "--builtin", "--store", str(path), "--json"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "without the study's labels" in warnings[0]
    assert "without the local Denchmark archive (REENG_DATA_DIR)" in warnings[0] and "evidence rules alone" in warnings[0]
    summary = json.loads(out)
    assert summary["dimensions"]["reengineering"] == {"yes": 3, "(needs review)": 1}  # the empty thread abstains
    assert summary["version"] == f"{BUILTIN_VERSION}+rules-only+no-study-labels"
    rows = sqlite3.connect(path).execute("SELECT evidence FROM predictions WHERE dimension='reengineering' AND label='yes'")
    assert all(json.loads(e)["spans"][-1]["label"] == "fallback" for (e,) in rows)
    versions = sqlite3.connect(path).execute("SELECT DISTINCT model_version FROM predictions").fetchall()
    assert versions == [(f"{BUILTIN_VERSION}+rules-only+no-study-labels",)]  # told apart from the full labeler's
    # With the rules alone, a dimension no rule speaks to in a readable thread has no evidence at all.
    unread = [json.loads(e) for (e,) in sqlite3.connect(path).execute(
        "SELECT evidence FROM predictions WHERE number != 4 AND needs_review = 1 AND dimension IN ('stage', 'impact', "
        "'manifestation', 'code_error', 'root_cause', 'reporter')")]
    assert any(e["reason"] == "no evidence" for e in unread)
    assert all(e["reason"] == ("below threshold" if e["spans"] else "no evidence") for e in unread)


def test_labeling_in_chunks_and_workers_changes_no_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress bar's chunks, labeled here or in worker processes, go thread by thread: the same
    predictions, evidence and frameworks as one pass over all."""
    from taxonomy import classify
    from taxonomy.batch import analyse

    def seen(preds: list[dict]) -> list[dict]:
        return [{d: (p.label, p.probability, p.candidate, p.evidence, p.reason) for d, p in row.items()} for row in preds]

    threads = [analyse(title, [body], list(comments)) for _, _, title, body, comments in THREADS] * 2
    whole = classify.builtin_predictions(threads, progress=False, workers=1)
    monkeypatch.setattr(classify, "LABEL_CHUNK", 3)
    chunked = classify.builtin_predictions(threads, progress=False, workers=1)
    assert len(threads) > classify.LABEL_CHUNK  # more than one chunk: the two workers both label
    in_workers = classify.builtin_predictions(threads, progress=False, workers=2)
    assert seen(chunked) == seen(whole) and seen(in_workers) == seen(whole)
    assert whole[0]["stage"].label == "environment" and whole[4]["stage"].label == "environment"


def test_predict_needs_a_model_choice(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["classify", "predict", "--store", str(store)], capsys)
    assert code == 2 and "exactly one of --model" in err
    code, _, err = run(["classify", "predict", "--model", str(tmp_path / "none.skops"), "--store", str(store)], capsys)
    assert code == 2 and "no such model file" in err


def test_annotation_round_trip(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "sheet"), "--sample", "3"], capsys)
    assert code == 0, err
    sheet = pd.read_csv(tmp_path / "sheet.csv")
    assert len(sheet) == 3 and "impact suggestion" in sheet and "impact definition" in sheet
    assert set(pd.read_excel(tmp_path / "sheet.xlsx", sheet_name=None)) == {"labels", "definitions"}
    a, b = sheet.copy(), sheet.copy()
    a["Impact"], b["Impact"] = ["Crash", "Crash", "Hang"], ["Crash", "Memory exhaustion", "Hang"]
    a["DL stage"], b["DL stage"] = ["Environment", "Training", "Training"], ["Environment", "Training", "Training"]
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "adj"
    code, stdout, err = run(["annotate", "import", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["agreement"]["dimensions"]["stage"]["agreement"] == 1.0 and summary["disagreements"] == 1
    dis = pd.read_csv(out / "disagreements.csv")
    assert list(dis["dimension"]) == ["impact"]
    code, _, err = run(["annotate", "import", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out),
                        "--store", str(store)], capsys)
    assert code == 0 and not (out / "labels.csv").exists()
    dis["adjudicated"] = ["Memory exhaustion"]
    dis.to_csv(out / "decided.csv", index=False)
    code, _, err = run(["annotate", "import", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out),
                        "--adjudicated", str(out / "decided.csv"), "--store", str(store)], capsys)
    assert code == 0, err
    conn = sqlite3.connect(store)
    stored = conn.execute("SELECT label, provenance FROM human_labels WHERE dimension='impact' AND label='memory_exhaustion'").fetchall()
    assert stored and stored[0][1].startswith("adjudicated:")
    code, stdout, _ = run(["annotate", "queue", "--store", str(store), "--json"], capsys)
    queued = json.loads(stdout)
    assert code == 0 and len(queued) == 4 - 3
    assert [q["confidence"] for q in queued] == sorted(q["confidence"] for q in queued)


def test_export_draws_from_the_kept_threads_not_yet_labeled(store: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A second sheet never repeats a labeled thread, and leaves out what the filter dropped unless --all-threads:
    the sheet is then a random sample of the machine-labeled corpus that `analyze --human` corrects."""
    from taxonomy.annotate import store_labels

    conn = sqlite3.connect(store)
    store_labels(conn, pd.DataFrame([{"issue": "https://github.com/acme/detector/issues/1", "defect_index": 1,
                                      "dimension": "impact", "label": "crash", "provenance": "agreed:a|b"}]))
    with conn:
        conn.execute("UPDATE predictions SET label = 'no' WHERE number = 2 AND dimension = 'reengineering'")
    conn.close()
    sheets = {}
    for name, extra in (("kept", []), ("all", ["--all-threads"])):
        code, out, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / name), "--sample", "10",
                              *extra], capsys)
        assert code == 0, err
        sheets[name] = sorted(int(u.rsplit("/", 1)[1]) for u in pd.read_csv(tmp_path / f"{name}.csv")["URL"])
    assert sheets == {"kept": [3, 4], "all": [2, 3, 4]}
    code, out, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "again"), "--sample", "1"], capsys)
    assert code == 0 and out.startswith("1 threads drawn from 2 (1 already labeled, 1 dropped by the filter left out)"), out
    conn = sqlite3.connect(store)
    store_labels(conn, pd.DataFrame([{"issue": f"https://github.com/acme/detector/issues/{n}", "defect_index": 1,
                                      "dimension": "impact", "label": "crash", "provenance": "agreed:a|b"} for n in (3, 4)]))
    conn.close()
    code, out, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "none"), "--sample", "1"], capsys)
    assert code == 2 and "no thread left to annotate: 3 already labeled, 1 dropped" in err and not (tmp_path / "none.csv").exists()


def test_export_queue_puts_the_least_confident_on_the_sheet_and_records_them(store: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A sheet of the queue's threads is recorded as queue-chosen (analyze --human store warns of those labels);
    it skips labeled and filter-dropped threads like a random sheet, and keeps the queue's order."""
    from miner.store import open_store
    from taxonomy.annotate import queue, store_labels

    conn = open_store(store, create=False)
    store_labels(conn, pd.DataFrame([{"issue": "https://github.com/acme/detector/issues/1", "defect_index": 1,
                                      "dimension": "impact", "label": "crash", "provenance": "agreed:a|b"}]))
    with conn:
        conn.execute("UPDATE predictions SET label = 'no' WHERE number = 2 AND dimension = 'reengineering'")
    expected = [q["number"] for q in queue(conn, "builtin", 10) if q["number"] != 2]
    conn.close()
    assert expected[-1] == 4  # the empty thread: last in the queue, as on the sheet
    code, out, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "q"), "--queue", "5"], capsys)
    assert code == 0, err
    assert out.startswith("2 threads the queue's least confident, recorded as queue-chosen, from 2 "), out
    assert [int(u.rsplit("/", 1)[1]) for u in pd.read_csv(tmp_path / "q.csv")["URL"]] == expected == [3, 4]
    conn = sqlite3.connect(store)
    recorded = conn.execute("SELECT number, via FROM queued_threads ORDER BY number").fetchall()
    conn.close()
    assert recorded == [(3, "annotate export --queue: q.csv"), (4, "annotate export --queue: q.csv")]
    code, _, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "both"), "--queue", "1",
                        "--sample", "1"], capsys)
    assert code == 2 and err.startswith("error: give --sample or --queue, not both") and not (tmp_path / "both.csv").exists()
    for bad in (["--sample", "0"], ["--sample", "-1"], ["--queue", "0"]):
        code, _, err = run(["annotate", "export", "--store", str(store), "--out", str(tmp_path / "bad"), *bad], capsys)
        assert code == 2 and err.startswith(f"error: {bad[0]} must be at least 1, got {bad[1]}") and not (tmp_path / "bad.csv").exists()


def test_an_adjudicator_can_decide_no_label(tmp_path: Path) -> None:
    """'none' in the adjudicated column settles a disagreement without a label; a blank one stays open."""
    from reeng.errors import ReengError
    from taxonomy.annotate import final_labels

    urls = [f"https://github.com/lab/yolo/issues/{n}" for n in (1, 2)]
    a = pd.DataFrame({"URL": urls, "Impact": ["Crash", None], "DL stage": ["Training", "Training"]})
    b = pd.DataFrame({"URL": urls, "Impact": ["Crash", "Hang"], "DL stage": ["Training", "Training"]})
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    decided = pd.DataFrame({"issue": [urls[1]], "defect_index": [1], "dimension": ["impact"], "adjudicated": [""]})
    decided.to_csv(tmp_path / "open.csv", index=False)
    with pytest.raises(ReengError, match="1 disagreement"):
        final_labels(tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "open.csv")
    decided.assign(adjudicated=" None ").to_csv(tmp_path / "none.csv", index=False)
    labels = final_labels(tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "none.csv")
    assert sorted(zip(labels["issue"], labels["dimension"])) == [(urls[0], "impact"), (urls[0], "stage"), (urls[1], "stage")]


def test_queue_orders_least_confident_first(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["annotate", "queue", "--store", str(store), "-n", "10", "--json"], capsys)
    items = json.loads(stdout)
    assert code == 0 and len(items) == 4
    # the empty thread's probability of 0 is no uncertainty: it comes last, saying why
    assert (items[-1]["number"], items[-1]["unreadable"]) == (4, "empty")
    readable = items[:-1]
    assert all(i["unreadable"] is None for i in readable)
    assert [i["confidence"] for i in readable] == sorted(i["confidence"] for i in readable)
    code, stdout, _ = run(["annotate", "queue", "--store", str(store)], capsys)
    assert stdout.splitlines()[-1].endswith("(text not read: empty)")
    for n in ("0", "-1"):  # -1 used to list all threads but the last
        code, stdout, err = run(["annotate", "queue", "--store", str(store), "-n", n], capsys)
        assert code == 2 and not stdout and err.startswith(f"error: --limit must be at least 1, got {n}")


def test_a_queue_with_every_thread_labeled_says_so(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every thread already has human labels: the queue is empty and says why (it printed nothing, exit 0)."""
    from taxonomy.annotate import store_labels

    conn = open_store(store, create=False)
    store_labels(conn, pd.DataFrame([{"issue": f"https://github.com/acme/detector/issues/{n}", "defect_index": 1,
                                      "dimension": "impact", "label": "crash", "provenance": "adjudicated"}
                                     for n in (1, 2, 3, 4)]))
    conn.close()
    code, stdout, err = run(["annotate", "queue", "--store", str(store)], capsys)
    assert code == 0 and not stdout
    assert err.strip() == "no thread to queue: every thread model 'builtin' labeled has human labels already"


def test_queue_by_issue_type_is_the_defect_or_not_review_queue(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from taxonomy.cli import QUEUE_DIMENSIONS
    from taxonomy.rules import FILTER_DIMENSIONS, LABEL_DIMENSIONS

    assert QUEUE_DIMENSIONS == (*LABEL_DIMENSIONS, *FILTER_DIMENSIONS)  # the CLI's mirror of the rules' names
    code, stdout, _ = run(["annotate", "queue", "--store", str(store), "-n", "10", "--dimension", "issue_type", "--json"],
                          capsys)
    items = json.loads(stdout)
    conn = sqlite3.connect(store)
    stored = dict(conn.execute("SELECT number, probability FROM predictions WHERE model='builtin' AND dimension='issue_type'"))
    assert code == 0 and len(items) == 4 and {i["weakest_dimension"] for i in items} == {"issue_type"}
    readable = [i for i in items if i["unreadable"] is None]
    assert [i["number"] for i in items if i["unreadable"]] == [4] and items[-1]["number"] == 4
    assert [i["confidence"] for i in readable] == sorted(stored[i["number"]] for i in readable)  # least sure decision first
    code, _, err = run(["annotate", "queue", "--store", str(store), "--dimension", "colour"], capsys)
    assert code == 2 and "colour" in err


def test_study_stage_without_store_does_nothing(tmp_path: Path) -> None:
    from reeng.study import StudyContext
    from taxonomy.study_stages import classify_stage

    ctx = StudyContext(config={}, out=tmp_path, config_dir=tmp_path)
    result = classify_stage(ctx)
    assert result["skipped"] and "no store" in result["lines"][0] and not any(tmp_path.iterdir())


def test_study_stage_with_store(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reeng.study import StudyContext
    from taxonomy.study_stages import classify_stage

    gold = tmp_path / "gold.csv"
    write_gold(gold)
    ctx = StudyContext(config={"gold": {"defects": str(gold)}}, out=tmp_path / "out", config_dir=tmp_path)
    (tmp_path / "out").mkdir()
    ctx.artifacts["store"] = store
    ctx.artifacts["gold_csv"] = gold
    result = classify_stage(ctx)
    copy = tmp_path / "copy.sqlite"  # the store's file alone holds the predictions: the stage closed it (WAL checkpointed)
    copy.write_bytes(store.read_bytes())
    assert sqlite3.connect(copy).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] > 0
    report = json.loads((tmp_path / "out" / "classify" / "gold_eval.json").read_text())
    assert report["threads"] == 2 and report["dimensions"]["impact"]["n"] == 2
    table = pd.read_parquet(ctx.artifacts["machine_defects"])
    from taxonomy.gold import DEFECT_SCHEMA, import_defects

    assert list(table.columns)[:len(DEFECT_SCHEMA)] == list(DEFECT_SCHEMA) and len(table) >= 2
    assert table[list(DEFECT_SCHEMA)].dtypes.astype(str).to_dict() == import_defects(gold).dtypes.astype(str).to_dict()
    assert result["gold_threads"] == 2


def test_study_stage_refuses_a_missing_encoder_before_any_output(store: Path, tmp_path: Path) -> None:
    from reeng.errors import ReengError
    from reeng.study import StudyContext
    from taxonomy.study_stages import classify_stage

    ctx = StudyContext(config={"classify": {"embedding_model": "no-such-encoder"}}, out=tmp_path / "out", config_dir=tmp_path)
    (tmp_path / "out").mkdir()
    ctx.artifacts["store"] = store
    with pytest.raises(ReengError, match="--embedding-model"):
        classify_stage(ctx)
    assert not any((tmp_path / "out").iterdir())


def write_gold(path: Path) -> None:
    """A two-row gold sheet in the published CSV's layout, written for this test."""
    header = ["", "URL", "Repo owner", "Repo name", "Issue #", "Repo type", "Research Prototype", "Repo creation time",
              "Issue creation time", "Time Slot/d", "Label", "Framework", "Same Code?", "Same Data?", "Impacts",
              "Part of Implementation", "Project Type", "Reporter", "Defect types", "Root Causes", "Manifestation"]
    rows = [
        [0, "https://github.com/acme/detector/issues/1", "acme", "detector", 1, "Zoo Repository", "No",
         "2019-01-01T00:00:00Z", "2020-01-01T00:00:00Z", 365, "", "PyTorch", "yes", "yes", "Crash", "Environment",
         "Major replication", "Re-user", "External interface", "Wrong Environment Configuration", "Basic defects"],
        [1, "https://github.com/acme/detector/issues/2", "acme", "detector", 2, "Zoo Repository", "No",
         "2019-01-01T00:00:00Z", "2020-02-01T00:00:00Z", 396, "", "PyTorch", "yes", "yes", "Memory exhaustion",
         "Training", "Major replication", "Re-user", "Memory exhaustion", "GPU Usage Bug", "Basic defects"],
    ]
    pd.DataFrame(rows, columns=header).to_csv(path, index=False)


# A labeled sample of issues by type (written for this test): bug reports fail, feature requests ask for something new,
# questions ask how something works. The store's new threads use none of the defect rules' phrases: the model decides.
_BUG = ["{x} crashes with a segfault", "{x} raises an exception on empty input", "{x} gives wrong boxes after resize",
        "{x} fails when the batch holds one image", "{x} returns NaN in the loss"]
_FEATURE = ["{x} for rotated objects would be a welcome addition", "{x} export to the mobile runtime as a new option",
            "{x} with a second backbone choice, as a proposal", "{x} for video input, a new capability",
            "{x} with mixed precision as an extra mode"]
_QUESTION = ["{x}: which setting do people use for tiny objects", "{x}: what does the stride parameter mean",
             "{x}: where are the pretrained weights described", "{x}: why are there three scales and not two",
             "{x}: which learning rate suits a small dataset"]
_PARTS = ["the detector", "the data loader", "the anchor head", "the exporter", "the evaluator", "the tracker",
          "the trainer", "the augmenter"]


def issue_type_table(path: Path) -> Path:
    rows = [{"title": t.format(x=x), "body": t.format(x=x) + ".", "type": kind}
            for kind, templates in (("bug", _BUG), ("feature", _FEATURE), ("question", _QUESTION))
            for t in templates for x in _PARTS]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_issue_type_model_decides_defect_or_not_after_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A corpus mined from all issues: a model trained on issues labeled by type keeps the bug reports and drops the
    feature requests and questions the rules do not catch; predictions name the model by its data, never its path."""
    model = tmp_path / "types.skops"
    code, _, err = run(["classify", "train", "--data", str(issue_type_table(tmp_path / "types.csv")), "--label-col", "type",
                        "--fast", "--out", str(model)], capsys)
    assert code == 0, err
    path = make_store(tmp_path / "s.sqlite")
    conn = open_store(path)
    for number, title in ((10, "The tracker for rotated objects would be a welcome addition"),
                          (11, "The evaluator: which setting do people use for tiny objects")):
        save_thread(conn, {"repo": "acme/detector", "number": number, "title": title, "body": title + ".", "comments": []},
                    source="test")
    conn.close()
    code, out, err = run(["classify", "predict", "--builtin", "--store", str(path), "--issue-type-model", str(model),
                          "--json"], capsys)
    assert code == 0, err
    db = sqlite3.connect(path)
    rows = {n: (label, version, json.loads(ev)) for n, label, version, ev in db.execute(
        "SELECT number, label, model_version, evidence FROM predictions WHERE model='builtin' AND dimension='issue_type'")}
    assert rows[10][0] == "feature" and rows[11][0] == "question"
    assert rows[1][0] == rows[2][0] == rows[3][0] == "defect"  # the bug reports stay (a constant answer fails one side)
    assert all(v[1].startswith("11+issue-types-") and str(tmp_path) not in v[1] for v in rows.values() if v[0])
    assert any(s["label"] == "issue_type_model" for s in rows[10][2]["spans"])
    from taxonomy.predictions import machine_defects

    kept = set(machine_defects(path, "builtin")["issue_url"].str.extract(r"/(\d+)$")[0].astype(int))
    assert {10, 11}.isdisjoint(kept) and {1, 2, 3} <= kept

    # The same in `reeng study`: the classify section names the model, relative to the config's folder.
    from reeng.study import StudyContext
    from taxonomy.study_stages import classify_stage

    write_gold(tmp_path / "gold.csv")
    ctx = StudyContext(config={"classify": {"issue_type_model": "types.skops"}}, out=tmp_path / "out", config_dir=tmp_path)
    (tmp_path / "out").mkdir()
    ctx.artifacts.update(store=path, gold_csv=tmp_path / "gold.csv")
    classify_stage(ctx)
    table = pd.read_parquet(ctx.artifacts["machine_defects"])
    assert {10, 11}.isdisjoint(set(table["issue_url"].str.extract(r"/(\d+)$")[0].astype(int)))
    ctx = StudyContext(config={"classify": {"issue_type_model": "none.skops"}}, out=tmp_path / "out2", config_dir=tmp_path)
    (tmp_path / "out2").mkdir()
    ctx.artifacts.update(store=path, gold_csv=tmp_path / "gold.csv")
    from reeng.errors import ReengError

    with pytest.raises(ReengError, match="none.skops: no such model file"):
        classify_stage(ctx)
    assert not any((tmp_path / "out2").iterdir())  # refused before any output


def test_issue_type_model_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = issue_type_table(tmp_path / "types.csv")
    frame = pd.read_csv(table)
    frame["type"] = frame["type"].map({"bug": "cat", "feature": "dog", "question": "dog"})
    frame.to_csv(tmp_path / "pets.csv", index=False)
    pets = tmp_path / "pets.skops"
    assert run(["classify", "train", "--data", str(tmp_path / "pets.csv"), "--label-col", "type", "--fast",
                "--out", str(pets)], capsys)[0] == 0
    store = make_store(tmp_path / "s.sqlite")
    not_a_model = tmp_path / "notes.skops"
    not_a_model.write_text("not a model")
    for args, says in ((["--builtin", "--issue-type-model", str(pets)], "needs a defect class"),
                       (["--builtin", "--issue-type-model", str(not_a_model)], "not a reeng model"),
                       (["--model", str(pets), "--issue-type-model", str(pets)], "goes with --builtin")):
        code, out, err = run(["classify", "predict", "--store", str(store), *args], capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], err
    assert sqlite3.connect(store).execute("SELECT name FROM sqlite_master WHERE name='predictions'").fetchone() is None


def test_issue_type_model_with_sentence_embeddings_needs_its_encoder(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_classifier_models import local_embedding_model

    folder = local_embedding_model()
    model = tmp_path / "types.skops"
    assert run(["classify", "train", "--data", str(issue_type_table(tmp_path / "types.csv")), "--label-col", "type", "--fast",
                "--embedding-model", str(folder), "--out", str(model)], capsys)[0] == 0
    from taxonomy.defect_filter import load_issue_type_model

    assert load_issue_type_model(model, folder).embedding_folder is not None
    store = make_store(tmp_path / "s.sqlite")
    code, _, err = run(["classify", "predict", "--builtin", "--store", str(store), "--issue-type-model", str(model)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--embedding-model" in lines[0], err


def test_sheets_import_from_xlsx_and_a_new_decision_replaces_the_stored_one(store: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The XLSX sheet annotate export writes could not be imported ("not a CSV file"); an adjudication changed to
    'none' left the earlier label in the store; labels of threads the store lacks were stored; --store with open
    disagreements stored nothing without a word; a bad adjudication row ended in a traceback."""
    urls = [f"https://github.com/acme/detector/issues/{n}" for n in (1, 2)]
    for name, impacts in (("a", ["Crash", "Crash"]), ("b", ["Crash", "Hang"])):
        pd.DataFrame({"URL": urls, "Impact": impacts, "DL stage": ["Training", "Training"]}).to_excel(
            tmp_path / f"{name}.xlsx", index=False)
    sheets = [str(tmp_path / "a.xlsx"), str(tmp_path / "b.xlsx")]
    code, out, err = run(["annotate", "import", *sheets, "--out", str(tmp_path / "o"), "--store", str(store)], capsys)
    assert code == 0 and "1 disagreements" in out
    assert err.strip().startswith(f"warning: --store {store}: nothing stored: 1 disagreement(s) are not adjudicated")

    def stored() -> list[tuple]:
        conn = sqlite3.connect(store)
        rows = conn.execute("SELECT number, dimension, label FROM human_labels WHERE number IN (1, 2) "
                            "ORDER BY number, dimension").fetchall()
        conn.close()
        return rows

    decision = pd.DataFrame({"issue": [urls[1]], "defect_index": [1], "dimension": ["impact"], "adjudicated": ["hang"]})
    for adjudicated, expected in (("hang", [(1, "impact", "crash"), (1, "stage", "training"), (2, "impact", "hang"),
                                           (2, "stage", "training")]),
                                  ("none", [(1, "impact", "crash"), (1, "stage", "training"), (2, "stage", "training")])):
        decision.assign(adjudicated=adjudicated).to_csv(tmp_path / "d.csv", index=False)
        code, out, err = run(["annotate", "import", *sheets, "--out", str(tmp_path / "o"), "--adjudicated",
                              str(tmp_path / "d.csv"), "--store", str(store)], capsys)
        assert code == 0, err
        assert stored() == expected, adjudicated
    for column, value, message in (("defect_index", "one", "line 2: defect_index 'one' is not a whole number"),
                                   ("adjudicated", "crahs", "line 2, column 'adjudicated': unknown impact label 'crahs' "
                                    "(a category, or 'none' for no label)")):
        decision.assign(**{column: value}).to_csv(tmp_path / "bad.csv", index=False)
        code, _, err = run(["annotate", "import", *sheets, "--out", str(tmp_path / "bad"), "--adjudicated",
                            str(tmp_path / "bad.csv")], capsys)
        assert code == 2 and err.strip() == f"error: {tmp_path / 'bad.csv'}: {message}" and not (tmp_path / "bad").exists()
    elsewhere = [u.replace("acme/detector", "lab/other") for u in urls]
    for name in ("a", "b"):
        pd.DataFrame({"URL": elsewhere, "Impact": ["Crash", "Crash"]}).to_csv(tmp_path / f"x{name}.csv", index=False)
    code, _, err = run(["annotate", "import", str(tmp_path / "xa.csv"), str(tmp_path / "xb.csv"), "--out",
                        str(tmp_path / "x"), "--store", str(store)], capsys)
    assert code == 2 and "2 labeled thread(s) are not in the store, e.g. lab/other#1, lab/other#2" in err
    assert not (tmp_path / "x").exists() and stored() == expected
    (tmp_path / "empty.csv").write_text("URL,Impact\n")
    code, _, err = run(["annotate", "import", str(tmp_path / "empty.csv"), str(tmp_path / "empty.csv"), "--out",
                        str(tmp_path / "e")], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 'empty.csv'}: the sheet holds no issue rows"


def test_queue_ranks_what_the_model_predicts_and_refuses_what_it_does_not(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A model trained on a table's label column (`classify train --data`, here 'kind') predicts none of the six
    taxonomy dimensions: its queue ranks its own target (it printed nothing, exit 0), and a dimension its
    predictions do not hold, or a misspelt one, is one clear error (an empty list before)."""
    from reeng.errors import ReengError
    from taxonomy.annotate import queue
    from taxonomy.labelers import Prediction
    from taxonomy.predictions import write_predictions

    path = make_store(tmp_path / "s.sqlite")
    conn = open_store(path, create=False)
    rows = [("acme/detector", n, {"kind": Prediction("kind", "bug" if p >= 0.5 else None, p, "bug"),
                                  "framework": Prediction("framework", "pytorch", 1.0, "pytorch")})
            for n, p in ((1, 0.9), (2, 0.4), (3, 0.7))]
    write_predictions(conn, rows, "kind", "test")
    assert [q["number"] for q in queue(conn, "kind", 10)] == [2, 3, 1]
    for asked, missing in ((["stage"], "stage"), (["kind", "stagee"], "stagee")):
        with pytest.raises(ReengError, match=f"--dimension {missing}: the predictions of model 'kind' hold no such "
                                             "dimension \\(they hold framework, kind\\)"):
            queue(conn, "kind", 10, asked)
    conn.close()
    code, out, err = run(["annotate", "queue", "--store", str(path), "--model", "kind", "--dimension", "stage"], capsys)
    assert (code, out) == (2, "") and err.startswith("error: --dimension stage: the predictions of model 'kind'")
    code, out, _ = run(["annotate", "queue", "--store", str(path), "--model", "kind"], capsys)
    assert code == 0 and out.splitlines()[0].startswith("acme/detector#2  confidence 0.40  weakest kind")


def test_predict_decision_goes_with_the_builtin_labeler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trained model's best guess is its most probable label: `--decision map` beside `--model` is one error
    (it was ignored without a word)."""
    store = make_store(tmp_path / "s.sqlite")
    code, out, err = run(["classify", "predict", "--store", str(store), "--model", str(tmp_path / "m.skops"),
                          "--decision", "map"], capsys)
    assert (code, out, err) == (2, "", "error: --decision goes with --builtin (a trained --model's best guess is its most "
                                       "probable label)\n")


def test_a_models_predictions_replace_all_its_rows_of_a_thread(tmp_path: Path) -> None:
    """Re-running a model replaces its rows of each thread it labels, also of a dimension it no longer predicts
    (they stayed, with the old version, beside the new ones); other threads and models keep theirs."""
    from taxonomy.labelers import Prediction
    from taxonomy.predictions import read_predictions, write_predictions

    conn = open_store(make_store(tmp_path / "s.sqlite"), create=False)
    label = {"kind": Prediction("kind", "bug", 0.9, "bug"), "type": Prediction("type", "bug", 0.8, "bug")}
    write_predictions(conn, [("acme/detector", n, label) for n in (1, 2)], "m", "v1")
    write_predictions(conn, [("acme/detector", 1, label)], "other", "v1")
    write_predictions(conn, [("acme/detector", 1, {"kind": Prediction("kind", None, 0.4, "bug")})], "m", "v2")
    rows = {(r["model"], r["number"], r["dimension"]): r["model_version"] for r in read_predictions(conn)}
    conn.close()
    assert rows == {("m", 1, "kind"): "v2", ("m", 2, "kind"): "v1", ("m", 2, "type"): "v1",
                    ("other", 1, "kind"): "v1", ("other", 1, "type"): "v1"}


def test_a_trained_model_file_named_builtin_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its predictions would be stored under the built-in labeler's name, replacing some of its rows (framework)
    and mixing two models' versions under one name, as they did."""
    make_store(tmp_path / "s.sqlite")
    code, out, err = run(["classify", "predict", "--store", str(tmp_path / "s.sqlite"), "--model",
                          str(tmp_path / "builtin.skops")], capsys)
    assert (code, out) == (2, "") and err == (f"error: {tmp_path / 'builtin.skops'}: a trained model's predictions are "
                                              "stored under its file's name, and 'builtin' names the built-in labeler's: "
                                              "rename the file\n")


def test_the_predict_summary_line_adds_up_to_the_threads() -> None:
    """`classify predict` showed six labels per dimension and left the others unsaid: impact's line summed to 498 of
    499 threads, root cause's to 488, with nothing to say more were labeled."""
    from taxonomy.cli import counts_line

    counts = {"(needs review)": 396, "api_defect": 41, "low_frequency": 18, "data_preprocessing": 17, "model_weight": 10,
              "gpu_usage": 6, "training_configuration": 5, "wrong_environment": 4, "hyperparameters": 2}
    line = counts_line(counts)
    assert line.endswith("gpu_usage 6, 3 other label(s) 11")
    assert sum(int(part.rsplit(" ", 1)[1]) for part in line.split(", ")) == sum(counts.values())
    assert counts_line({"crash": 3, "(needs review)": 1}) == "crash 3, (needs review) 1"
