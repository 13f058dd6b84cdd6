"""Resuming training resets the learning rate for one epoch.

On ``--resume`` the optimizer state (with its decayed learning rate) was restored, and then a
fresh LambdaLR scheduler was built on it; building a scheduler applies its factor for epoch 0,
so the first resumed epoch ran at the initial rate before ``last_epoch`` was patched. The
schedule of a resumed run must equal an uninterrupted run's; the fix builds the scheduler with
``last_epoch`` set so it continues the cosine schedule.
"""

from __future__ import annotations

import math

import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check

EPOCHS, RESUME_AT, LR0 = 10, 5, 0.01


def cosine(epoch: int) -> float:
    """The one-cycle cosine factor from 1 down to 0.1 over the run."""
    return ((1 + math.cos(epoch * math.pi / EPOCHS)) / 2) * 0.9 + 0.1


def _optimizer(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=LR0, momentum=0.937, nesterov=True)


def train(epochs: range, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: object, data: tuple) -> list[float]:
    x, y = data
    seen = []
    for _ in epochs:
        seen.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return seen


def run(ctx: CaseContext, resume: str | None) -> torch.Tensor:
    """Learning rates seen per epoch; ``resume`` = None (no interruption), 'patched', 'last_epoch'."""
    torch.manual_seed(ctx.seed)
    data = (torch.randn(32, 4), torch.randn(32, 1))
    model = torch.nn.Linear(4, 1)
    opt = _optimizer(list(model.parameters()))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    if resume is None:
        return torch.tensor(train(range(EPOCHS), model, opt, sched, data), dtype=torch.float64)
    seen = train(range(RESUME_AT), model, opt, sched, data)
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    model = torch.nn.Linear(4, 1)
    model.load_state_dict(checkpoint["model"])
    opt = _optimizer(list(model.parameters()))
    opt.load_state_dict(checkpoint["optimizer"])
    if resume == "patched":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        sched.last_epoch = RESUME_AT - 1
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine, last_epoch=RESUME_AT - 1)
    seen += train(range(RESUME_AT, EPOCHS), model, opt, sched, data)
    return torch.tensor(seen, dtype=torch.float64)


@case(
    id="yolov5_resume_lr_reset",
    title="--resume rebuilds the LR scheduler and runs the first resumed epoch at the initial rate",
    issues=["https://github.com/ultralytics/yolov5/issues/292"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "incorrect_functionality",
            "root_cause": "hyperparameters"},
    reference="learning rates of the same training run without interruption",
    reference_kind="implementation",
    defect_class="scheduler state lost on resume",
)
class ResumeLrReset(ReproCase):
    def reference(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return run(ctx, None)

    def buggy(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return run(ctx, "patched")

    def fixed(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return run(ctx, "last_epoch")

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: None) -> Comparison:
        # a schedule is exact arithmetic: the reference is its own float64 run
        return tolerance_check(candidate, reference, reference, tol=1e-9)
