"""Bad input: one clear error line, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_input_helpers import GOOD_HEADER, GOOD_ROW, error_line, nothing_beside
from tests.conftest import run_main


def assert_clean_failure(result, out: Path, *needles: str) -> None:
    assert result.returncode == 2
    line = error_line(result.stderr)
    for needle in needles:
        assert needle in line
    nothing_beside(out)


def test_missing_file(reeng, tmp_path):
    out = tmp_path / "out"
    assert_clean_failure(reeng("gold", "import", str(tmp_path / "nope.csv"), "--out", str(out)), out, "no such file")


def test_missing_column(reeng, tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text(GOOD_HEADER.replace(",Manifestation", "") + GOOD_ROW.rsplit(",", 1)[0] + "\n")
    out = tmp_path / "out"
    assert_clean_failure(reeng("gold", "import", str(path), "--out", str(out)), out, "'Manifestation'")


def test_unknown_label_names_row_column_and_value(reeng, tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text(GOOD_HEADER + GOOD_ROW + GOOD_ROW.replace("0,", "7,", 1).replace("Environment", "Deployment"))
    out = tmp_path / "out"
    assert_clean_failure(reeng("gold", "import", str(path), "--out", str(out)), out,
                         "row 7", "'Part of Implementation'", "'Deployment'")


def test_not_a_csv(reeng, tmp_path):
    path = tmp_path / "gold.csv"
    path.write_bytes(b"%PDF-1.4\n\x00\x01\x02\xff\xfe binary")
    out = tmp_path / "out"
    assert_clean_failure(reeng("gold", "import", str(path), "--out", str(out)), out, "not a CSV")


def test_good_minimal_file_imports(reeng, tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text(GOOD_HEADER + GOOD_ROW)
    result = reeng("gold", "import", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "defects.parquet").is_file()


def test_bad_study_config(reeng, tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("stages: [gold, teleport]\n")
    out = tmp_path / "study-out"
    assert_clean_failure(reeng("study", str(config), "--out", str(out)), out, "teleport")


def test_lint_reports_a_missing_label_column(tmp_path, capsys):
    """A defect sheet without its Manifestation column: every manifestation count would be silently empty."""
    path = tmp_path / "gold.csv"
    path.write_text(GOOD_HEADER.replace(",Manifestation", "") + GOOD_ROW.rsplit(",", 1)[0] + "\n")
    code, out, err = run_main(["gold", "lint", str(path), "--json"], capsys)
    assert code == 0, err
    findings = json.loads(out)["findings"]
    assert [f["column"] for f in findings if f["kind"] == "missing_column"] == ["Manifestation"]
    assert run_main(["gold", "lint", str(path), "--strict"], capsys)[0] == 1
    complete = tmp_path / "complete.csv"
    complete.write_text(GOOD_HEADER + GOOD_ROW)
    assert "missing_column" not in run_main(["gold", "lint", str(complete)], capsys)[1]


def test_lint_reports_a_missing_label_column_in_the_published_layout(tmp_path, capsys):
    """The published defect sheet also holds every column of the non-reengineering sheet (time slot, label):
    a label column missing from it is still reported, and the non-reengineering sheet still has none to miss."""
    extra = ",Repo creation time,Issue creation time,Time Slot/d,Label"
    header = GOOD_HEADER.replace(",Research Prototype", ",Research Prototype" + extra)
    row = GOOD_ROW.replace(",No,pytorch", ",No,2019-01-01,2019-02-01,31,bug,pytorch")
    path = tmp_path / "gold.csv"
    path.write_text(header.replace(",Manifestation", "") + row.rsplit(",", 1)[0] + "\n")
    code, out, err = run_main(["gold", "lint", str(path), "--json"], capsys)
    assert code == 0, err
    assert [f["column"] for f in json.loads(out)["findings"] if f["kind"] == "missing_column"] == ["Manifestation"]
    non_reeng = tmp_path / "non_reeng.csv"
    non_reeng.write_text(",URL,Repo owner,Repo name,Issue #,Repo type,Research Prototype" + extra
                         + "\n0,https://github.com/a/b/issues/1,a,b,1,Solo Repository,No,2019-01-01,2019-02-01,31,bug\n")
    assert "missing_column" not in run_main(["gold", "lint", str(non_reeng)], capsys)[1]
