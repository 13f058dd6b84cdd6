"""Bad input: one clear error line, a non-zero exit, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

GOOD_HEADER = (",URL,Repo owner,Repo name,Issue #,Repo type,Research Prototype,Framework,Same Code?,Same Data?,"
               "Impacts,Part of Implementation,Project Type,Reporter,Defect types,Root Causes,Manifestation\n")
GOOD_ROW = ("0,https://github.com/a/b/issues/1,a,b,1,Solo Repository,No,pytorch,Yes,Yes,Crash,Environment,"
            '"User ""fork""",Re-user,External interface,API defects,Basic defects\n')


def assert_clean_failure(result, out: Path, *needles: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())


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
