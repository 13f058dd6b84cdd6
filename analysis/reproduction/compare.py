"""A researcher's own port against its reference, in one call.

``compare(reference, candidate, inputs)`` runs both on the same inputs and returns a verdict per
output (dynamo's tolerance rule, see :mod:`.tolerance`), the per-call-site divergence, the
culprit and a plot. Either side may be

- a ``torch.nn.Module`` (or any callable),
- ``"file.py:factory"``: a Python file and a function in it returning the model,
- a TorchScript file (``.pt``, ``.pth``, ``.ts``, ``.jit``: ``torch.jit.load``; outputs only),
- an ONNX file (``.onnx``: run in ONNX Runtime, outputs only),
- recorded outputs (``.npz`` written by :func:`record`, e.g. a TensorFlow, Keras or Caffe
  reference run elsewhere and saved in that layout).

Recorded layout (``np.savez``): ``output/<i>`` per model output (flattened in order; dict outputs
sorted by key, named ``output/<key>``), ``layer/<name>`` per call site (``layer/<name>/<j>`` for
tuple outputs) and ``meta``, a JSON string with the layer order, each layer's inputs, module,
kind and operation. When layer names differ between the two sides, call sites are paired by
execution order, output shapes and operations, and what stays unmatched is reported.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.reproduction.case import Comparison
from analysis.reproduction.comparators import output_leaves, tolerance_check
from analysis.reproduction.localize import LayerRecord, Localization, capture, fresh, localize
from reeng.errors import ReengError

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit")


@dataclass
class Side:
    """One side of a comparison: how to run it and what it can tell (outputs, layers, fp64)."""

    label: str
    kind: str  # module | torchscript | onnx | recorded
    model: Any = None
    recorded_outputs: dict[str, Any] | None = None
    recorded_layers: dict[str, LayerRecord] | None = None

    def outputs(self, inputs: tuple[Any, ...]) -> dict[str, Any]:
        import torch

        if self.kind == "recorded":
            return dict(self.recorded_outputs or {})
        if self.kind == "onnx":
            from analysis.reproduction.parity import run_onnx

            return {f"output/{i}": torch.as_tensor(o) for i, o in enumerate(run_onnx(self.model, inputs))}
        with torch.no_grad():
            return flatten_outputs(self.model(*fresh(inputs)))

    def outputs64(self, inputs: tuple[Any, ...]) -> dict[str, Any] | None:
        """A float64 run of a Python module (the anchor of the RMSE rule); None for the others."""
        import torch

        if self.kind != "module" or not isinstance(self.model, torch.nn.Module):
            return None
        try:
            model64 = copy.deepcopy(self.model).double()
            with torch.no_grad():
                return flatten_outputs(model64(*[x.double() if x.is_floating_point() else x for x in fresh(inputs)]))
        except Exception:  # a model that cannot run in float64 is compared by allclose alone
            return None

    def layers(self, inputs: tuple[Any, ...]) -> dict[str, LayerRecord] | None:
        if self.kind == "recorded":
            return self.recorded_layers
        if self.kind in ("onnx", "torchscript"):  # compiled graphs take no per-call hooks
            return None
        return capture(self.model, *fresh(inputs))


def flatten_outputs(value: Any) -> dict[str, Any]:
    """Model outputs as ``{name: tensor}``: ``output/0`` … for tuples, ``output/<key>`` for dicts;
    numbers (a loss as a Python float) and arrays are outputs too, anything else is left out."""
    import torch

    leaves = output_leaves(value if isinstance(value, (list, tuple, dict)) else (value,))
    return {name: torch.as_tensor(v).detach() for name, v in leaves.items()
            if isinstance(v, (torch.Tensor, np.ndarray, int, float))}


@dataclass
class CompareResult:
    """Verdict per output, the localization (when both sides expose layers) and where it was drawn."""

    verdicts: dict[str, Comparison]
    localization: Localization | None
    unmatched_outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: Path | None = None

    @property
    def agrees(self) -> bool:
        return bool(self.verdicts) and not self.unmatched_outputs and all(v.agrees for v in self.verdicts.values())

    @property
    def culprit(self) -> str | None:
        return self.localization.culprit if self.localization else None

    def plot(self, path: Path) -> Path | None:
        """Per-call-site divergence as a PNG (None when no layers could be compared)."""
        if self.localization is None or not self.localization.layers:
            return None
        self.figure = self.localization.plot(Path(path))
        return self.figure

    def to_dict(self) -> dict[str, Any]:
        loc = self.localization
        return {
            "agrees": self.agrees,
            "outputs": {name: {"agrees": v.agrees, "status": v.status, "detail": v.detail,
                               "min_tolerance": v.figures.get("min_tolerance"), "figures": v.figures}
                        for name, v in self.verdicts.items()},
            "unmatched_outputs": self.unmatched_outputs,
            "culprit": self.culprit,
            "culprit_module": loc.culprit_module if loc else None,
            "layers": loc.table() if loc else [],
            "matched_by": loc.matched_by if loc else None,
            "unmatched_reference_layers": loc.unmatched_reference if loc else [],
            "unmatched_candidate_layers": loc.unmatched_candidate if loc else [],
            "notes": self.notes,
            "figure": str(self.figure) if self.figure else None,
        }


def _load_python(spec: str) -> Any:
    file, _, factory = spec.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise ReengError(f"{spec}: no such Python file {file}")
    module_name = f"reeng_compare_{path.stem}_{abs(hash(path.resolve()))}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # a factory may import its siblings
    try:
        loader.loader.exec_module(module)
    except Exception as exc:
        raise ReengError(f"{spec}: importing {file} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(folder)
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise ReengError(f"{spec}: {file} has no callable {factory!r}")
    try:
        model = fn()
    except Exception as exc:
        raise ReengError(f"{spec}: {factory}() failed: {type(exc).__name__}: {exc}") from exc
    if not callable(model):
        raise ReengError(f"{spec}: {factory}() returned {type(model).__name__}, not a model")
    return model


def load_recorded(path: Path) -> Side:
    """A side from an ``.npz`` in the recorded layout (see the module docstring)."""
    import torch

    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise ReengError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from exc
    outputs = {k: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("output/")}
    if not outputs:
        raise ReengError(f"{path}: no 'output/...' arrays; write recordings with `reeng compare MODEL --record`")
    meta = _recorded_meta(path, arrays)
    layers: dict[str, LayerRecord] = {}
    for name in meta["layers"]:
        info = meta["info"].get(name, {})
        parts = sorted((k for k in arrays if k.startswith(f"layer/{name}/")), key=lambda k: int(k.rsplit("/", 1)[1]))
        if f"layer/{name}" in arrays:
            output: Any = torch.as_tensor(arrays[f"layer/{name}"])
        elif parts:
            output = [torch.as_tensor(arrays[k]) for k in parts]
        else:
            continue
        layers[name] = LayerRecord(output, list(info.get("inputs", [])), "", info.get("module", ""),
                                   info.get("kind", "module"), info.get("op", ""))
    missing = sorted({i for rec in layers.values() for i in rec.inputs if i not in layers})
    if missing:  # localization looks each input up among the recorded layers
        raise ReengError(f"{path}: 'meta' names inputs that are not recorded layers: {', '.join(missing[:5])} "
                         "(record them, or leave them out of the layers' inputs)")
    return Side(str(path), "recorded", recorded_outputs=outputs, recorded_layers=layers or None)


def _recorded_meta(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A recording's ``meta``: ``{"layers": [name, ...], "info": {name: {"inputs": [name, ...], ...}}}``."""
    if "meta" not in arrays:
        return {"layers": [], "info": {}}
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as exc:
        raise ReengError(f"{path}: 'meta' is not JSON ({exc})") from exc
    layers = meta.get("layers", []) if isinstance(meta, dict) else None
    info = meta.get("info", {}) if isinstance(meta, dict) else None
    if not (isinstance(layers, list) and all(isinstance(n, str) for n in layers) and isinstance(info, dict)
            and all(isinstance(i, dict) and isinstance(i.get("inputs", []), list)
                    and all(isinstance(n, str) for n in i.get("inputs", [])) for i in info.values())):
        raise ReengError(f"{path}: 'meta' must be a JSON object with 'layers' (a list of layer names) and 'info' "
                         "({layer: {'inputs': [layer names], ...}})")
    return {"layers": layers, "info": info}


