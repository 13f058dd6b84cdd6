"""Saving a checkpoint fails because the EMA copy still holds the distributed wrapper's handle.

The exponential moving average (EMA) of the weights was made by deep-copying the model as
trained, which under multi-GPU training is the DistributedDataParallel wrapper; that wrapper holds
the NCCL process group, which cannot be pickled, so ``torch.save`` of the checkpoint failed at the
end of the first epoch. The fix keeps the EMA as a plain single-device model (it copies the
wrapped ``module``).

Here a stand-in wrapper holds an unpicklable handle (a lock) where DDP holds its process group.
"""

from __future__ import annotations

import copy
import io
import threading

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check


class ParallelWrapper(nn.Module):
    """What the training loop holds in multi-GPU mode: the model plus a communication handle."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.process_group = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def ema_of(model: ParallelWrapper, unwrap: bool) -> nn.Module:
    """The EMA's model: a copy of the wrapper as trained (bug; the handle comes along, shared)
    or a deep copy of the wrapped single-device module (fix)."""
    return copy.deepcopy(model.module) if unwrap else copy.copy(model)


def save_and_reload_ema(seed: int, unwrap: bool) -> torch.Tensor:
    torch.manual_seed(seed)
    trained = ParallelWrapper(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)))
    buffer = io.BytesIO()
    torch.save({"epoch": 0, "ema": ema_of(trained, unwrap)}, buffer)
    ema = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)["ema"]
    return torch.cat([p.detach().flatten() for p in ema.parameters()])


def trained_weights(seed: int) -> torch.Tensor:
    """The weights the run holds when it saves, read straight from the layers (recorded)."""
    torch.manual_seed(seed)
    layers = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    return torch.cat([p.detach().flatten() for p in layers.parameters()])


@case(
    id="yolov5_ema_checkpoint_process_group",
    title="torch.save of the checkpoint fails: the EMA copy holds the multi-GPU wrapper's process group",
    issues=["https://github.com/ultralytics/yolov5/issues/279"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "crash", "root_cause": "gpu_usage"},
    reference="the trained layers' weights as they are at save time (recorded)",
    reference_kind="recorded",
    defect_class="unpicklable handle reaches the checkpoint",
    mechanism="environment/API",
    evidence={
        "reported": "Multi-GPU training crashed when saving the last checkpoint with a TypeError: the "
                    "ProcessGroupNCCL object could not be pickled; single-GPU runs were fine.",
        "diagnosis": "Participants tied it to a recent merge and to the NCCL backend of multi-GPU runs; the "
                     "maintainer looked at the EMA, which was created from the distributed model.",
        "fix": "The maintainer pushed an EMA update (mid-thread) that creates and keeps the EMA as a "
               "single-device model; users confirmed the commit fixed saving.",
        "model": "A stand-in wrapper holds an unpicklable lock as DDP holds its process group; copying the "
                 "wrapper into the checkpoint makes torch.save raise TypeError, copying the wrapped module "
                 "saves and reloads the weights recorded at save time.",
    },
)
class EmaCheckpointProcessGroup(ReproCase):
    expect_raises = (TypeError,)

    def reference(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return trained_weights(ctx.seed)

    def buggy(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return save_and_reload_ema(ctx.seed, unwrap=False)

    def fixed(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return save_and_reload_ema(ctx.seed, unwrap=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: None) -> Comparison:
        return exact_check(candidate, reference, "EMA weights")
