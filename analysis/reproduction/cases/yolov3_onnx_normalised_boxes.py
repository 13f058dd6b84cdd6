"""The ONNX export branch of the YOLO layer returns boxes normalised to the grid, not pixels.

The repository's YOLO layer had a separate code path used only for ONNX export (it avoids
broadcasting for Apple's neural engine). That path divides box centres and sizes by the grid
size, so the exported model's boxes are fractions of the image, while the PyTorch inference
path returns them in pixels: run in ONNX Runtime, the boxes look wrong (tiny, or zero once
thresholded) although the class scores agree. The reporter's fix undoes the normalisation in
the export path, which then returns pixel boxes like the inference path.
"""

from __future__ import annotations

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.parity import export_onnx, run_onnx

N_CLASSES, N_ANCHORS, SIZE = 3, 2, 64


class YoloLayer(nn.Module):
    """A one-level YOLO detector; ``mode`` selects the inference path or an export path."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode  # "inference" | "export_normalised" (bug) | "export_pixels" (fix)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 3, 2, 1))
        self.pred = nn.Conv2d(8, N_ANCHORS * (5 + N_CLASSES), 1)
        self.register_buffer("anchors", torch.tensor([[10.0, 14.0], [23.0, 27.0]]))  # pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pred(self.backbone(x))
        bs, _, ny, nx = p.shape
        stride = x.shape[-1] // nx
        p = p.view(bs, N_ANCHORS, 5 + N_CLASSES, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
        yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
        anchor_wh = (self.anchors / stride).view(1, N_ANCHORS, 1, 1, 2)
        if self.mode == "inference":
            io = p.clone()
            io[..., :2] = torch.sigmoid(io[..., :2]) + grid
            io[..., 2:4] = torch.exp(io[..., 2:4]) * anchor_wh
            io[..., :4] *= stride
            return io[..., :4].reshape(bs, -1, 4)
        m = N_ANCHORS * nx * ny  # the export path: flat, no broadcasting
        scale = torch.full((m, 2), float(stride)) if self.mode == "export_pixels" else 1.0 / torch.tensor(
            [[float(nx), float(ny)]]).repeat(m, 1)
        grid_flat = grid.repeat(1, N_ANCHORS, 1, 1, 1).view(m, 2)
        anchor_flat = anchor_wh.repeat(1, 1, ny, nx, 1).view(m, 2)
        q = p.view(m, 5 + N_CLASSES)
        xy = (torch.sigmoid(q[:, 0:2]) + grid_flat) * scale
        wh = torch.exp(q[:, 2:4]) * anchor_flat * scale
        return torch.cat((xy, wh), 1).view(bs, -1, 4)


def trained(seed: int, mode: str) -> YoloLayer:
    torch.manual_seed(seed)
    return YoloLayer(mode).eval()


def ort_boxes(seed: int, mode: str, image: torch.Tensor) -> torch.Tensor:
    model_bytes, _ = export_onnx(trained(seed, mode), (image,))
    return torch.from_numpy(run_onnx(model_bytes, (image,))[0]).double()


@case(
    id="yolov3_onnx_normalised_boxes",
    title="Exported ONNX model's boxes are grid-normalised while PyTorch inference returns pixels",
    issues=["https://github.com/ultralytics/yolov3/issues/1172"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "numerical_instability",
            "root_cause": "api_defect"},
    reference="the PyTorch inference path's boxes (pixels) on the same image, float64 anchor",
    reference_kind="onnx",
    requires=("onnx", "onnxruntime"),
    versions={"torch": ">=2.5"},  # torch.onnx.export(dynamo=False) is chosen explicitly
    defect_class="export path diverging from the inference path",
    mechanism="export",
    evidence={
        "reported": "A custom-trained yolov3-spp exported to ONNX (Ubuntu 16.04, V100) gave all-zero boxes "
                    "in ONNX Runtime with normal class scores; after updating the code the boxes were "
                    "non-zero but still far from PyTorch's (fractions below one against pixel values).",
        "diagnosis": "The maintainer first said the outputs were normalised for the CoreML app, then, "
                     "reading the export branch of the YOLO layer, that the scaling by the inverse grid "
                     "size normalises them in grid space.",
        "fix": "The all-zero boxes were fixed by a commit in early May 2020 (maintainer, later in the "
               "thread); the reporter then removed the normalisation from the exported boxes and "
               "confirmed the restored values were usable (near the end).",
        "model": "A one-level YOLO layer is exported with its export branch and run in ONNX Runtime: the "
                 "normalised branch's boxes deviate from the PyTorch inference path's pixel boxes, the "
                 "branch scaled by the stride instead agrees within float32 tolerance.",
    },
)
class OnnxNormalisedBoxes(ReproCase):
    def inputs(self, ctx: CaseContext) -> torch.Tensor:
        return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(ctx.seed))

    def reference(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return trained(ctx.seed, "inference")(image).double()

    def reference64(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return trained(ctx.seed, "inference").double()(image.double())

    def buggy(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return ort_boxes(ctx.seed, "export_normalised", image)

    def fixed(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return ort_boxes(ctx.seed, "export_pixels", image)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, image: torch.Tensor) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, image))
