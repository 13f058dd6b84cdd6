"""pix2pix test script ran the generator in training mode: BatchNorm used one image's statistics.

The test script loaded the trained generator without switching it to evaluation mode. pix2pix's
generator uses BatchNorm and the test loader feeds one image at a time, so every test image was
normalised with its own statistics instead of the running statistics learned in training, and
the test images came out far worse than the training-time outputs (the thread's opener trained
CycleGAN; the participant the fix was confirmed by, a pix2pix model trained with a larger
batch). The fix (a commit in the thread) puts the networks in evaluation mode when testing.

The reference applies the learned normalisation explicitly: each BatchNorm is replaced by the
per-channel affine map its running statistics and weights define, in float64.
"""

from __future__ import annotations

import torch
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check

C = 8


class TinyGenerator(nn.Module):
    """conv → BatchNorm → ReLU → conv → BatchNorm → ReLU → conv → tanh (an encoder-decoder's units)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, C, 3, 1, 1), nn.BatchNorm2d(C)
        self.conv2, self.bn2 = nn.Conv2d(C, C, 3, 1, 1), nn.BatchNorm2d(C)
        self.out = nn.Conv2d(C, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.tanh(self.out(x))


def trained_generator(seed: int) -> TinyGenerator:
    """Weights and the running statistics a large-batch training run leaves behind (seeded)."""
    torch.manual_seed(seed)
    net = TinyGenerator()
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.running_mean.normal_(0, 0.3)
            bn.running_var.uniform_(0.3, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.2)
    return net


def test_script(seed: int, image: torch.Tensor, eval_mode: bool) -> torch.Tensor:
    """test.py: load the generator, optionally call eval() (the fix), translate one image."""
    net = trained_generator(seed)
    if eval_mode:
        net.eval()
    with torch.no_grad():
        return net(image)


def learned_normalisation(seed: int, image: torch.Tensor) -> torch.Tensor:
    """The generator with every BatchNorm written out as its learned affine map, float64."""
    net = trained_generator(seed).double()

    def affine(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return x * scale.view(1, -1, 1, 1) + (bn.bias - bn.running_mean * scale).view(1, -1, 1, 1)

    with torch.no_grad():
        x = torch.relu(affine(net.bn1, net.conv1(image.double())))
        x = torch.relu(affine(net.bn2, net.conv2(x)))
        return torch.tanh(net.out(x))


@case(
    id="eval_mode_forgotten",
    title="pix2pix testing in training mode: BatchNorm normalises each single test image by itself",
    issues=["https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/336"],
    labels={"stage": "training", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "training_configuration"},
    reference="the generator with its BatchNorm layers applied as their learned affine maps (float64)",
    reference_kind="implementation",
    defect_class="evaluation mode (BatchNorm statistics at batch size 1)",
    mechanism="evaluator",
    evidence={
        "reported": "The opener trained CycleGAN on driving scenes and got much worse images from the "
                    "latest checkpoint on test images than the training-time outputs; a later participant "
                    "saw the same with a pix2pix model trained with a larger batch.",
        "diagnosis": "The maintainer first suggested the test-time loadSize and overfitting, then "
                     "evaluation mode; a collaborator explained that without eval() pix2pix's BatchNorm "
                     "ignores its running statistics, and test batches hold a single image.",
        "fix": "Commit 7dfdd06, announced by the collaborator to both users in the middle of the thread, "
               "puts the model in evaluation mode when testing (no retraining needed); the pix2pix user "
               "confirmed much better results in the next comment.",
        "model": "A small BatchNorm generator with trained running statistics translates one image: in "
                 "training mode its output deviates from the learned normalisation written out as "
                 "affine maps; after eval() it agrees within float32 tolerance.",
    },
)
class EvalModeForgotten(ReproCase):
    def inputs(self, ctx: CaseContext) -> torch.Tensor:
        return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(ctx.seed + 7))

    def reference(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return learned_normalisation(ctx.seed, image).float()

    def reference64(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return learned_normalisation(ctx.seed, image)

    def buggy(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return test_script(ctx.seed, image, eval_mode=False)

    def fixed(self, ctx: CaseContext, image: torch.Tensor) -> torch.Tensor:
        return test_script(ctx.seed, image, eval_mode=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, image: torch.Tensor) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, image))
