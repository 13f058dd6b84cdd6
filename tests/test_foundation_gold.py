"""Gold import, lint and agreement on the study's real published files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reeng.errors import ReengError
from taxonomy.agreement import agreement
from taxonomy.gold import DEFECT_SCHEMA, import_defects, import_non_reengineering
from taxonomy.lint import lint_file

DEFECTS = "CV_Reengineeirng_Defects.csv"


@pytest.fixture(scope="module")
def defects(jiang_dir: Path) -> pd.DataFrame:
    return import_defects(jiang_dir / DEFECTS)


def counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    return {k: int(v) for k, v in frame[column].value_counts().items()}


def test_normalized_counts_equal_the_study(defects):
    assert len(defects) == 348
    assert counts(defects, "manifestation") == {"basic": 225, "evolutionary": 85, "reproducibility": 38}
    assert counts(defects, "stage") == {"environment": 157, "training": 90, "data_pipeline": 68, "modeling": 33}
    assert counts(defects, "reporter") == {"re_user": 203, "adaptor": 90, "enhancer": 50, "replicator": 5}
    assert counts(defects, "impact")["crash"] == 219
    assert counts(defects, "framework")["pytorch"] == 165
    assert defects[["owner", "repo"]].drop_duplicates().shape[0] == 27


def test_defect_table_has_the_documented_columns_and_ids(defects):
    assert list(defects.columns) == list(DEFECT_SCHEMA)
    assert defects["number"].dtype == "int64"
    assert not defects["issue_url"].str.contains("#").any()
    # one issue holding several defects is numbered 1, 2, ...
    multi = defects[defects["issue_url"].duplicated(keep=False)].groupby("issue_url")["defect_index"].apply(list)
    assert all(v == list(range(1, len(v) + 1)) for v in multi)
    assert defects["repo_type"].isna().sum() == 1  # row 108 has no repo type in the published file


def test_gold_import_cli_writes_parquet_and_csv(reeng, jiang_dir, tmp_path):
    result = reeng("gold", "import", str(jiang_dir / DEFECTS), "--out", str(tmp_path / "gold"))
    assert result.returncode == 0, result.stderr
    parquet = pd.read_parquet(tmp_path / "gold" / "defects.parquet")
    csv = pd.read_csv(tmp_path / "gold" / "defects.csv")
    assert len(parquet) == len(csv) == 348
    assert parquet["stage"].value_counts()["environment"] == 157


def test_non_reengineering_import_detects_the_shift(jiang_dir):
    frame = import_non_reengineering(jiang_dir / "Non_Reengineering_Defects.csv")
    assert len(frame) == 93
    # after realignment issue creation follows repository creation and the slot counts the days between
    created = pd.to_datetime(frame["issue_created_at"], utc=True)
    repo_created = pd.to_datetime(frame["repo_created_at"], utc=True)
    assert (created >= repo_created).all()
    days = (created - repo_created).dt.days
    assert ((days - frame["time_slot_days"]).abs() <= 1).all()


def test_non_reengineering_unshifted_file_reads_as_headed(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text(
        ",URL,Repo owner,Repo name,Issue #,Repo type,Research Prototype,Repo creation time,Issue creation time,Time Slot/d,Label\n"
        "0,https://github.com/a/b/issues/3,a,b,3,Solo Repository,No,2020-01-01T00:00:00Z,2020-01-11T00:00:00Z,10,bug\n"
    )
    frame = import_non_reengineering(path)
    assert frame.loc[0, "time_slot_days"] == 10
    assert frame.loc[0, "issue_created_at"] == "2020-01-11T00:00:00Z"
    assert frame.loc[0, "issue_labels"] == "bug"


def test_lint_finds_duplicates_row_108_and_prototype_conflicts(reeng, jiang_dir):
    result = reeng("gold", "lint", str(jiang_dir / DEFECTS), "--json")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    dups = sorted(f["rows"] for f in findings if f["kind"] == "duplicate_rows")
    assert dups == [["0", "1"], ["290", "291"]]
    missing = [f for f in findings if f["kind"] == "missing_value" and f["column"] == "Repo type"]
    assert missing and missing[0]["rows"] == ["108"]
    drift = next(f for f in findings if f["kind"] == "label_drift" and f["column"] == "Framework")
    assert set(drift["detail"]["pytorch"]) == {"Pytorch", "pytorch", "PyTorch"}
    outside = {f["detail"]["category"] for f in findings if f["kind"] == "outside_instrument" and f["column"] == "Defect types"}
    assert outside == {"memory_exhaustion", "syntax_error"}
    assert any(f["kind"] == "research_prototype_conflict" for f in findings)


def test_lint_strict_exits_one_on_findings(reeng, jiang_dir):
    assert reeng("gold", "lint", str(jiang_dir / DEFECTS), "--strict").returncode == 1


def test_lint_reports_the_shifted_columns_of_the_negatives(jiang_dir):
    findings = lint_file(jiang_dir / "Non_Reengineering_Defects.csv")
    shifted = {f.column for f in findings if f.kind == "shifted_columns"}
    assert "Repo type" in shifted and "Time Slot/d" in shifted
    assert not any(f.kind == "unknown_label" for f in findings)


def test_agreement_on_the_final_round(jiang_dir):
    result = agreement(jiang_dir / "kappa_Final1.csv", jiang_dir / "kappa_Final2.csv")
    dims = result.dimensions
    assert dims["impact"].kappa == pytest.approx(0.75, abs=0.035)
    assert dims["manifestation"].kappa == pytest.approx(0.67, abs=0.01)
    assert result.unmatched == {"only_a": ["209#2"], "only_b": ["222#2"]}
    # the identifier column is never compared
    assert "issue" not in dims and set(dims) <= {"framework", "same_code", "same_data", "stage", "impact",
                                                  "code_error", "root_cause", "manifestation"}


def test_agreement_cli_json_shape(reeng, jiang_dir):
    result = reeng("agreement", str(jiang_dir / "kappa_Final1.csv"), str(jiang_dir / "kappa_Final2.csv"), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload["dimensions"]["impact"]) >= {"kappa", "agreement", "n"}


def test_agreement_aligns_by_issue_and_position_not_by_line(tmp_path):
    header = "Issue #,Impacts,Manifestation\n"
    (tmp_path / "a.csv").write_text(header + "1,Crash,Basic defects\n2,crash,Basic defects\n2,Hang,Reproducibility defects\n")
    (tmp_path / "b.csv").write_text(header + "2,Crash,basic defects\n2,Hang,Reproducibility defects\n1,Crash,Basic defects\n")
    result = agreement(tmp_path / "a.csv", tmp_path / "b.csv")
    assert result.dimensions["impact"].agreement == 1.0
    assert result.dimensions["manifestation"].kappa == pytest.approx(1.0)


def test_agreement_unknown_label_is_an_error_naming_line_and_value(tmp_path):
    (tmp_path / "a.csv").write_text("Issue #,Impacts\n1,Exploded\n")
    (tmp_path / "b.csv").write_text("Issue #,Impacts\n1,Crash\n")
    with pytest.raises(ReengError, match="line 2.*Impacts.*'Exploded'"):
        agreement(tmp_path / "a.csv", tmp_path / "b.csv")
