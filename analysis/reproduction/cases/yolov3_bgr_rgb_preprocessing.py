"""Evaluation fed BGR pixels to a network trained on RGB.

OpenCV decodes images as BGR; the training pipeline converted to RGB before scaling and
normalising, the reimplemented evaluation path did not. The network runs and predicts, and the
reported mAP is simply lower than the original's. Comparing pixel tensors before any logits
shows the problem immediately: the candidate equals the reference with its channel axis
reversed and the per-channel normalisation applied to the wrong channels.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.parity import preprocessing_parity

MEAN = np.array([0.485, 0.456, 0.406])  # RGB order
STD = np.array([0.229, 0.224, 0.225])


def to_tensor(hwc: np.ndarray) -> torch.Tensor:
    """Scale to [0, 1], normalise per channel (RGB statistics), HWC → NCHW float32."""
    x = (hwc.astype(np.float64) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))


@case(
    id="yolov3_bgr_rgb_preprocessing",
    title="BGR pixels from OpenCV fed to an RGB-trained network at evaluation",
    issues=["https://github.com/YunYang1994/tensorflow-yolov3/issues/16"],
    labels={"stage": "data_pipeline", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "data_preprocessing"},
    reference="the training pipeline's pixel tensor (decode BGR → convert to RGB → normalise)",
    reference_kind="recorded",
    defect_class="preprocessing parity (channel order, mean/std)",
)
class BgrRgbPreprocessing(ReproCase):
    def inputs(self, ctx: CaseContext) -> np.ndarray:
        rng = np.random.default_rng(ctx.seed)
        return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)  # as decoded by OpenCV: BGR

    def reference(self, ctx: CaseContext, bgr: np.ndarray) -> torch.Tensor:
        return to_tensor(bgr[..., ::-1])

    def buggy(self, ctx: CaseContext, bgr: np.ndarray) -> torch.Tensor:
        return to_tensor(bgr)

    def fixed(self, ctx: CaseContext, bgr: np.ndarray) -> torch.Tensor:
        return to_tensor(np.ascontiguousarray(np.flip(bgr, axis=2)))

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, bgr: np.ndarray) -> Comparison:
        parity = preprocessing_parity(candidate, reference)
        return Comparison(parity.agrees, "agree" if parity.agrees else "deviate", parity.diagnosis,
                          {**parity.stats, "channel_affine": parity.channel_affine})
