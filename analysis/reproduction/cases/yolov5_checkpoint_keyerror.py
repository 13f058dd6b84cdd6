"""Loading a checkpoint whose layout differs from the configured model raises KeyError.

Transfer learning filtered the checkpoint by indexing the new model's state dict with every
checkpoint key (keeping those whose shapes match). A checkpoint saved by an older layout of the
code carries keys the new model does not have (``model.2.cv2...``), so the filter itself raises
KeyError and training cannot start from pretrained weights. The fix looks keys up instead of
indexing, ports what fits, and reports the rest (here: the renamed block and the head resized
for one class).
"""

from __future__ import annotations

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases._tiny import COCO_ANCHORS, TinyYolo
from analysis.reproduction.comparators import exact_check
from analysis.reproduction.porting import port_state_dict


def flatten(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten().double() for _, v in sorted(state.items())])


@case(
    id="yolov5_checkpoint_keyerror",
    title="Shape-filtering a checkpoint by indexing the new model's keys raises KeyError",
    issues=["https://github.com/ultralytics/yolov5/issues/222"],
    labels={"stage": "modeling", "manifestation": "basic", "impact": "crash", "root_cause": "model_weight"},
    reference="state dict expected after transfer: checkpoint tensors where key and shape match, "
              "the new model's initialisation elsewhere",
    reference_kind="implementation",
    mechanism="weight port",
    evidence={
        "reported": "Fine-tuning from the COCO-pretrained yolov5s/yolov5x checkpoint with a one-class model "
                    "config failed: the weights were declared incompatible with the yaml, the underlying "
                    "KeyError naming a model.2.cv2 convolution key.",
        "diagnosis": "The maintainer could not reproduce with fresh files and explained that the local "
                     "pretrained files came from an older model layout, whose keys the current model does "
                     "not have.",
        "fix": "The maintainer's advice (mid-thread) was to delete the old checkpoints so current ones are "
               "downloaded; a user's workaround, adopted here (later comment), filters the checkpoint with "
               "a key-membership test before comparing shapes.",
        "model": "A checkpoint of an 80-class model with an old block layout is ported into a one-class "
                 "model with the renamed block; indexing by every checkpoint key raises KeyError, the "
                 "membership filter equals a layer-by-layer transfer written independently.",
    },
    defect_class="weight loading across model versions",
)
class CheckpointKeyError(ReproCase):
    expect_raises = (KeyError,)

    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        checkpoint = TinyYolo(80, COCO_ANCHORS, with_cv2=True).state_dict()
        torch.manual_seed(ctx.seed + 1)
        model = TinyYolo(1, COCO_ANCHORS, with_cv2=False)
        return {"checkpoint": checkpoint, "model": model, "initial": {k: v.clone() for k, v in model.state_dict().items()}}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        # module by module: a layer of the new model takes the old layer's tensors when the old
        # architecture has a layer of that name and type with tensors of the same shapes
        old = TinyYolo(80, COCO_ANCHORS, with_cv2=True)
        old.load_state_dict(inputs["checkpoint"])
        new = TinyYolo(1, COCO_ANCHORS, with_cv2=False)
        new.load_state_dict(inputs["initial"])
        old_layers = dict(old.named_modules())
        with torch.no_grad():
            for name, layer in new.named_modules():
                twin = old_layers.get(name)
                if twin is None or type(twin) is not type(layer) or list(layer.children()):
                    continue
                for attr, tensor in [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]:
                    source = getattr(twin, attr)
                    if source.shape == tensor.shape:
                        tensor.copy_(source)
        return torch.cat([v.flatten().double() for _, v in sorted(new.state_dict().items())])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = inputs["model"]
        own = model.state_dict()
        kept = {k: v for k, v in inputs["checkpoint"].items() if own[k].shape == v.shape}
        model.load_state_dict(kept, strict=False)
        return flatten(model.state_dict())

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        model = inputs["model"]
        model.load_state_dict(inputs["initial"])
        fitted, report = port_state_dict(inputs["checkpoint"], model.state_dict())
        model.load_state_dict(fitted, strict=False)
        self.report = report
        return flatten(model.state_dict())

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        result = exact_check(candidate, reference, "parameters")
        if hasattr(self, "report"):
            result.figures["port"] = self.report.to_dict()
        return result
