"""The objectness loss took the log of a saturated sigmoid: training without pretrained weights hit NaN.

The first YOLOv3 loss of the Keras port computed the confidence term as ``-log(p)`` for cells
with an object and ``-log(1 - p)`` for the others, with ``p = sigmoid(logit)`` evaluated first.
In float32 a sigmoid of a logit beyond about 17 is exactly 1.0 (and of one below about -88
exactly 0.0), so a background cell that the untrained network scores confidently gives
``log(0)``: the loss becomes infinite and the gradients NaN. The fix computes the binary cross
entropy from the logits (``from_logits=True``), which never forms ``log(0)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check


def untrained_head(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Objectness logits of a 13x13x3 head trained from scratch (large activations), and the
    object mask of the targets."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(3, 13, 13, generator=g) * 15).float()
    mask = (torch.rand(3, 13, 13, generator=g) < 0.05).float()
    return logits, mask


def confidence_loss_from_probabilities(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The original loss: sigmoid first, then the two logs."""
    p = torch.sigmoid(logits)
    return (mask * -torch.log(p) + (1 - mask) * -torch.log(1 - p)).sum()


def confidence_loss_from_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The fixed loss: binary cross entropy computed from the logits."""
    return F.binary_cross_entropy_with_logits(logits, mask, reduction="sum")


@case(
    id="keras_yolo3_confidence_loss_log",
    title="Confidence loss as log(sigmoid): float32 saturation gives log(0) and a NaN loss",
    issues=["https://github.com/qqwweee/keras-yolo3/issues/45"],
    labels={"stage": "data_pipeline", "manifestation": "evolutionary", "impact": "numerical_instability",
            "root_cause": "low_frequency"},
    reference="the same cross entropy in float64 written as logaddexp(0, x) - x*z (NumPy)",
    reference_kind="implementation",
    defect_class="log of a saturated probability",
    mechanism="numerics",
    evidence={
        "reported": "Training on the reporter's own small dataset (356 training, 46 validation images) "
                    "without pretrained weights, the loss became NaN; others saw the same and one also "
                    "got shape-mismatch warnings while loading weights.",
        "diagnosis": "The maintainer suspected an exp overflow and suggested starting from pretrained weights "
                     "or with a much smaller learning rate for the first epochs.",
        "fix": "Commit b7cbd24 (three weeks after the report, closing this issue with two others) computes "
               "the xy, confidence and class terms with binary cross entropy from the logits instead of "
               "logs of sigmoid outputs, noting that this avoids the overflow.",
        "model": "Objectness logits of an untrained 13x13x3 head (spread like exploding activations) with "
                 "a sparse object mask: the log-of-sigmoid loss is infinite in float32, the from-logits "
                 "loss equals an independent float64 evaluation within float32 tolerance.",
    },
)
class ConfidenceLossLog(ReproCase):
    def inputs(self, ctx: CaseContext) -> tuple[torch.Tensor, torch.Tensor]:
        return untrained_head(ctx.seed)

    def reference(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return self.reference64(ctx, inputs).float()

    def reference64(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        x, z = (t.double().numpy() for t in inputs)
        return torch.tensor(float(np.sum(np.logaddexp(0.0, x) - x * z)), dtype=torch.float64)

    def buggy(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return confidence_loss_from_probabilities(*inputs)

    def fixed(self, ctx: CaseContext, inputs: tuple) -> torch.Tensor:
        return confidence_loss_from_logits(*inputs)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: tuple) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))
