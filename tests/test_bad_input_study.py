"""Study configs are checked against a schema; a study whose stage failed does not exit 0."""

from __future__ import annotations

import json

import pytest
import yaml

from reeng.errors import ReengError
from reeng.study import load_config
from reeng.study_config import validate_config
from tests.bad_input_helpers import error_line, gold_csv, nothing_beside
from tests.conftest import run_main
from tests.miner_helpers import FAKE_TOKEN, build_corpus, served

BAD_CONFIGS = {
    "unknown top-level key": ("corpuss:\n  source: offline\n", ["`corpuss`", "did you mean `corpus`"]),
    "unknown section key": ("classify:\n  treshold: 0.3\n", ["`treshold`", "`classify`", "threshold"]),
    "unknown title key": ("analysis:\n  titel: My study\n", ["`titel`", "allowed: title"]),
    "wrong type": ('classify:\n  threshold: "high"\n', ["classify.threshold", "valid number", "'high'"]),
    "out of range": ("classify:\n  threshold: 2\n", ["classify.threshold", "less than or equal to 1"]),
    "list for a section": ("corpus: [a, b]\n", ["corpus", "mapping", "source"]),
    "bad enum": ("corpus:\n  source: ofline\n", ["corpus.source", "'ofline'", "offline"]),
    "bad repos": ("corpus:\n  repos: everything\n", ["corpus.repos", "OWNER/REPO"]),
    "bad stage": ("stages: [gold, teleport]\n", ["teleport"]),
    "not a mapping": ("- gold\n- lint\n", ["mapping of settings"]),
    "broken yaml": ("gold: [unclosed\n", ["not valid YAML", "line"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_error_naming_the_key(tmp_path, capsys, case):
    text, needles = BAD_CONFIGS[case]
    config = tmp_path / "study.yaml"
    config.write_text(text)
    out = tmp_path / "out"
    code, _, err = run_main(["study", str(config), "--out", str(out)], capsys)
    assert code == 2
    line = error_line(err)
    assert line.startswith(f"error: {config}: ")
    for needle in needles:
        assert needle in line, line
    nothing_beside(out)


def test_binary_garbage_is_not_a_config(tmp_path, capsys):
    config = tmp_path / "garbage.yaml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00")
    out = tmp_path / "out"
    code, _, err = run_main(["study", str(config), "--out", str(out)], capsys)
    assert code == 2 and "not UTF-8" in error_line(err)
    nothing_beside(out)


def test_the_shipped_config_and_a_reuse_section_validate():
    config, _ = load_config(None)
    assert config["classify"]["threshold"] == 0.5 and config["corpus"]["source"] == "auto"
    checked = validate_config({"reuse": {"setting": "tiny", "seeds": [0, 1], "experiments": ["seam"]},
                               "classify": {"threshold": "0.25"}, "corpus": {"limit": None}})
    assert checked["reuse"] == {"setting": "tiny", "seeds": [0, 1], "experiments": ["seam"]}
    assert checked["classify"] == {"threshold": 0.25}  # typed, and only what the user wrote
    assert checked["corpus"] == {}  # `limit:` left empty means the stage's default
    with pytest.raises(ReengError, match="reuse: must be a mapping"):
        validate_config({"reuse": [1, 2]})
    with pytest.raises(ReengError, match="reuse.setting"):
        validate_config({"reuse": {"setting": "huge"}})
    with pytest.raises(ReengError, match="weak"):
        validate_config({"classify": {"weak": True}})  # the weak-supervision model is gone


def _corpus_config(tmp_path, url: str, repos: list[str]):
    config = {"stages": ["corpus"], "gold": {"defects": str(gold_csv(tmp_path / "gold.csv", 2, "acme/detector"))},
              "corpus": {"source": "github", "api_url": str(url), "repos": repos, "api": "rest"}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def tiny_github(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    monkeypatch.delenv("GITHUB_TOKENS", raising=False)
    with served(build_corpus(tmp_path / "served.sqlite", {"acme/detector": 3}, long_thread=2)) as url:
        yield url


def test_a_corpus_stage_that_failed_completely_fails_the_study(tmp_path, capsys, tiny_github):
    config = _corpus_config(tmp_path, tiny_github, ["nope/nope", "gone/away"])
    out = tmp_path / "out"
    code, _, err = run_main(["study", str(config), "--out", str(out)], capsys)
    assert code == 2
    assert "corpus: no thread collected from any of 2 repositories" in error_line(err, progress=True)
    nothing_beside(out)
    # --keep-going keeps what there is, but a study without a corpus still does not succeed.
    code, _, err = run_main(["study", str(config), "--out", str(out), "--keep-going"], capsys)
    assert code == 2 and "stage(s) corpus failed" in error_line(err, progress=True)
    assert json.loads((out / "summary.json").read_text())["failed"]["corpus"]["complete"] is True


def test_a_partly_failed_stage_stops_the_study_unless_keep_going(tmp_path, capsys, tiny_github):
    config = _corpus_config(tmp_path, tiny_github, ["acme/detector", "nope/nope"])
    out = tmp_path / "out"
    code, _, err = run_main(["study", str(config), "--out", str(out)], capsys)
    assert code == 2
    line = error_line(err, progress=True)
    assert "stage corpus failed (1 failure(s): nope/nope" in line and "--keep-going" in line
    nothing_beside(out)
    code, stdout, err = run_main(["study", str(config), "--out", str(out), "--keep-going"], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"]["corpus"]["complete"] is False and "nope/nope" in summary["failed"]["corpus"]["failed"]
    assert summary["corpus"]["threads"] == 3
