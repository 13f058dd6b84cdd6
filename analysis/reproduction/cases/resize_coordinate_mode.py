"""Bilinear resize with a different pixel-coordinate convention than the original.

Bilinear resizing maps an output pixel to a source coordinate. PyTorch (``align_corners=False``),
OpenCV and TF2 use half-pixel centres; TF1's ``resize_bilinear`` (without
``half_pixel_centers``) used the "asymmetric" mapping, ``align_corners=True`` another one, and
ONNX's Resize names them all as ``coordinate_transformation_mode``. A data pipeline ported with
the wrong mode shifts every resized image by a fraction of a pixel, which the network sees as a
different input distribution. Here the deployed resize is an ONNX Resize run in ONNX Runtime,
compared with PyTorch's half-pixel resize on the same images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.parity import run_onnx

OUT_SIZE = (20, 28)


def onnx_resize(mode: str, shape: tuple[int, ...]) -> bytes:
    """A one-node ONNX graph: bilinear Resize to OUT_SIZE with the given coordinate mode."""
    from onnx import TensorProto, helper

    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [shape[0], shape[1], *OUT_SIZE])
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode=mode)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [sizes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@case(
    id="resize_coordinate_mode",
    title="Asymmetric (TF1) vs half-pixel bilinear resize coordinates in a ported pipeline",
    issues=["https://github.com/phillipi/pix2pix/issues/148"],
    labels={"stage": "data_pipeline", "manifestation": "evolutionary", "impact": "lower_accuracy",
            "root_cause": "data_preprocessing"},
    reference="PyTorch bilinear resize, align_corners=False (half-pixel centres)",
    reference_kind="onnx",
    requires=("onnx", "onnxruntime"),
    defect_class="resize coordinate convention (align_corners / ONNX Resize modes)",
)
class ResizeCoordinateMode(ReproCase):
    def inputs(self, ctx: CaseContext) -> torch.Tensor:
        torch.manual_seed(ctx.seed)
        return torch.rand(2, 3, 37, 45)

    def reference(self, ctx: CaseContext, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=OUT_SIZE, mode="bilinear", align_corners=False)

    def reference64(self, ctx: CaseContext, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.double(), size=OUT_SIZE, mode="bilinear", align_corners=False)

    def buggy(self, ctx: CaseContext, x: torch.Tensor) -> np.ndarray:
        return run_onnx(onnx_resize("asymmetric", tuple(x.shape)), (x,))[0]

    def fixed(self, ctx: CaseContext, x: torch.Tensor) -> np.ndarray:
        return run_onnx(onnx_resize("half_pixel", tuple(x.shape)), (x,))[0]

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: np.ndarray, x: torch.Tensor) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, x))
