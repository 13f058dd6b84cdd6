"""The demo decodes masks that the model already returns decoded, and crashes.

The test pipeline was changed so that Mask R-CNN returns each instance mask as a boolean array;
the demo's drawing code still passed every mask through the COCO run-length decoder, which reads
the ``size`` and ``counts`` fields of an encoded mask and so fails on an array (IndexError in
pycocotools). The fix draws the boolean masks directly.

A small run-length codec with the COCO API's interface stands in for pycocotools.
"""

from __future__ import annotations

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

H, W = 12, 16


def rle_encode(mask: np.ndarray) -> dict:
    """COCO-style uncompressed RLE: run lengths over the column-major flattening, zeros first."""
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def rle_decode(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    values = np.concatenate([np.full(n, i % 2, np.uint8) for i, n in enumerate(rle["counts"])])
    return values[: h * w].reshape((h, w), order="F")


def model_output(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """An image and the instance masks as the updated test pipeline returns them (bool arrays)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (H, W, 3)).astype(np.float64)
    masks = []
    for _ in range(3):
        y, x = rng.integers(0, H - 4), rng.integers(0, W - 4)
        m = np.zeros((H, W), bool)
        m[y:y + int(rng.integers(2, 5)), x:x + int(rng.integers(2, 5))] = True
        masks.append(m)
    return image, masks


def show_result(image: np.ndarray, segms: list, decode: bool) -> np.ndarray:
    """The demo's drawing: blend a colour into each instance's pixels."""
    out = image.copy()
    for i, segm in enumerate(segms):
        mask = rle_decode(segm).astype(bool) if decode else segm
        out[mask] = out[mask] * 0.5 + np.array([40.0 * (i + 1), 0.0, 200.0]) * 0.5
    return out


@case(
    id="mmdet_demo_mask_decode",
    title="image_demo decodes already-decoded Mask R-CNN masks and raises IndexError",
    issues=["https://github.com/open-mmlab/mmdetection/issues/2734"],
    labels={"stage": "environment", "manifestation": "basic", "impact": "crash", "root_cause": "api_defect"},
    reference="blend of the model's masks decoded from their run-length encoding",
    reference_kind="implementation",
    defect_class="caller not updated after an internal output format change",
    mechanism="environment/API",
    evidence={
        "reported": "Running demo/image_demo.py with the Mask R-CNN R50-FPN config on the CPU ended in an "
                    "IndexError inside pycocotools while drawing the result; reinstalling pycocotools and "
                    "numpy did not help.",
        "diagnosis": "A user found that the model now returns segmentation masks as boolean arrays, so "
                     "decoding them again is wrong; a maintainer agreed that the inference/demo code had not "
                     "been updated after the test logic changed.",
        "fix": "Drop the decode step and use the masks as returned (the user's change, mid-thread); the "
               "maintainers asked for it as a pull request.",
        "model": "Three boolean instance masks are drawn on a random image; passing them through the RLE "
                 "decoder raises IndexError, using them directly matches the blend of the masks recovered "
                 "from their RLE encoding.",
    },
)
class DemoMaskDecode(ReproCase):
    expect_raises = (IndexError,)

    def inputs(self, ctx: CaseContext) -> tuple:
        return model_output(ctx.seed)

    def reference(self, ctx: CaseContext, inputs: tuple) -> np.ndarray:
        image, masks = inputs
        out = image.copy()
        for i, rle in enumerate(rle_encode(m) for m in masks):
            pixels = rle_decode(rle) == 1
            colour = np.array([40.0 * (i + 1), 0.0, 200.0])
            out = np.where(pixels[..., None], (out + colour) / 2, out)
        return out

    def buggy(self, ctx: CaseContext, inputs: tuple) -> np.ndarray:
        return show_result(inputs[0], inputs[1], decode=True)

    def fixed(self, ctx: CaseContext, inputs: tuple) -> np.ndarray:
        return show_result(inputs[0], inputs[1], decode=False)

    def compare(self, ctx: CaseContext, reference: np.ndarray, candidate: np.ndarray, inputs: tuple) -> Comparison:
        return exact_check(candidate, reference, "pixel values")
