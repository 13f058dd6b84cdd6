"""Verdict logic, bad input, selection and the CLI/study wiring, on synthetic cases."""

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.reproduce_cli import reproduce_group
from analysis.reproduction.runner import discover, parse_select, run_cases, select
from reeng.errors import ReengError

HEADER = '''
import torch
from analysis.reproduction.case import ReproCase, SkipCase, case
LABELS = {"stage": "training", "manifestation": "basic", "impact": "crash", "root_cause": "hyperparameters"}
URL = "https://github.com/ultralytics/yolov5/issues/292"
'''

CASES = {
    "good": '''
@case(id="good", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class Good(ReproCase):
    def reference(self, ctx, inputs): return torch.ones(3)
    def buggy(self, ctx, inputs): return torch.ones(3) * 2
    def fixed(self, ctx, inputs): return torch.ones(3)
''',
    "fixed_deviates": '''
@case(id="fixed_deviates", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class FixedDeviates(ReproCase):
    def reference(self, ctx, inputs): return torch.ones(3)
    def buggy(self, ctx, inputs): return torch.ones(3) * 2
    def fixed(self, ctx, inputs): return torch.ones(3) * 1.5
''',
    "buggy_agrees": '''
@case(id="buggy_agrees", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class BuggyAgrees(ReproCase):
    def reference(self, ctx, inputs): return torch.ones(3)
    def buggy(self, ctx, inputs): return torch.ones(3)
    def fixed(self, ctx, inputs): return torch.ones(3)
''',
    "rewrites_inputs": '''
@case(id="rewrites_inputs", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class RewritesInputs(ReproCase):
    def inputs(self, ctx): return torch.arange(6.0) * 20
    def reference(self, ctx, x): return x / 255
    def buggy(self, ctx, x):
        x /= 256  # the port's constant, applied to its input in place
        return x
    def fixed(self, ctx, x): return x / 255
''',
    "raises": '''
@case(id="raises", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class Raises(ReproCase):
    def reference(self, ctx, inputs): raise ZeroDivisionError("boom in reference")
''',
    "exits": '''
@case(id="exits", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class Exits(ReproCase):
    def reference(self, ctx, inputs): return torch.ones(3)
    def buggy(self, ctx, inputs):
        import sys
        sys.exit(3)
    def fixed(self, ctx, inputs): return torch.ones(3)
''',
    "bad_labels": '''
@case(id="bad_labels", title="t", issues=["https://example.com/x"], labels={"stage": "cooking"},
      reference="r", reference_kind="guess")
class BadLabels(ReproCase):
    pass
''',
    "missing_field": '''
@case(id="missing_field", title="t", labels=LABELS, reference="r", reference_kind="implementation")
class MissingField(ReproCase):
    pass
''',
    "unmatched_layers": '''
@case(id="unmatched_layers", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class UnmatchedLayers(ReproCase):
    def reference(self, ctx, inputs): return torch.ones(3)
    def buggy(self, ctx, inputs):
        from analysis.reproduction.localize import localize_models
        net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
        port = torch.nn.Sequential(net[0])  # the ReLU has no counterpart
        localize_models(net, port, torch.ones(1, 3), mapping={"0": "0"}, strict=True)
    def fixed(self, ctx, inputs): return torch.ones(3)
''',
    "cuda_only": '''
@case(id="cuda_only", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation",
      needs_cuda=True)
class CudaOnly(ReproCase):
    pass
''',
    "self_skip": '''
@case(id="self_skip", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation")
class SelfSkip(ReproCase):
    def inputs(self, ctx): ctx.require_cuda()
''',
    "needs_pkg": '''
@case(id="needs_pkg", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation",
      requires=("surely_not_installed_pkg",))
class NeedsPkg(ReproCase):
    pass
''',
    "old_torch": '''
@case(id="old_torch", title="t", issues=[URL], labels=LABELS, reference="r", reference_kind="implementation",
      versions={"torch": "<1.0"})
class OldTorch(ReproCase):
    pass
''',
}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    for name, body in CASES.items():
        (folder / f"{name}.py").write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    (folder / "syntax_error.py").write_text("def broken(:\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def report(case_dir) -> dict:
    entries = [e for e in discover([case_dir]) if e.module.startswith("reeng_user_case_")]
    return run_cases(entries, device="cpu", progress=False)


def _row(report: dict, case: str) -> tuple[dict, dict]:
    row = next(r for r in report["results"] if r["case"] == case)
    return row, report["details"][case]


def test_result_rows_keep_exactly_the_contract_keys(report):
    for row in report["results"]:
        assert list(row) == ["case", "issues", "labels", "verdict", "figures", "seconds", "versions"]


def test_reproduced_needs_buggy_deviating_and_fixed_agreeing(report):
    assert _row(report, "good")[0]["verdict"] == "reproduced"
    row, detail = _row(report, "fixed_deviates")
    assert row["verdict"] == "not_reproduced" and detail["reason"].startswith("the fixed form deviates")
    row, detail = _row(report, "buggy_agrees")
    assert row["verdict"] == "not_reproduced" and detail["reason"].startswith("the buggy form agrees")


def test_each_form_gets_its_own_inputs(report):
    row, detail = _row(report, "rewrites_inputs")  # the fixed form was handed the buggy form's rewritten input
    assert row["verdict"] == "reproduced", detail["reason"]
    assert detail["fixed"]["status"] == "agree" and detail["buggy"]["status"] == "deviate"


def test_a_case_that_raises_is_an_error_with_the_exception(report):
    row, detail = _row(report, "raises")
    assert row["verdict"] == "error"
    assert detail["reason"].startswith("ZeroDivisionError: boom in reference")


def test_a_case_that_calls_sys_exit_is_an_error_and_the_run_goes_on(report):
    """sys.exit() in a case used to end the whole run with its status and no word, the verdicts of the
    cases run before it lost."""
    row, detail = _row(report, "exits")
    assert row["verdict"] == "error" and detail["reason"].startswith("SystemExit: 3")


def test_malformed_metadata_is_an_error_with_the_reason(report):
    row, detail = _row(report, "bad_labels")
    assert row["verdict"] == "error"
    assert "stage='cooking' is not a stage category id" in detail["reason"]
    assert "not a GitHub issue URL" in detail["reason"] and "label impact missing" in detail["reason"]
    assert "reference_kind 'guess'" in detail["reason"]
    row, detail = _row(report, "missing_field")
    assert row["verdict"] == "error" and "metadata field issues missing" in detail["reason"]
    row, detail = _row(report, "syntax_error")
    assert row["verdict"] == "error" and detail["reason"].startswith("import failed: SyntaxError")


def test_a_mapping_that_leaves_layers_unmatched_is_an_error(report):
    row, detail = _row(report, "unmatched_layers")
    assert row["verdict"] == "error"
    assert "leaves 1 reference layer(s) unmatched: 1" in detail["reason"]


def test_skip_paths_on_cpu(report):
    assert _row(report, "cuda_only")[1]["reason"] == "needs CUDA (device resolved to cpu)"
    assert _row(report, "self_skip")[0]["verdict"] == "skipped"
    row, detail = _row(report, "needs_pkg")
    assert row["verdict"] == "skipped" and "surely_not_installed_pkg" in detail["reason"]
    row, detail = _row(report, "old_torch")
    assert row["verdict"] == "skipped" and detail["reason"].startswith("reproduces on torch<1.0")


def test_run_goes_on_after_failures(report):
    assert len(report["results"]) == len(CASES) + 1


def test_select_filters_and_groups():
    entries = discover()
    training = select(entries, [], parse_select("root_cause=training"))  # a group: all training-defect leaves
    assert training and all(e.meta.labels["stage"] in {"training", "data_pipeline", "environment", "modeling"}
                            for e in training)
    assert {e.meta.labels["root_cause"] for e in training} <= {"optimizer", "loss_function", "evaluation",
                                                              "hyperparameters", "training_configuration",
                                                              "other_training_process"}
    both = select(entries, [], parse_select("stage=training,manifestation=reproducibility"))
    assert both and all(e.meta.labels["stage"] == "training" and e.meta.labels["manifestation"] == "reproducibility"
                        for e in both)
    with pytest.raises(ReengError, match="unknown key 'colour'"):
        parse_select("colour=red")
    with pytest.raises(ReengError, match="unknown stage trainig"):
        parse_select("stage=trainig")
    with pytest.raises(ReengError, match="expected key=value"):
        parse_select("stage")
    with pytest.raises(ReengError, match="unknown case"):
        select(entries, ["no_such_case"], {})
    # a mistyped id or reference kind used to select nothing and run zero cases, exit 0
    with pytest.raises(ReengError, match="unknown case.*yolov5_grid_index_overflw"):
        select(entries, [], parse_select("id=yolov5_grid_index_overflw"))
    with pytest.raises(ReengError, match="unknown reference_kind onxx"):
        parse_select("reference_kind=onxx")
    assert [e.id for e in select(entries, [], parse_select("id=yolov5_grid_index_overflow"))] == \
        ["yolov5_grid_index_overflow"]
    # GitHub reads owner/repo case-insensitively; a typed name with capitals or a trailing "/" selected nothing
    yolov5 = [e.id for e in entries if any("ultralytics/yolov5/" in u for u in e.meta.issues)]
    assert yolov5 and [e.id for e in select(entries, [], parse_select("issue=Ultralytics/YOLOv5"))] == yolov5
    one = select(entries, [], parse_select("issue=https://github.com/Ultralytics/yolov5/issues/292/"))
    assert [e.meta.issues[0] for e in one] == ["https://github.com/ultralytics/yolov5/issues/292"]
    with pytest.raises(ReengError, match="issue=ultralytics/yolov55: no case names"):
        select(entries, [], parse_select("issue=ultralytics/yolov55"))


def test_a_user_case_with_a_shipped_id_is_one_error_line(tmp_path, capsys):
    """Two cases of one id gave two result rows under one name and one details entry (the shipped case's lost)."""
    from reeng.cli import main

    (tmp_path / "mine.py").write_text(HEADER + textwrap.dedent(CASES["good"]).replace('id="good"',
                                                                                    'id="yolov5_grid_index_overflow"'))
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "run", "yolov5_grid_index_overflow", "--cases", str(tmp_path / "mine.py"),
              "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "'yolov5_grid_index_overflow' is defined twice" in err[0], err
    assert not (tmp_path / "out").exists()


def test_cli_unknown_select_key_is_one_line_error():
    from reeng.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "list", "--select", "colour=red"])
    assert exc.value.code != 0