def load_side(source: Any, label: str = "model") -> Side:
    """Whatever the user gave (a model, a spec string or a path) as a :class:`Side`."""
    import torch

    if isinstance(source, Side):
        return source
    if not isinstance(source, (str, Path)):
        if not callable(source):
            raise ReengError(f"{label}: {type(source).__name__} is neither a model nor a path")
        return Side(label, "module", model=source.eval() if isinstance(source, torch.nn.Module) else source)
    text = str(source)
    path = Path(text)
    if path.suffix == ".npz":
        if not path.is_file():
            raise ReengError(f"{text}: no such file")
        return load_recorded(path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ReengError(f"{text}: no such file")
        return Side(text, "onnx", model=path.read_bytes())
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        if not path.is_file():
            raise ReengError(f"{text}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates the format, still loads it
                return Side(text, "torchscript", model=torch.jit.load(str(path), map_location="cpu").eval())
        except Exception as exc:
            raise ReengError(f"{text}: not a TorchScript file ({type(exc).__name__})") from exc
    if ":" in text and text.rpartition(":")[0].endswith(".py"):
        model = _load_python(text)
        return Side(text, "module", model=model.eval() if isinstance(model, torch.nn.Module) else model)
    raise ReengError(f"{text}: expected file.py:factory, a TorchScript (.pt/.pth/.ts/.jit), "
                     "an ONNX (.onnx) or a recorded-outputs (.npz) file")


def load_inputs(path: Path) -> tuple[Any, ...]:
    """The arrays of an ``.npz`` in file order, as tensors: the model's positional inputs."""
    import torch

    try:
        data = np.load(path, allow_pickle=False)
        arrays = [data[k] for k in data.files]
    except Exception as exc:
        raise ReengError(f"--inputs {path}: not a readable .npz ({type(exc).__name__}: {exc})") from exc
    if not arrays:
        raise ReengError(f"--inputs {path}: holds no arrays")
    return tuple(torch.as_tensor(a) for a in arrays)


def _as_inputs(inputs: Any) -> tuple[Any, ...]:
    import torch

    if isinstance(inputs, (str, Path)):
        return load_inputs(Path(inputs))
    if isinstance(inputs, dict):
        inputs = tuple(inputs.values())
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    return tuple(torch.as_tensor(x) for x in inputs)


def load_mapping(path: Path) -> dict[str, str]:
    """A ``{reference layer: candidate layer}`` mapping from a JSON or YAML file."""
    import yaml

    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReengError(f"--mapping {path}: unreadable ({type(exc).__name__})") from exc
    # a top-level nn.Sequential's layers are named 0, 1, ...: YAML reads those bare names as integers
    names = (str, int)
    if not isinstance(mapping, dict) or not all(isinstance(k, names) and not isinstance(k, bool) and isinstance(v, names)
                                                and not isinstance(v, bool) for k, v in mapping.items()):
        raise ReengError(f"--mapping {path}: expected a mapping of reference layer names to candidate layer names")
    return {str(k): str(v) for k, v in mapping.items()}


def compare(reference: Any, candidate: Any, inputs: Any, mapping: dict[str, str] | None = None,
            tol: float = 1e-4, out: Path | None = None) -> CompareResult:
    """Run both sides on ``inputs`` (a tensor, a tuple, a dict or an ``.npz`` path) and compare.

    Outputs are judged with :func:`.comparators.tolerance_check` (dynamo's rule; a float64 run
    of a Python reference anchors the RMSE part). When both sides expose layers (Python modules,
    TorchScript, recordings with layers), call sites are localized with ``mapping`` or, without
    it, by name or by execution order and shapes. With ``out`` the plot is written there.
    """
    if not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
        raise ReengError(f"--tol {tol}: a finite number of at least 0")
    ref, cand = load_side(reference, "reference"), load_side(candidate, "candidate")
    args = _as_inputs(inputs)
    try:
        ref_out, cand_out = ref.outputs(args), cand.outputs(args)
    except ReengError:
        raise
    except Exception as exc:
        raise ReengError(f"running the models on the inputs failed: {type(exc).__name__}: {exc}") from exc
    for side, found in ((ref, ref_out), (cand, cand_out)):
        if not found:  # nothing to judge: a port is not "deviating" for want of outputs
            raise ReengError(f"{side.label}: its output holds no tensor, array or number to compare")
    ref64 = ref.outputs64(args) or {}
    notes = [] if ref64 else ["no float64 run of the reference: outputs judged by allclose alone"]
    pairs = _pair_outputs(list(ref_out), list(cand_out))
    verdicts = {name: tolerance_check(cand_out[other], ref_out[name], ref64.get(name), tol=tol)
                for name, other in pairs.items()}
    unmatched = [n for n in ref_out if n not in pairs] + [n for n in cand_out if n not in pairs.values()]
    ref_layers, cand_layers = ref.layers(args), cand.layers(args)
    found = None
    if ref_layers and cand_layers:
        found = localize(ref_layers, cand_layers, mapping)
    else:
        side = ref.label if not ref_layers else cand.label
        notes.append(f"no per-layer outputs from {side}: outputs compared, divergence not localized")
    result = CompareResult(verdicts, found, unmatched, notes)
    if out is not None:
        result.plot(Path(out) / "localization.png")
    return result


def _pair_outputs(ref: list[str], cand: list[str]) -> dict[str, str]:
    """Outputs paired by name, else by position (an ONNX or a recording names them by index)."""
    if set(ref) == set(cand):
        return {n: n for n in ref}
    return dict(zip(ref, cand))


def record(model: Any, inputs: Any, path: Path) -> Path:
    """Run ``model`` on ``inputs`` and store its outputs and per-call-site outputs in ``path``."""
    from reeng.outputs import staged_file

    if Path(path).suffix != ".npz":  # compare reads recordings by this suffix
        raise ReengError(f"--record {path}: give a file name ending in .npz")
    side = load_side(model)
    if side.kind in ("onnx", "recorded"):
        raise ReengError(f"--record: {side.label} is {side.kind}; recording needs a Python or TorchScript model")
    args = _as_inputs(inputs)
    arrays: dict[str, np.ndarray] = {k: v.cpu().numpy() for k, v in side.outputs(args).items()}
    layers = side.layers(args) or {}
    info = {}
    for name, rec in layers.items():
        if isinstance(rec.output, list):
            for j, t in enumerate(rec.output):
                arrays[f"layer/{name}/{j}"] = t.cpu().numpy()
        else:
            arrays[f"layer/{name}"] = rec.output.cpu().numpy()
        info[name] = {"inputs": [i for i in rec.inputs if isinstance(i, str)], "module": rec.module, "kind": rec.kind,
                      "op": rec.op}
    arrays["meta"] = np.array(json.dumps({"layers": list(layers), "info": info, "source": side.label}))
    with staged_file(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path)
