"""The analysis and release stages inside ``reeng study``."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from analysis.release_check import validate_release
from analysis.study_stages import analysis_stage, release_stage
from analysis.synthetic import synthetic_defects
from reeng.study import STAGES, StudyContext, load_config, run_study
from tests.test_analysis_release import make_store


def test_stages_are_registered_last():
    names = list(STAGES)
    assert names[-2:] == ["analysis", "release"]
    assert names.index("agreement") < names.index("analysis")


@pytest.mark.slow
@pytest.mark.shared_data
def test_default_study_ends_with_one_report_and_one_release(jiang_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    config, config_dir = load_config(None)
    out = tmp_path / "study"
    run_study(config, config_dir, out, ["gold", "lint", "agreement", "analysis", "release"])
    assert (out / "report" / "report.html").is_file() and (out / "release" / "datapackage.json").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    html = unescape((out / "report" / "report.html").read_text())
    assert "87.9%" in html and "46.5%" in html and "label_drift" in html and "Cohen's κ" in html
    assert "gold/defects.parquet" in html  # provenance names the study's own file, not a staging path
    summary = json.loads((out / "summary.json").read_text())
    assert summary["analysis"]["claims"] == {"reported_by_re_users": 58.3, "reproducibility_in_training": 68.4,
                                             "environment_interface": 87.9, "environment_api": 46.5}
    assert summary["release"]["rows"]["defect_labels"] == 348 * 11 - 1  # one repo_type label is missing
    assert validate_release(out / "release") == []


def test_stages_use_every_artifact_when_present(tmp_path, monkeypatch):
    """Machine labels, the classifier's gold comparison, reproduction results and a store all reach the outputs."""
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    synthetic_defects(120, seed=21, provenance="jiang2024:adjudicated").to_parquet(tmp_path / "defects.parquet", index=False)
    other = synthetic_defects(120, seed=22, provenance="model:tfidf-logreg@0.3.1")
    other["owner"] = other["owner"].str.replace("owner", "other")
    other["issue_url"] = other["issue_url"].str.replace("owner", "other")
    other.to_parquet(tmp_path / "machine.parquet", index=False)
    (tmp_path / "gold_eval.json").write_text(json.dumps({"dimensions": {"stage": {"macro_f1": 0.555, "kappa": 0.444, "n": 120}}}))
    (tmp_path / "reproduction.json").write_text(json.dumps({"results": [
        {"case": "case-one", "issues": [], "labels": {}, "verdict": "not_reproduced", "figures": [], "seconds": 1.0, "versions": {}}]}))
    out = tmp_path / "study"
    out.mkdir()
    ctx = StudyContext(config={"name": "t", "release": {"include_machine_defects": True}}, out=out, config_dir=tmp_path, artifacts={
        "defects": tmp_path / "defects.parquet", "machine_defects": tmp_path / "machine.parquet",
        "gold_eval": tmp_path / "gold_eval.json", "reproduction": tmp_path / "reproduction.json",
        "store": make_store(tmp_path / "store.sqlite"),
    })
    summary = analysis_stage(ctx)
    # different threads: the comparison is a corpus vs the study, and says so
    assert "study (human) vs corpus (machine) comparison included (corpus vs study)" in summary["lines"]
    html = unescape((out / "report" / "report.html").read_text())
    # the gold comparison's row (kappa 0.444 and macro-F1 0.555 at two digits; the bare numbers had matched a
    # cluster-bootstrap bound and a Monte-Carlo p elsewhere in the report)
    gold_row = '<td class="label">stage</td><td>120</td><td>n/a</td><td>0.44</td><td>n/a</td><td>0.56</td>'
    for text in ("Comparison: study (human) vs corpus (machine)", "Design: corpus vs study: independent samples", gold_row,
                 "case-one", "not_reproduced", "not available: not provided"):  # lint and agreement were not produced
        assert text in html, text
    release = release_stage(ctx)
    assert release["rows"]["issues"] == 2 and release["rows"]["comments"] == 2
    assert validate_release(out / "release") == []
    assert ctx.artifacts["release"] == out / "release" and ctx.artifacts["report"] == out / "report" / "report.html"
    labels = pd.read_parquet(out / "release" / "data" / "defect_labels.parquet")
    model = labels[labels["provenance"] == "model"]
    assert set(model["model"]) == {"tfidf-logreg"} and model["probability"].notna().all()
    readme = (out / "release" / "README.md").read_text()
    assert "macro-F1 0.56" in readme and str(out) not in readme


def test_default_comparison_is_human_vs_machine_on_the_same_threads(tmp_path, monkeypatch):
    """When the classifier labeled gold threads, only those threads are compared, as paired labels."""
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    gold = synthetic_defects(200, seed=31, provenance="jiang2024:adjudicated")
    gold.to_parquet(tmp_path / "defects.parquet", index=False)
    corpus = synthetic_defects(300, seed=32, provenance="model:builtin@1")
    corpus["issue_url"] = corpus["issue_url"].str.replace("owner", "other")
    machine = pd.concat([gold.iloc[:60].assign(provenance="model:builtin@1"), corpus])
    machine.to_parquet(tmp_path / "machine.parquet", index=False)
    out = tmp_path / "study"
    out.mkdir()
    ctx = StudyContext(config={"name": "t"}, out=out, config_dir=tmp_path,
                       artifacts={"defects": tmp_path / "defects.parquet", "machine_defects": tmp_path / "machine.parquet"})
    summary = analysis_stage(ctx)
    assert summary["comparison"] == "paired"
    compare = json.loads((out / "report" / "compare.json").read_text())
    assert compare["kind"] == "paired" and compare["agreement"]["threads"] == gold.iloc[:60]["issue_url"].nunique()
    assert compare["agreement"]["dimensions"]["stage"]["agreement"] == 1.0
    tables = json.loads((out / "report" / "tables.json").read_text())
    # the study's own tables keep every gold defect; only the comparison is restricted to shared threads
    assert sum(tables["marginals"]["stage"].values()) == gold["stage"].notna().sum()
    assert compare["sources"][0].endswith("(threads also machine-labeled)")


def test_release_stage_without_store_releases_defects_only(tmp_path, monkeypatch):
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    synthetic_defects(30, seed=23).to_parquet(tmp_path / "defects.parquet", index=False)
    (tmp_path / "study").mkdir()
    ctx = StudyContext(config={}, out=tmp_path / "study", config_dir=tmp_path, artifacts={"defects": tmp_path / "defects.parquet"})
    assert set(release_stage(ctx)["rows"]) == {"defect_labels"}
    assert validate_release(Path(ctx.artifacts["release"])) == []


def test_stages_without_the_gold_table_say_what_to_run(tmp_path):
    from reeng.errors import ReengError

    ctx = StudyContext(config={}, out=tmp_path, config_dir=tmp_path)
    for stage in (analysis_stage, release_stage):
        with pytest.raises(ReengError, match="--stage gold"):
            stage(ctx)