def test_cli_unknown_select_key_message(capsys):
    from reeng.cli import main

    with pytest.raises(SystemExit):
        main(["reproduce", "run", "--select", "colour=red"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "colour" in err[0]


def test_cli_list_and_run_json(case_dir, tmp_path):
    runner = CliRunner()
    listed = runner.invoke(reproduce_group, ["list", "--json", "--select", "id=yolov5_resume_lr_reset"])
    assert listed.exit_code == 0, listed.output
    assert [c["case"] for c in json.loads(listed.output)["cases"]] == ["yolov5_resume_lr_reset"]
    out = tmp_path / "run"
    ran = runner.invoke(reproduce_group, ["run", "good", "cuda_only", "--cases", str(case_dir / "good.py"),
                                          "--cases", str(case_dir / "cuda_only.py"), "--device", "cpu",
                                          "--out", str(out), "--json"])
    assert ran.exit_code == 0, ran.output
    data = json.loads(ran.output)
    assert [r["verdict"] for r in data["results"]] == ["reproduced", "skipped"]
    assert json.loads((out / "results.json").read_text())["results"] == data["results"]


def test_a_rerun_into_the_same_out_leaves_no_figures_of_cases_it_did_not_run(tmp_path):
    """An earlier run's figure folder stayed beside a results.json that no longer listed its case."""
    runner = CliRunner()
    out = tmp_path / "run"
    first = runner.invoke(reproduce_group, ["run", "faster_rcnn_resnet_frozen_bn", "--device", "cpu", "--out", str(out)])
    assert first.exit_code == 0 and (out / "faster_rcnn_resnet_frozen_bn").is_dir(), first.output
    (out / "notes.txt").write_text("mine")
    second = runner.invoke(reproduce_group, ["run", "yolov5_grid_index_overflow", "--device", "cpu", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert not (out / "faster_rcnn_resnet_frozen_bn").exists() and (out / "notes.txt").read_text() == "mine"
    assert [r["case"] for r in json.loads((out / "results.json").read_text())["results"]] == ["yolov5_grid_index_overflow"]


def test_cli_rejects_bad_dtype_and_missing_cuda():
    from reeng.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "run", "--dtype", "fp8"])
    assert exc.value.code == 2
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exc:
            main(["reproduce", "run", "--device", "cuda"])
        assert exc.value.code == 2


def test_study_stage_writes_results_and_artifact(tmp_path):
    from reeng.study import run_study

    config = {"reproduce": {"select": "id=yolov5_custom_anchors_flushed|yolov3_one_based_class_ids", "device": "cpu"}}
    ctx = run_study(config, tmp_path, tmp_path / "study", ["reproduce"])
    results = json.loads((tmp_path / "study" / "reproduction" / "results.json").read_text())
    assert [r["verdict"] for r in results["results"]] == ["reproduced", "reproduced"]
    assert ctx.artifacts["reproduction"].name == "results.json"
    assert ctx.summary["reproduce"]["reproduced"] == 2


@pytest.mark.parametrize("name, content, message", [
    ("garbage.bin", bytes(range(256)), "not a Python case file"),
    ("garbage.py", b"\x00\xff binary", "import failed"),
    ("helpers.py", b"X = 1\n", "module defines no case"),
    ("syntax.py", b"def broken(:\n", "import failed"),
])
def test_a_named_file_that_is_not_a_case_is_one_error_line(tmp_path, capsys, name, content, message):
    from reeng.cli import main

    (tmp_path / name).write_bytes(content)
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "list", "--cases", str(tmp_path / name)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0], err


def test_a_folder_without_case_files_is_one_error_line(tmp_path, capsys):
    """An empty --cases folder (a wrong path, say) used to add nothing, silently, and list or run the library alone."""
    from reeng.cli import main

    (tmp_path / "notes.txt").write_text("not a case")
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "list", "--cases", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [f"error: --cases {tmp_path}: no case files (*.py) in this folder"]
