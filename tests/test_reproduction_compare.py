"""`compare()` and `reeng compare`: a port against its reference from every kind of source."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.reproduction.compare import compare, record
from analysis.reproduction.localize import capture
from reeng.errors import ReengError
from tests.conftest import run_main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "compare"
sys.path.insert(0, str(EXAMPLE))
import port as example_port  # noqa: E402
import reference as example_reference  # noqa: E402


@pytest.fixture
def example(tmp_path):
    for name in ("reference.py", "port.py", "inputs.npz"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path


def _x():
    return torch.as_tensor(np.load(EXAMPLE / "inputs.npz")["x"])


def test_python_api_gives_verdicts_layers_culprit_and_plot(tmp_path):
    result = compare(example_reference.build(), example_port.build(), _x(), out=tmp_path)
    assert not result.agrees and result.verdicts["output/0"].status == "deviate"
    assert result.verdicts["output/0"].figures["min_tolerance"] > 1e-4
    assert result.culprit == "blocks.1.conv2"
    table = {r["layer"]: r for r in result.localization.table()}
    assert table["blocks.0.relu#2"]["delta"] == 0 and table["blocks.1.bn2"]["diverges"]
    assert result.figure.stat().st_size > 5000
    fixed = compare(example_reference.build(), example_port.build_fixed(), _x())
    assert fixed.agrees and fixed.culprit is None and fixed.verdicts["output/0"].figures["rule"] == "allclose"


def test_cli_on_the_readme_example(example, capsys):
    code, out, err = run_main(["compare", str(example / "reference.py:build"), str(example / "port.py:build"),
                               "--inputs", str(example / "inputs.npz"), "--out", str(example / "out"), "--check"],
                              capsys)
    assert code == 1, err
    assert "divergence introduced at: blocks.1.conv2" in out and "verdict: deviate" in out
    report = json.loads((example / "out" / "report.json").read_text())
    assert report["culprit"] == "blocks.1.conv2" and not report["agrees"]
    assert (example / "out" / "localization.png").exists() and (example / "out" / "layers.csv").exists()
    code, out, _ = run_main(["compare", str(example / "reference.py:build"), str(example / "port.py:build_fixed"),
                             "--inputs", str(example / "inputs.npz"), "--check"], capsys)
    assert code == 0 and "verdict: agree" in out and "no layer diverges" in out


def test_a_yaml_mapping_names_sequential_layers_bare(tmp_path):
    """A top-level nn.Sequential's layers are 0, 1, ...; YAML reads `0: 1` as integers, and the mapping was refused
    unless every name was quoted. A yes/no is still no layer name."""
    from analysis.reproduction.compare import load_mapping

    (tmp_path / "map.yaml").write_text("0: 1\n2: head\n")
    assert load_mapping(tmp_path / "map.yaml") == {"0": "1", "2": "head"}
    ref = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    port = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(3, 3), torch.nn.ReLU())
    port[1].load_state_dict(ref[0].state_dict())
    (tmp_path / "seq.yaml").write_text("0: 1\n1: 2\n")
    result = compare(ref, port, torch.ones(1, 3), load_mapping(tmp_path / "seq.yaml"))
    assert result.agrees and result.localization.matched_by.startswith("mapping")
    (tmp_path / "bool.yaml").write_text("yes: 1\n")
    with pytest.raises(ReengError, match="expected a mapping"):
        load_mapping(tmp_path / "bool.yaml")


def test_recording_alone_refuses_the_comparisons_options(example, capsys):
    """`compare REF --record F --out D` (no PORT) recorded REF and ignored --out: no report, exit 0. The comparison's
    options without PORT are one error line now, and nothing is recorded."""
    for extra, named in ((["--out", str(example / "out")], "--out compares"), (["--json", "--check"], "--json, --check compare")):
        code, out, err = run_main(["compare", str(example / "reference.py:build"), "--inputs", str(example / "inputs.npz"),
                                   "--record", str(example / "ref.npz"), *extra], capsys)
        assert code == 2 and err.startswith(f"error: {named} REF with PORT") and len(err.strip().splitlines()) == 1, err
        assert not (example / "ref.npz").exists() and not (example / "out").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_onnx_and_recorded_sources(example, capsys):
    ref, port = example_reference.build(), example_port.build()
    torch.jit.script(port).save(str(example / "port.pt"))
    from analysis.reproduction.parity import export_onnx

    (example / "port.onnx").write_bytes(export_onnx(port, (_x(),))[0])
    code, out, err = run_main(["compare", str(example / "reference.py:build"), "--inputs", str(example / "inputs.npz"),
                               "--record", str(example / "ref.npz")], capsys)
    assert code == 0 and (example / "ref.npz").exists(), err
    for source in ("port.pt", "port.onnx"):
        result = compare(ref, str(example / source), example / "inputs.npz")
        assert not result.agrees, source
    for compiled in ("port.pt", "port.onnx"):  # outputs only: compiled graphs take no hooks
        found = compare(ref, str(example / compiled), _x())
        assert found.localization is None and "not localized" in found.notes[-1]
    recorded = compare(str(example / "ref.npz"), port, _x())
    assert recorded.culprit == "blocks.1.conv2" and "allclose alone" in recorded.notes[0]
    assert compare(str(example / "ref.npz"), example_port.build_fixed(), _x()).agrees


def test_layers_with_other_names_are_matched_by_order_and_shape():
    from torch import nn

    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                        nn.Linear(4 * 36, 2)).eval()

    class Renamed(nn.Module):  # the same network written by someone else, with an extra dropout
        def __init__(self):
            super().__init__()
            self.features_conv_a = nn.Conv2d(3, 4, 3, padding=1)
            self.features_conv_b = nn.Conv2d(4, 4, 3, padding=1)
            self.drop = nn.Dropout(0.5)
            self.classifier = nn.Linear(4 * 36, 2)

        def forward(self, x):
            x = self.features_conv_b(torch.relu(self.features_conv_a(x)))
            return self.classifier(self.drop(torch.flatten(x, 1)))

    cand = Renamed().eval()
    with torch.no_grad():
        for (_, a), (_, b) in zip(ref.state_dict().items(), cand.state_dict().items()):
            b.copy_(a)
        cand.features_conv_b.bias += 0.1
    result = compare(ref, cand, torch.randn(2, 3, 6, 6))
    loc = result.localization
    assert loc.matched_by == "order and shape"
    assert loc.culprit == "2" and {d.name: d.candidate_name for d in loc.layers}["2"] == "features_conv_b"
    assert loc.unmatched_candidate == ["drop"] and loc.unmatched_reference == []


def test_explicit_mapping_file_pairs_the_other_layers_by_the_default_rule(example, capsys):
    """A mapping of a few layers used to switch the default pairing off: only those compared, and a culprit
    outside them lost."""
    (example / "map.yaml").write_text("stem: stem\nblocks.0.conv1: blocks.0.conv1\n")
    code, out, _ = run_main(["compare", str(example / "reference.py:build"), str(example / "port.py:build"),
                             "--inputs", str(example / "inputs.npz"), "--mapping", str(example / "map.yaml"), "--json"],
                            capsys)
    report = json.loads(out)
    assert code == 0 and report["matched_by"] == "mapping, the rest by name"
    assert report["unmatched_reference_layers"] == [] and report["culprit"] == "blocks.1.conv2"


@pytest.mark.parametrize("args, message", [
    (["nope.py:build", "port.py:build"], "no such Python file"),
    (["reference.py:nothing", "port.py:build"], "has no callable 'nothing'"),
    (["reference.py", "port.py:build"], "expected file.py:factory"),
    (["garbage.pt", "port.py:build"], "not a TorchScript file"),
    (["garbage.npz", "port.py:build"], "not a readable .npz"),
    (["reference.py:build"], "needs REF and PORT"),
])
def test_bad_input_is_one_error_line(example, capsys, args, message):
    (example / "garbage.pt").write_bytes(b"not a model")
    (example / "garbage.npz").write_bytes(b"not an archive")
    code, out, err = run_main(["compare", *[str(example / a) for a in args], "--inputs", str(example / "inputs.npz"),
                               "--out", str(example / "out")], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (example / "out").exists()


@pytest.mark.parametrize("options, message", [
    (["--tol", "nan"], "--tol nan: a finite number"),  # NaN passed click's range and ended in a traceback
    (["--tol", "inf"], "--tol inf: a finite number"),  # inf called every port a match
    (["--record", "{dir}/ref.txt"], "ending in .npz"),  # compare refused the file --record had just written
    (["--mapping", "{dir}/unknown.json"], "reference layer(s) the reference does not have: nolayer"),
])
def test_bad_options_are_one_error_line(example, capsys, options, message):
    (example / "unknown.json").write_text('{"nolayer": "blocks.0"}')
    code, out, err = run_main(["compare", str(example / "reference.py:build"), str(example / "port.py:build"),
                               "--inputs", str(example / "inputs.npz"), "--out", str(example / "out"),
                               *[o.format(dir=example) for o in options]], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (example / "out").exists() and not (example / "ref.txt").exists()


@pytest.mark.parametrize("meta, message", [
    ("not json", "'meta' is not JSON"),
    ('["stem"]', "'meta' must be a JSON object with 'layers'"),
    ('{"layers": ["stem", "head"], "info": {"head": {"inputs": ["blocks.1.relu#2"]}}}',
     "'meta' names inputs that are not recorded layers: blocks.1.relu#2"),
])
def test_a_hand_made_recording_with_malformed_meta_is_one_error_line(example, capsys, meta, message):
    # the layout docs/reproduction.md gives for recordings made elsewhere (TensorFlow, Keras, Caffe)
    with torch.no_grad():
        layers = capture(example_reference.build(), _x())
    np.savez(example / "tf.npz", **{"output/0": np.zeros((2, 4), np.float32), "meta": np.array(meta),
                                    "layer/stem": layers["stem"].output.numpy(),
                                    "layer/head": layers["head"].output.numpy()})
    code, out, err = run_main(["compare", str(example / "tf.npz"), str(example / "port.py:build"),
                               "--inputs", str(example / "inputs.npz"), "--out", str(example / "out")], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (example / "out").exists()


def test_missing_torch_names_the_extra(monkeypatch, capsys, example):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    for args in (["reproduce", "list"], ["compare", "a.py:f", "b.py:f", "--inputs", str(example / "inputs.npz")]):
        code, _, err = run_main(args, capsys)
        assert code == 2 and "reeng[reproduce]" in err and len(err.strip().splitlines()) == 1, (args, err)


def test_an_extra_layer_of_the_same_shape_does_not_shift_the_pairs():
    from torch import nn

    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)).eval()

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Identity()  # same shape as everything after it
            self.c_a, self.act, self.c_b = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.c_b(self.act(self.c_a(self.pre(x))))

    cand = Port().eval()
    cand.c_a.load_state_dict(ref[0].state_dict())
    cand.c_b.load_state_dict(ref[2].state_dict())
    with torch.no_grad():
        cand.c_b.weight.mul_(-1)
    loc = compare(ref, cand, torch.randn(1, 4, 5, 5)).localization
    assert {d.name: d.candidate_name for d in loc.layers} == {"0": "c_a", "1": "act", "2": "c_b"}
    assert loc.unmatched_candidate == ["pre"] and loc.culprit == "2"


def test_recording_round_trips_tuple_and_dict_outputs(tmp_path):
    from torch import nn

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 6)
            self.gru = nn.GRU(6, 3, batch_first=True)  # a leaf module with a tuple output

        def forward(self, x):
            seq, last = self.gru(self.body(x))
            return {"seq": seq, "pair": (last, seq.mean(1))}

    torch.manual_seed(0)
    model = Heads().eval()
    x = torch.randn(2, 5, 4)
    record(model, x, tmp_path / "heads.npz")
    with np.load(tmp_path / "heads.npz") as data:
        assert {"output/pair/0", "output/pair/1", "output/seq", "layer/gru/0", "layer/gru/1"} <= set(data.files)
    same = compare(str(tmp_path / "heads.npz"), model, x)
    assert same.agrees and set(same.verdicts) == {"output/pair/0", "output/pair/1", "output/seq"}
    with torch.no_grad():
        model.gru.bias_hh_l0 += 0.5
    changed = compare(str(tmp_path / "heads.npz"), model, x)
    assert not changed.agrees and changed.culprit == "gru"


class _HalvesItsInput(torch.nn.Module):
    """A model that scales its input in place before the convolution (``x /= 2``)."""

    def __init__(self, bias_shift: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        with torch.no_grad():
            self.conv.bias += bias_shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x /= 2.0
        return self.conv(x)


def test_a_model_rewriting_its_input_in_place_does_not_change_the_other_runs_inputs():
    x = _x()
    same = compare(_HalvesItsInput(), _HalvesItsInput(), x)
    assert same.agrees and same.verdicts["output/0"].figures["rule"] == "allclose"
    shifted = compare(_HalvesItsInput(), _HalvesItsInput(bias_shift=0.05), x)  # the port's bias is off by 0.05
    assert not shifted.agrees and shifted.culprit == "conv"
    assert shifted.verdicts["output/0"].figures["min_tolerance"] > 0.04
    assert torch.equal(x, _x())  # the caller's inputs are left as they were


class _MeanSquare(torch.nn.Module):
    """A loss port: returns a Python float (``scale`` stands for a port's wrong constant)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> float:
        return float((x**2).mean()) * self.scale


def test_number_outputs_are_judged_and_a_model_without_outputs_is_an_error():
    same = compare(_MeanSquare(), _MeanSquare(), _x())  # was 'deviate' with no output listed
    assert same.agrees and list(same.verdicts) == ["output/0"]
    assert not compare(_MeanSquare(), _MeanSquare(scale=1.01), _x()).agrees
    with pytest.raises(ReengError, match="holds no tensor, array or number"):
        compare(lambda x: None, _MeanSquare(), _x())
