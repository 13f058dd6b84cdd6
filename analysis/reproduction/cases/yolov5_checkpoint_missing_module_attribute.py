"""A whole-model checkpoint pickled by an older torch lacks an attribute the newer torch reads.

The repository saved complete pickled models. torch 1.6 added a per-module attribute (the set of
non-persistent buffer names) that ``state_dict()`` consults; modules unpickled from files written
by torch 1.5 do not have it, and the unpickling code of that release did not add it, so the first
``state_dict()`` call failed. Here an older module's state is restored the way that release did
(attributes copied as saved); the fix suggested in the thread adds the missing set to every
module before use.
"""

from __future__ import annotations

import io

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases._tiny import COCO_ANCHORS, TinyYolo
from analysis.reproduction.comparators import exact_check

NEW_ATTRIBUTE = "_non_persistent_buffers_set"


def old_release_checkpoint(seed: int) -> tuple[bytes, dict[str, torch.Tensor]]:
    """Per-module attribute dicts as a torch 1.5 pickle holds them, and the weights saved."""
    torch.manual_seed(seed)
    model = TinyYolo(2, COCO_ANCHORS)
    states = []
    for module in model.modules():
        state = {k: v for k, v in module.__dict__.items() if k != NEW_ATTRIBUTE}
        states.append(state)
    buffer = io.BytesIO()
    torch.save({"model": model, "states": states}, buffer)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    return buffer.getvalue(), saved


def load_as_released(blob: bytes) -> torch.nn.Module:
    """Unpickle, then restore each module's attributes as saved (no new attribute added)."""
    loaded = torch.load(io.BytesIO(blob), weights_only=False)
    model = loaded["model"]
    for module, state in zip(model.modules(), loaded["states"]):
        module.__dict__.clear()
        module.__dict__.update(state)
    return model


def add_missing_sets(model: torch.nn.Module) -> torch.nn.Module:
    """The fix suggested by the maintainer: give every module the attribute it lacks."""
    for module in model.modules():
        if not hasattr(module, NEW_ATTRIBUTE):
            setattr(module, NEW_ATTRIBUTE, set())
    return model


@case(
    id="yolov5_checkpoint_missing_module_attribute",
    title="Pickled models from torch 1.5 lack _non_persistent_buffers_set and state_dict() fails",
    issues=["https://github.com/ultralytics/yolov5/issues/58"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "crash", "root_cause": "api_defect"},
    reference="the weights as they were saved in the checkpoint (recorded)",
    reference_kind="recorded",
    defect_class="pickled module missing an attribute added by a newer library",
    mechanism="environment/API",
    evidence={
        "reported": "After installing NVIDIA Apex (with a torch 1.6 built from source, per later comments), "
                    "train.py crashed while filtering the pretrained checkpoint's state_dict: BatchNorm2d had "
                    "no attribute _non_persistent_buffers_set.",
        "diagnosis": "Participants traced it to the torch version: the official checkpoints were pickled "
                     "whole models written with torch 1.5, and torch 1.6 modules expect the new attribute.",
        "fix": "One reporter downgraded to torch 1.5.1 (early in the thread); the maintainer later said one "
               "could add the set to every module but recommended the re-saved newer checkpoints (near the "
               "end of the thread).",
        "model": "A tiny YOLO-shaped model is pickled and its modules restored without the new attribute; "
                 "state_dict() raises AttributeError, and after adding the missing set to each module the "
                 "state dict equals the weights recorded at save time.",
    },
)
class CheckpointMissingModuleAttribute(ReproCase):
    expect_raises = (AttributeError,)

    def inputs(self, ctx: CaseContext) -> tuple[bytes, dict]:
        return old_release_checkpoint(ctx.seed)

    def reference(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return torch.cat([v.flatten().double() for _, v in sorted(inputs[1].items())])

    def buggy(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        state = load_as_released(inputs[0]).state_dict()
        return torch.cat([v.flatten().double() for _, v in sorted(state.items())])

    def fixed(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        state = add_missing_sets(load_as_released(inputs[0])).state_dict()
        return torch.cat([v.flatten().double() for _, v in sorted(state.items())])

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: tuple) -> Comparison:
        return exact_check(candidate, reference, "checkpoint values")
