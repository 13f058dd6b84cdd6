"""The GPU run (`--device cuda --dtype fp32,fp16,bf16 --repeat 5`) is a prepared path: on a machine
that reports CUDA the options reach every case; without CUDA it is one clear error."""

import json

import torch

from tests.conftest import run_main

CASE = '''
from analysis.reproduction import Comparison, ReproCase, case

@case(id="sees_context", title="t", issues=["https://github.com/o/r/issues/1"],
      labels={"stage": "training", "manifestation": "reproducibility", "impact": "lower_accuracy",
              "root_cause": "hyperparameters"}, reference="r", reference_kind="implementation", needs_cuda=True)
class SeesContext(ReproCase):
    def reference(self, ctx, inputs): return 0
    def buggy(self, ctx, inputs): return 1
    def fixed(self, ctx, inputs): return 0
    def compare(self, ctx, reference, candidate, inputs):
        return Comparison(candidate == reference, "agree" if candidate == reference else "deviate",
                          f"{ctx.device} {','.join(ctx.dtypes)} {ctx.repeat}")
'''

ARGS = ["--device", "cuda", "--dtype", "fp32,fp16,bf16", "--repeat", "5"]


def test_gpu_options_reach_the_cases_where_cuda_is_reported(tmp_path, monkeypatch, capsys):
    (tmp_path / "sees_context.py").write_text(CASE)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    code, out, err = run_main(["reproduce", "run", "sees_context", "--cases", str(tmp_path / "sees_context.py"),
                               *ARGS, "--json"], capsys)
    report = json.loads(out)
    assert code == 0, err
    assert report["run"] == {**report["run"], "device": "cuda", "dtypes": ["fp32", "fp16", "bf16"], "repeat": 5}
    assert report["results"][0]["verdict"] == "reproduced"
    assert report["details"]["sees_context"]["fixed"]["detail"] == "cuda fp32,fp16,bf16 5"


def test_gpu_run_without_cuda_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_main(["reproduce", "run", *ARGS, "--out", str(tmp_path / "gpu")], capsys)
    assert code == 2 and err.strip() == "error: --device cuda: CUDA is not available here (use auto or cpu)"
    assert not (tmp_path / "gpu").exists()
