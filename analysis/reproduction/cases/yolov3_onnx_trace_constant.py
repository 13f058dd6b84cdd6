"""ONNX export whose box branch was frozen at trace time disagrees with PyTorch.

The exporter traces one forward pass; Python numbers derived from tensor shapes during that
pass (the tracer warns "Converting a tensor to a Python boolean/number ... treated as a
constant") are baked into the graph. In the thread the exported detector gave normal class
scores but wrong (all-zero) boxes under ONNX Runtime. Here a YOLO head normalises box centres
by the grid size, read as Python numbers; exported at one resolution with dynamic spatial axes
and run at another, ONNX Runtime's boxes are wrong while its class scores match PyTorch's. The
fix exports the graph at the resolution it is deployed at (or keeps the size as a tensor).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check
from analysis.reproduction.parity import export_parity

N_CLASSES, N_ANCHORS, EXPORT_SIZE, DEPLOY_SIZE = 4, 2, 64, 96


class Head(nn.Module):
    """Backbone stub + YOLO decode: boxes (normalised xy, wh) and class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU())
        self.pred = nn.Conv2d(8, N_ANCHORS * (5 + N_CLASSES), 1)
        self.register_buffer("anchor_wh", torch.tensor([[0.1, 0.15], [0.3, 0.25]]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.pred(self.backbone(x))
        b, _, ny, nx = p.shape
        p = p.view(b, N_ANCHORS, 5 + N_CLASSES, ny, nx).permute(0, 1, 3, 4, 2)
        gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack((gx, gy), dim=-1).float()
        grid_size = torch.tensor([float(nx), float(ny)])  # Python numbers: a constant once traced
        xy = (torch.sigmoid(p[..., :2]) + grid) / grid_size
        wh = torch.exp(p[..., 2:4]).clamp(max=1e3) * self.anchor_wh.view(1, N_ANCHORS, 1, 1, 2)
        boxes = torch.cat((xy, wh), dim=-1).reshape(b, -1, 4)
        scores = (torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])).reshape(b, -1, N_CLASSES)
        return boxes, scores


@case(
    id="yolov3_onnx_trace_constant",
    title="Shape-derived Python numbers frozen by the ONNX tracer: wrong boxes, right scores in ORT",
    issues=["https://github.com/ultralytics/yolov3/issues/1172"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "numerical_instability",
            "root_cause": "api_defect"},
    reference="the PyTorch model run eagerly on the same deployment-size input",
    reference_kind="onnx",
    requires=("onnx", "onnxruntime"),
    versions={"torch": ">=2.5"},  # torch.onnx.export(dynamo=False): the TorchScript tracer is chosen explicitly
    defect_class="export parity (trace-time constants)",
)
class OnnxTraceConstant(ReproCase):
    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        model = Head().eval()
        return {"model": model, "export": torch.rand(1, 3, EXPORT_SIZE, EXPORT_SIZE),
                "deploy": torch.rand(1, 3, DEPLOY_SIZE, DEPLOY_SIZE)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return inputs["model"](inputs["deploy"])[0]

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = copy.deepcopy(inputs["model"]).double()
        with torch.no_grad():
            return model(inputs["deploy"].double())[0]

    def _parity(self, inputs: dict, example: torch.Tensor) -> torch.Tensor:
        parity = export_parity(inputs["model"], (example,), (inputs["deploy"],), dynamic_spatial=True)
        self.last = {"settings": parity.settings, "versions": parity.versions, "boxes": parity.outputs[0],
                     "scores": parity.outputs[1]}
        return torch.from_numpy(parity.onnx_outputs[0])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._parity(inputs, inputs["export"])

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self._parity(inputs, inputs["deploy"])

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = tolerance_check(candidate, reference, self.reference64(ctx, inputs))
        result.figures["export"] = self.last
        return result
