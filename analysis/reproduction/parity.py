"""Preprocessing parity and export parity.

Preprocessing is compared on pixel tensors, before any logits, because a channel swap or a
wrong mean/std is invisible in a single prediction but shifts a whole benchmark. Export parity
runs the same inputs through PyTorch and ONNX Runtime and records the exporter settings and
library versions with the numbers, since the answer depends on all three.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from analysis.reproduction.comparators import as_array, element_stats


@dataclass
class PixelParity:
    """How two preprocessing pipelines' pixel tensors (N, C, H, W) differ, with a diagnosis."""

    stats: dict[str, float]
    diagnosis: str
    channel_affine: list[tuple[float, float]] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.diagnosis == "identical"


def preprocessing_parity(candidate: Any, reference: Any, atol: float = 1e-4) -> PixelParity:
    """Compare pixel tensors and name the usual culprits.

    Checks, with the channel axis as given and then reversed (RGB vs BGR): identical, or each
    channel an affine map of the reference's (a mean/std or 0-255 vs 0-1 convention); else a
    spatial difference (resize, crop, interpolation).
    """
    a, b = as_array(candidate), as_array(reference)
    if a.shape != b.shape:
        return PixelParity({}, f"shape {a.shape} vs {b.shape} (resize or crop differs)")
    stats = element_stats(a, b)
    for swapped in (False, True):
        cand = a[:, ::-1] if swapped else a
        prefix = "channel order reversed (RGB vs BGR)" if swapped else ""
        if np.abs(cand - b).max() <= atol:
            return PixelParity(stats, prefix or "identical")
        affine = _channel_affine(cand, b)
        if all(np.abs(cand[:, c] - (s * b[:, c] + t)).max() <= max(atol, 1e-3) for c, (s, t) in enumerate(affine)):
            what = "per-channel affine difference (mean/std or value range)"
            return PixelParity(stats, f"{prefix} and {what}" if prefix else what, affine)
    return PixelParity(stats, "spatial difference (resize, interpolation or crop)")


def _channel_affine(a: np.ndarray, b: np.ndarray) -> list[tuple[float, float]]:
    """Least-squares scale and shift mapping each channel of ``b`` onto ``a``."""
    fits = []
    for c in range(a.shape[1]):
        x, y = b[:, c].ravel(), a[:, c].ravel()
        scale, shift = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (1.0, float(np.mean(y - x)))
        fits.append((float(scale), float(shift)))
    return fits


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions ('absent' when not installed)."""
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@dataclass
class ExportParity:
    settings: dict[str, Any]
    versions: dict[str, str]
    outputs: list[dict[str, float]]
    torch_outputs: list[np.ndarray]
    onnx_outputs: list[np.ndarray]


def export_onnx(model: Any, example: tuple[Any, ...], opset: int = 17, dynamic_batch: bool = False,
                dynamic_spatial: bool = False) -> tuple[bytes, dict[str, Any]]:
    """Export with the TorchScript-based exporter (``dynamo=False``: it needs no extra
    packages and is the exporter the study's threads used) and return the model bytes and the
    settings used."""
    import torch

    names = [f"input{i}" for i in range(len(example))]
    axes: dict[str, dict[int, str]] = {}
    for n in names:
        dims = {}
        if dynamic_batch:
            dims[0] = "batch"
        if dynamic_spatial:
            dims.update({2: "height", 3: "width"})
        if dims:
            axes[n] = dims
    settings = {"exporter": "torchscript", "opset": opset, "dynamic_axes": axes, "do_constant_folding": True}
    buffer = io.BytesIO()
    model.eval()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the parity numbers are the report
        torch.onnx.export(model, example, buffer, dynamo=False, opset_version=opset, input_names=names,
                          dynamic_axes=axes or None, do_constant_folding=True)
    return buffer.getvalue(), settings


def run_onnx(model_bytes: bytes, inputs: tuple[Any, ...]) -> list[np.ndarray]:
    """Run an ONNX model in ONNX Runtime on the CPU provider (deterministic, always present)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    feed = {i.name: as_array(x).astype(np.float32) for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feed)


def export_parity(model: Any, example: tuple[Any, ...], inputs: tuple[Any, ...] | None = None,
                  **export_options: Any) -> ExportParity:
    """Export ``model`` traced on ``example`` and compare PyTorch with ONNX Runtime on ``inputs``
    (default: the example itself; a different size is how trace-time constants show up)."""
    import torch

    inputs = inputs or example
    model_bytes, settings = export_onnx(model, example, **export_options)
    with torch.no_grad():
        out = model(*inputs)
    torch_outs = [as_array(t) for t in (out if isinstance(out, (list, tuple)) else [out])]
    onnx_outs = [np.asarray(o, dtype=np.float64) for o in run_onnx(model_bytes, inputs)]
    stats = [element_stats(o, t) if o.shape == t.shape else {"shape_mismatch": 1.0}
             for o, t in zip(onnx_outs, torch_outs)]
    return ExportParity(settings, versions("torch", "onnx", "onnxruntime"), stats, torch_outs, onnx_outs)
