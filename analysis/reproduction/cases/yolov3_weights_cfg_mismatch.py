"""Pretrained weights of one model config loaded into a model built from another config.

The yolov3 training script built its model from a Darknet ``*.cfg`` file and then filtered the
pretrained checkpoint by indexing the new model's state dict with every checkpoint key. The
default checkpoint belonged to the SPP config, whose extra pooling and route layers shift the
index of every later layer, so with the plain config a checkpoint key such as
``module_list.85.Conv2d.weight`` does not exist in the model and the filter raises KeyError
before training starts. The fix in the thread is to pass a config compatible with the weights
(or no weights at all).
"""

from __future__ import annotations

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

PLAIN = ["conv", "conv", "conv", "conv"]
SPP = ["conv", "conv", "maxpool", "route", "conv", "conv"]  # pooling/route layers hold no weights


def build(cfg: list[str]) -> nn.Module:
    """Darknet-style model: a ModuleList with one entry per cfg block, keyed by block index."""
    blocks = nn.ModuleList()
    for kind in cfg:
        block = nn.Sequential()
        if kind == "conv":
            block.add_module("Conv2d", nn.Conv2d(4, 4, 3, padding=1, bias=False))
            block.add_module("BatchNorm2d", nn.BatchNorm2d(4))
        blocks.append(block)
    model = nn.Module()
    model.module_list = blocks
    return model


def transfer(checkpoint: dict[str, torch.Tensor], cfg: list[str]) -> dict[str, torch.Tensor]:
    """train.py: build the model from ``cfg``, filter the checkpoint by key lookup, load it."""
    model = build(cfg)
    state = {k: v for k, v in checkpoint.items() if model.state_dict()[k].numel() == v.numel()}
    model.load_state_dict(state, strict=False)
    return model.state_dict()


def ultralytics_checkpoint(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build(SPP)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


@case(
    id="yolov3_weights_cfg_mismatch",
    title="Default SPP checkpoint with a plain yolov3 cfg: KeyError while filtering the weights",
    issues=["https://github.com/ultralytics/yolov3/issues/650"],
    labels={"stage": "modeling", "manifestation": "basic", "impact": "crash", "root_cause": "model_weight"},
    reference="the checkpoint's tensors as saved (recorded)",
    reference_kind="recorded",
    defect_class="weights and model config out of step",
    mechanism="weight port",
    evidence={
        "reported": "Several users running train.py with their own cfg crashed while the script filtered the "
                    "automatically downloaded default checkpoint: KeyError for module_list.85.Conv2d.weight.",
        "diagnosis": "The maintainer explained that the weights and the cfg passed were incompatible: the "
                     "default checkpoint belongs to another architecture than the user's cfg.",
        "fix": "Use a cfg compatible with the weights, or start from no weights with --weights '' (the "
               "maintainer's comment in the middle of the thread, with examples of compatible pairs).",
        "model": "A checkpoint of a config with weightless pooling and route blocks is loaded into a model "
                 "built from a config without them; the key-indexing filter raises KeyError, while with "
                 "the compatible config every tensor loads and equals the saved checkpoint.",
    },
)
class WeightsCfgMismatch(ReproCase):
    expect_raises = (KeyError,)

    def inputs(self, ctx: CaseContext) -> dict[str, torch.Tensor]:
        return ultralytics_checkpoint(ctx.seed)

    def reference(self, ctx: CaseContext, checkpoint: dict) -> torch.Tensor:
        return torch.cat([checkpoint[k].flatten().double() for k in sorted(checkpoint)])

    def buggy(self, ctx: CaseContext, checkpoint: dict) -> torch.Tensor:
        state = transfer(checkpoint, PLAIN)
        return torch.cat([state[k].flatten().double() for k in sorted(state)])

    def fixed(self, ctx: CaseContext, checkpoint: dict) -> torch.Tensor:
        state = transfer(checkpoint, SPP)
        return torch.cat([state[k].flatten().double() for k in sorted(state)])

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, checkpoint: dict) -> Comparison:
        return exact_check(candidate, reference, "checkpoint values")
