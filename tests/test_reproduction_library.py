"""The shipped case library: well-formed, covering the study's stages, and reproducing on CPU."""

import os
from pathlib import Path

import pytest

from analysis.reproduction.case import LABEL_DIMENSIONS
from analysis.reproduction.runner import discover, run_cases


@pytest.fixture(scope="module")
def entries():
    return discover()


@pytest.fixture(scope="module")
def report(entries, tmp_path_factory):
    return run_cases(entries, device="cpu", progress=False, out=tmp_path_factory.mktemp("library"))


def test_library_is_well_formed_and_covers_all_stages(entries):
    assert len(entries) >= 12
    assert [e.id for e in entries if e.problem()] == []
    assert {e.meta.labels["stage"] for e in entries} == {"environment", "data_pipeline", "modeling", "training"}
    assert len({e.id for e in entries}) == len(entries)


def test_every_cpu_case_reproduces_and_gpu_cases_skip_with_reason(entries, report):
    by_case = {r["case"]: r for r in report["results"]}
    for entry in entries:
        row, detail = by_case[entry.id], report["details"][entry.id]
        if entry.meta.needs_cuda:
            assert row["verdict"] == "skipped" and "needs CUDA" in detail["reason"]
        elif entry.meta.requires and row["verdict"] == "skipped":
            assert "not installed" in detail["reason"]
        else:
            assert row["verdict"] == "reproduced", (entry.id, detail)
            assert detail["buggy"]["agrees"] is False and detail["fixed"]["agrees"] is True


def test_results_carry_versions_and_figures(report):
    for row in report["results"]:
        assert row["versions"]["torch"] and row["versions"]["numpy"]
    located = [f for r in report["results"] for f in r["figures"]]
    assert any(f.endswith("localization_buggy.png") for f in located)


def test_localization_names_the_ported_layer_at_fault(report):
    assert report["details"]["tf_same_padding_port"]["buggy"]["figures"]["culprit"] == "down"
    assert report["details"]["batchnorm_conventions_port"]["buggy"]["figures"]["culprit"] == "bn1"
    assert report["details"]["faster_rcnn_zero_based_boxes"]["buggy"]["status"] == "nonfinite"


@pytest.mark.shared_data
def test_case_labels_match_the_gold_labels_of_their_issue(entries):
    data_dir = os.environ.get("REENG_DATA_DIR")
    if not data_dir:
        pytest.skip("REENG_DATA_DIR is not set: the gold labels are needed")
    from taxonomy.gold import import_defects

    gold = import_defects(Path(data_dir) / "jiang2024-cv-reengineering" / "CV_Reengineeirng_Defects.csv")
    rows = {tuple(r) for r in gold[["issue_url", *LABEL_DIMENSIONS]].itertuples(index=False)}
    urls = set(gold["issue_url"])
    for entry in entries:
        assert all(url in urls for url in entry.meta.issues), entry.id
        labels = tuple(entry.meta.labels[d] for d in LABEL_DIMENSIONS)
        assert (entry.meta.issues[0], *labels) in rows, f"{entry.id}: labels differ from the gold row of its issue"
