"""Fuzzing every reader through the CLI: random bytes, truncated valid files and wrong types.

Whatever the input, a command either works or ends with one ``error:`` line and exit status 2,
never a traceback. The readers of the study config, gold sheets and defect tables belong to this
layer and must give exit 2. For readers of other layers (JSONL import, SQLite store, model
files) the test holds the error boundary's promise: exit 2 with one line, or, where a reader
still fails in a way nobody expected, exit 1 with one line naming a log file that holds the
traceback. Examples are few (CI stays fast) and run in this process.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reeng.study_config import StudyConfig, validate_config
from reeng.errors import ReengError
from tests.bad_input_helpers import boundary_ok, error_line, gold_csv
from tests.conftest import run_main

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
counter = itertools.count()


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_TOKENS", raising=False)
    return tmp_path


def _fresh(work: Path) -> Path:
    folder = work / f"case{next(counter)}"
    folder.mkdir()
    return folder


def _truncations(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, max(len(valid) - 1, 0)).map(lambda n: valid[:n])


def _this_layer(code: int, err: str, out: Path | None = None) -> str:
    """The promise for this layer's readers: exit 2, one line, nothing written."""
    assert code == 2, err
    line = error_line(err)
    if out is not None:
        assert not out.exists()
    return line


# ---- the study config -------------------------------------------------------------------------

def _study(work: Path, data: bytes, capsys) -> tuple[int, str]:
    folder = _fresh(work)
    (folder / "study.yaml").write_bytes(data)
    blocked = folder / "out"
    blocked.write_text("a file where the output folder would go")  # a valid config stops here, before any stage
    code, _, err = run_main(["study", str(folder / "study.yaml"), "--out", str(blocked)], capsys)
    return code, err


@FUZZ
@given(data=st.binary(max_size=300))
def test_study_config_random_bytes(work, capsys, data):
    code, err = _study(work, data, capsys)
    _this_layer(code, err)


SHIPPED = (Path(__file__).resolve().parents[1] / "reeng" / "studies" / "jiang2024.yaml").read_bytes()


@FUZZ
@given(data=_truncations(SHIPPED))
def test_study_config_truncated(work, capsys, data):
    code, err = _study(work, data, capsys)
    _this_layer(code, err)


SECTION_KEYS = [(name, key) for name, field in StudyConfig.model_fields.items()
                for key in getattr(field.annotation, "model_fields", {})]
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                      st.text(max_size=12), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@FUZZ
@given(where=st.sampled_from(SECTION_KEYS), value=ANY_VALUE)
def test_study_config_wrong_types(work, capsys, where, value):
    section, key = where
    text = yaml.safe_dump({section: {key: value}}).encode()
    code, err = _study(work, text, capsys)
    line = _this_layer(code, err)
    try:
        validate_config({section: {key: value}})
    except ReengError:
        assert f"{section}.{key}" in line, line  # a rejected value is named by its key
    else:
        assert "exists and is not a folder" in line  # an accepted one reached the output check


# ---- gold sheets (CSV) and defect tables (Parquet) ------------------------------------------------

def _gold(work: Path, data: bytes, capsys, suffix: str = ".csv") -> None:
    folder = _fresh(work)
    path = folder / f"gold{suffix}"
    path.write_bytes(data)
    out = folder / "out"
    code, _, err = run_main(["gold", "import", str(path), "--out", str(out)], capsys)
    if code != 0:
        _this_layer(code, err, out)
    code, _, err = run_main(["gold", "lint", str(path)], capsys)
    if code != 0:
        _this_layer(code, err)


@FUZZ
@given(data=st.binary(max_size=400))
def test_gold_csv_random_bytes(work, capsys, data):
    _gold(work, data, capsys)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, Path]:
    """A valid gold sheet and its Parquet defect table, made with the CLI."""
    folder = tmp_path_factory.mktemp("valid")
    gold = gold_csv(folder / "gold.csv", rows=4)
    from reeng.cli import main

    main(["gold", "import", str(gold), "--out", str(folder / "out")])
    return {"csv": gold, "parquet": folder / "out" / "defects.parquet"}


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_gold_csv_truncated(work, capsys, valid_files, cut):
    data = valid_files["csv"].read_bytes()
    _gold(work, data[:int(cut * len(data))], capsys)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"PAR1" + b + b"PAR1")))
def test_parquet_random_bytes(work, capsys, data):
    path = _fresh(work) / "defects.parquet"
    path.write_bytes(data)
    code, _, err = run_main(["gold", "lint", str(path)], capsys)
    assert "not a readable table" in _this_layer(code, err)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_parquet_truncated(work, capsys, valid_files, cut):
    data = valid_files["parquet"].read_bytes()
    path = _fresh(work) / "defects.parquet"
    path.write_bytes(data[:int(cut * len(data))])
    code, _, err = run_main(["gold", "lint", str(path)], capsys)
    _this_layer(code, err)
    out = path.parent / "report"
    code, _, err = run_main(["analyze", "--defects", str(path), "--out", str(out), "--formats", "png"], capsys)
    boundary_ok(code, err)


# ---- other layers' readers: the boundary's promise -----------------------------------------------

@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    from tests.miner_helpers import build_corpus, export_text

    folder = tmp_path_factory.mktemp("export")
    export_text(build_corpus(folder / "corpus.sqlite", {"acme/detector": 6}, long_thread=3), folder / "jsonl")
    return folder


@FUZZ
@given(which=st.sampled_from(["issues.jsonl", "comments.jsonl"]),
       data=st.one_of(st.binary(max_size=200), st.floats(0, 1, exclude_max=True)))
def test_jsonl_import(work, capsys, export, which, data):
    folder = _fresh(work)
    for name in ("issues.jsonl", "comments.jsonl"):
        (folder / name).write_bytes((export / "jsonl" / name).read_bytes())
    valid = (folder / which).read_bytes()
    (folder / which).write_bytes(data if isinstance(data, bytes) else valid[:int(data * len(valid))])
    code, _, err = run_main(["import", "jsonl", str(folder), "--store", str(folder / "s.db")], capsys)
    boundary_ok(code, err, allow_success=True)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.floats(0, 1, exclude_max=True)))
def test_sqlite_store(work, capsys, export, data):
    valid = (export / "corpus.sqlite").read_bytes()
    folder = _fresh(work)
    store = folder / "s.db"
    store.write_bytes(data if isinstance(data, bytes) else valid[:int(data * len(valid))])
    code, _, err = run_main(["export", "--store", str(store), "--format", "jsonl", "--out", str(folder / "out")],
                            capsys)
    boundary_ok(code, err, allow_success=True)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b)))
def test_model_file(work, capsys, export, data):
    folder = _fresh(work)
    model = folder / "model.skops"
    model.write_bytes(data)
    code, _, err = run_main(["classify", "predict", "--model", str(model), "--store",
                             str(export / "corpus.sqlite")], capsys)
    boundary_ok(code, err)
