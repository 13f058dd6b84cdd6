"""A checkpoint names an activation class the installed torch does not have.

A pickled model stores each layer's class by module path and name. The repository's checkpoints
used ``torch.nn.Hardswish``, introduced in torch 1.6; loading them under an older torch fails
while unpickling because the class cannot be found in ``torch.nn.modules.activation``. The fix
in the thread is the environment: a torch release that provides the class.

Here the two environments are two versions of one small activation module registered under the
same import path: the older one lacks ``Hardswish``, the newer one has it.
"""

from __future__ import annotations

import io
import sys
import types

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

MODULE = "reeng_case_activation_release"


class Hardswish(nn.Module):
    """x * relu6(x + 3) / 6, the activation the checkpoints use."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.clamp(x + 3, 0, 6) / 6


def install_release(with_hardswish: bool) -> None:
    """Register the activation module as one torch release or the other ships it."""
    release = types.ModuleType(MODULE)
    if with_hardswish:
        Hardswish.__module__ = MODULE
        release.Hardswish = Hardswish
    sys.modules[MODULE] = release


def saved_model(seed: int) -> tuple[bytes, torch.Tensor, torch.Tensor]:
    """A model pickled whole in the newer release, with its output on a probe input."""
    install_release(True)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Hardswish(), nn.Conv2d(4, 2, 1))
    probe = torch.randn(1, 3, 8, 8)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    with torch.no_grad():
        return buffer.getvalue(), probe, model(probe)


def load_and_run(blob: bytes, probe: torch.Tensor, with_hardswish: bool) -> torch.Tensor:
    install_release(with_hardswish)
    try:
        model = torch.load(io.BytesIO(blob), weights_only=False)
    finally:
        sys.modules.pop(MODULE, None)
    with torch.no_grad():
        return model(probe)


@case(
    id="yolov5_unpickle_missing_activation",
    title="Loading a checkpoint that pickles nn.Hardswish fails under a torch without that class",
    issues=["https://github.com/ultralytics/yolov5/issues/773"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "crash", "root_cause": "api_defect"},
    reference="the model's output recorded when the checkpoint was written",
    reference_kind="recorded",
    defect_class="pickled class absent from the installed library",
    mechanism="environment/API",
    evidence={
        "reported": "Loading the released weights failed at unpickling with an AttributeError: no attribute "
                    "Hardswish in torch.nn.modules.activation, on a Python 3.6 install with an older torch.",
        "diagnosis": "The maintainer first pointed at ONNX support for Hardswish, then, rereading the error, "
                     "said the class only exists from torch 1.6 on.",
        "fix": "Upgrade torch to 1.6 or later (maintainer's second comment); a reporter confirmed that "
               "updating torch and torchvision to 1.6 made it work (next comment).",
        "model": "A model using a Hardswish class is pickled whole; unpickling it where the activation "
                 "module lacks the class raises AttributeError, and where the class exists the loaded "
                 "model reproduces the output recorded at save time.",
    },
)
class UnpickleMissingActivation(ReproCase):
    expect_raises = (AttributeError,)

    def inputs(self, ctx: CaseContext) -> tuple:
        return saved_model(ctx.seed)

    def reference(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return inputs[2]

    def buggy(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return load_and_run(inputs[0], inputs[1], with_hardswish=False)

    def fixed(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return load_and_run(inputs[0], inputs[1], with_hardswish=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: tuple) -> Comparison:
        return exact_check(candidate, reference, "outputs")
