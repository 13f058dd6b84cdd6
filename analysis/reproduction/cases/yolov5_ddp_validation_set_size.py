"""yolov5 multi-GPU training: the first test after epoch 0 crashes when the validation set does
not divide among the GPUs.

Right after the first epoch, ``train.py`` evaluated the model wrapped for several GPUs. The last
validation batch was split into fewer chunks than GPUs, and a replica was called with no image
(``TypeError: forward() missing 1 required positional argument: 'x'``) — the same scatter
behaviour as in ultralytics/yolov3#1074, whose scatter model this case reuses. In this thread the
participants found that the crash disappears when the number of validation images is divisible
by the number of GPUs, and confirmed it with a 16-image validation set.
"""

from __future__ import annotations

import copy

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases.yolov3_dataparallel_last_batch import Detector, test_loop
from analysis.reproduction.comparators import tolerance_check

N_GPUS, N_VAL = 4, 37


def divisible_validation_set(images: torch.Tensor, n_gpus: int) -> torch.Tensor:
    """The workaround: keep a validation set whose size the GPU count divides."""
    return images[: len(images) - len(images) % n_gpus]


@case(
    id="yolov5_ddp_validation_set_size",
    title="Multi-GPU test after the first epoch: a validation set not divisible by the GPU count crashes",
    issues=["https://github.com/ultralytics/yolov5/issues/147"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "crash", "root_cause": "gpu_usage"},
    reference="the detector applied to each kept validation image on one device",
    reference_kind="implementation",
    defect_class="multi-GPU scatter of an uneven last validation batch",
    mechanism="environment/API",
    evidence={
        "reported": "Training yolov5s from scratch on an 8-class custom set with several GPUs failed at the "
                    "end of the first epoch's test with TypeError: forward() missing the argument x in "
                    "replica 1 (Denchmark copy of the thread); several users saw it with 2 to 4 GPUs.",
        "diagnosis": "The maintainer first blamed the data, then pointed users to single-GPU training; "
                     "participants found that the test crashes unless the number of validation images is "
                     "divisible by the number of GPUs.",
        "fix": "No code change in the thread: the workaround is a validation set whose size the GPU count "
               "divides (found about two thirds into the thread and confirmed with 16 images by another "
               "user right after) or a single GPU; a late comment suspects a later commit fixed it.",
        "model": "37 validation images in batches of 16 on 4 simulated GPUs through torch's scatter code: "
                 "the 5-image last batch leaves a replica without input and raises TypeError; with 36 "
                 "images every replica gets one and the outputs equal the image-by-image reference.",
    },
)
class DdpValidationSetSize(ReproCase):
    expect_raises = (TypeError,)

    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        return {"model": Detector().eval(), "images": torch.randn(N_VAL, 3, 8, 8)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return self.reference64(ctx, inputs).float()

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        body = copy.deepcopy(inputs["model"].body).double()
        kept = N_VAL // N_GPUS * N_GPUS
        with torch.no_grad():
            return torch.stack([body(inputs["images"][i][None].double())[0] for i in range(kept)])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return test_loop(inputs["model"], inputs["images"], n_gpus=N_GPUS)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return test_loop(inputs["model"], divisible_validation_set(inputs["images"], N_GPUS), n_gpus=N_GPUS)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))
