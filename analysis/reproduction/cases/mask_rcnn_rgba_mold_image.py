"""Inference on a PNG with an alpha channel: subtracting the 3-value mean pixel fails.

Mask R-CNN's ``mold_image`` subtracts ``config.MEAN_PIXEL`` (three values, one per RGB channel)
from each image before the backbone runs. The balloon sample's splash script reads the image
file directly, so a PNG saved with an alpha channel arrives as an ``H x W x 4`` array and the
subtraction cannot broadcast (``operands could not be broadcast together with shapes
(1280,1280,4) (3,)``). Training had worked because the dataset loader keeps only the colour
channels. The fix drops the alpha channel before ``detect``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import tolerance_check

MEAN_PIXEL = np.array([123.7, 116.8, 103.9])


def rgba_photo(seed: int) -> np.ndarray:
    """A 24x32 uint8 RGBA image as skimage.io.imread returns a PNG with transparency."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    alpha = np.where(rng.random((24, 32, 1)) < 0.3, 0, 255).astype(np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def backbone(seed: int) -> nn.Module:
    """The first stage of a ResNet-style backbone (seeded weights)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))


def detect(seed: int, image: np.ndarray, drop_alpha: bool) -> torch.Tensor:
    """model.detect: mold the image (mean subtraction), run the backbone."""
    if drop_alpha and image.shape[-1] == 4:
        image = image[..., :3]
    molded = image.astype(np.float32) - MEAN_PIXEL.astype(np.float32)
    x = torch.from_numpy(molded).permute(2, 0, 1)[None]
    with torch.no_grad():
        return backbone(seed)(x)


def detect_after_pil_conversion(seed: int, image: np.ndarray) -> torch.Tensor:
    """Independent route: Pillow converts RGBA to RGB, molding and backbone in float64."""
    rgb = np.asarray(Image.fromarray(image).convert("RGB"), dtype=np.float64)
    x = torch.from_numpy(rgb - MEAN_PIXEL).permute(2, 0, 1)[None]
    with torch.no_grad():
        return backbone(seed).double()(x)


@case(
    id="mask_rcnn_rgba_mold_image",
    title="A PNG with an alpha channel at inference: the 3-value mean pixel cannot be subtracted",
    issues=["https://github.com/matterport/Mask_RCNN/issues/578"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash",
            "root_cause": "data_preprocessing"},
    reference="the image converted RGBA to RGB by Pillow, molded and run through the backbone in float64",
    reference_kind="implementation",
    defect_class="channel count at preprocessing (alpha channel)",
    mechanism="preprocessing",
    evidence={
        "reported": "After training on the balloon template without trouble, running the splash script on "
                    "a 3000x4000 photo stopped in mold_image with a broadcast error between a 4-channel "
                    "image and the 3-value mean pixel; another user hit the same.",
        "diagnosis": "The reporter worked out that the image file carried an alpha channel, so the array "
                     "had four channels while the model's preprocessing expects only red, green and blue.",
        "fix": "The reporter's own answer, the third comment, twelve days after the report: remove the "
               "alpha channel before calling detect, since only the colour channels are expected; the issue is closed.",
        "model": "A uint8 RGBA image goes through mean subtraction and a small backbone stage: without "
                 "dropping alpha the subtraction raises the broadcast ValueError; keeping the first three "
                 "channels matches a Pillow RGBA-to-RGB conversion run in float64.",
    },
)
class RgbaMoldImage(ReproCase):
    expect_raises = (ValueError,)

    def inputs(self, ctx: CaseContext) -> np.ndarray:
        return rgba_photo(ctx.seed)

    def reference(self, ctx: CaseContext, image: np.ndarray) -> torch.Tensor:
        return detect_after_pil_conversion(ctx.seed, image).float()

    def reference64(self, ctx: CaseContext, image: np.ndarray) -> torch.Tensor:
        return detect_after_pil_conversion(ctx.seed, image)

    def buggy(self, ctx: CaseContext, image: np.ndarray) -> torch.Tensor:
        return detect(ctx.seed, image, drop_alpha=False)

    def fixed(self, ctx: CaseContext, image: np.ndarray) -> torch.Tensor:
        return detect(ctx.seed, image, drop_alpha=True)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, image: np.ndarray) -> Comparison:
        return tolerance_check(candidate, reference, self.reference64(ctx, image))
