"""Multi-GPU testing crashes on a short last batch: a replica is called without its input.

``nn.DataParallel`` splits the image batch into chunks of ``ceil(batch / n_gpus)`` images, so a
short last batch yields fewer chunks than GPUs; keyword arguments that are not tensors (here the
test script's ``augment=False``) are copied to every GPU. torch then pads the positional inputs
with empty tuples to match, and the replicas without a chunk are called with no image at all:
``forward() missing 1 required positional argument: 'x'`` at the very end of testing.

The case runs torch's own scatter and padding code (``scatter_kwargs``) on the CPU, with only
the device copy of each chunk replaced by the same ``torch.chunk`` split, and applies the
replicas one after the other as ``parallel_apply`` does on the GPUs.
"""

from __future__ import annotations

import copy
from unittest import mock

import torch
from torch import nn
from torch.nn.parallel import scatter_gather

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check

BATCH, N_IMAGES = 16, 37  # the last batch holds 5 images


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor, augment: bool = False) -> torch.Tensor:
        return self.body(torch.flip(x, [3]) if augment else x)


class _CpuScatter:
    """Scatter.apply without devices: the same split into ceil-sized chunks."""

    @staticmethod
    def apply(target_gpus, chunk_sizes, dim, tensor):  # noqa: ANN001, ANN205 (torch's signature)
        return tensor.chunk(len(target_gpus), dim)


def data_parallel(model: nn.Module, n_gpus: int, images: torch.Tensor, **kwargs: object) -> torch.Tensor:
    """DataParallel's forward: scatter inputs and kwargs, run each replica, gather along dim 0."""
    with mock.patch.object(scatter_gather, "Scatter", _CpuScatter):
        inputs, kwargs_per_gpu = scatter_gather.scatter_kwargs((images,), kwargs, list(range(n_gpus)))
    outputs = [model(*inp, **kw) for inp, kw in zip(inputs, kwargs_per_gpu)]
    return torch.cat(outputs)


def test_loop(model: nn.Module, images: torch.Tensor, n_gpus: int) -> torch.Tensor:
    """test.py: batches of BATCH images through the (parallel) model with augment passed."""
    with torch.no_grad():
        return torch.cat([data_parallel(model, n_gpus, images[i:i + BATCH], augment=False)
                          for i in range(0, len(images), BATCH)])


@case(
    id="yolov3_dataparallel_last_batch",
    title="DataParallel testing: a short last batch leaves a replica without its image tensor",
    issues=["https://github.com/ultralytics/yolov3/issues/1074"],
    labels={"stage": "training", "manifestation": "basic", "impact": "crash", "root_cause": "low_frequency"},
    reference="the detector applied to one image at a time on one device",
    reference_kind="implementation",
    defect_class="multi-GPU scatter of an uneven last batch",
    mechanism="environment/API",
    evidence={
        "reported": "With several GPUs, test.py failed at about 99% of the validation set with a TypeError "
                    "raised in a DataParallel replica: forward() missing the required argument x; others "
                    "saw it with 3 or 4 GPUs and some batch sizes but not others.",
        "diagnosis": "Participants tied it to the size of the last batch (a batch size of 18 worked where 21 "
                     "did not, with 3 GPUs); the maintainer rejected skipping short batches because it would "
                     "drop images from the mAP and advised even GPU counts.",
        "fix": "No code change was merged; the workaround that users confirmed was testing on a single "
               "GPU (a participant early in the thread) or choosing another set of GPUs (near the end).",
        "model": "37 images in batches of 16 through torch's scatter code with augment passed as a "
                 "keyword: with 4 GPUs the 5-image last batch makes 3 chunks and the fourth replica "
                 "raises TypeError; on a single device the outputs equal the image-by-image reference.",
    },
)
class DataParallelLastBatch(ReproCase):
    expect_raises = (TypeError,)

    def inputs(self, ctx: CaseContext) -> dict:
        torch.manual_seed(ctx.seed)
        return {"model": Detector().eval(), "images": torch.randn(N_IMAGES, 3, 8, 8)}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([inputs["model"].body(image[None])[0] for image in inputs["images"]])

    def reference64(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        body = copy.deepcopy(inputs["model"].body).double()
        with torch.no_grad():
            return torch.stack([body(image[None].double())[0] for image in inputs["images"]])

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return test_loop(inputs["model"], inputs["images"], n_gpus=4)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return test_loop(inputs["model"], inputs["images"], n_gpus=1)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))
