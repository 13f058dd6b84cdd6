"""Training on VIA polygon annotations: a polygon point outside the image breaks ``load_mask``.

The balloon sample's ``load_mask`` turns each VGG Image Annotator (VIA) polygon into a mask with
``skimage.draw.polygon(all_points_y, all_points_x)`` and writes ``mask[rr, cc, i] = 1`` into an
array of the image's height and width. The rasterizer returns every pixel inside the polygon as
annotated, so when the annotator placed points on or past the image border (``y = 724`` in a
720-pixel-high frame, ``x = 1280`` in a 1280-pixel-wide one) the row or column index reaches the
array's size and the assignment raises ``IndexError``; the training generator logs it as
``Error processing image``. The fix in the thread was to correct the annotations so that every
point lies inside the image.
"""

from __future__ import annotations

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

HEIGHT, WIDTH = 72, 128  # a 720 x 1280 frame at a tenth of its size


def via_annotations() -> dict:
    """An image record as the balloon loader builds it from VIA's JSON: the first polygon runs
    past the bottom edge, the second touches ``x = WIDTH``, the third lies inside."""
    return {"height": HEIGHT, "width": WIDTH, "polygons": [
        {"name": "polygon", "all_points_x": [38, 43, 30, 28, 40, 62, 75, 38], "all_points_y": [72, 68, 60, 52, 50, 44, 73, 72]},
        {"name": "polygon", "all_points_x": [100, 128, 127, 112, 96], "all_points_y": [20, 0, 40, 71, 45]},
        {"name": "polygon", "all_points_x": [8, 20, 24, 10], "all_points_y": [8, 6, 30, 26]},
    ]}


def load_mask(info: dict) -> np.ndarray:
    """The balloon sample's load_mask: one channel per polygon, filled by skimage.draw.polygon."""
    import skimage.draw

    mask = np.zeros([info["height"], info["width"], len(info["polygons"])], dtype=np.uint8)
    for i, p in enumerate(info["polygons"]):
        rr, cc = skimage.draw.polygon(p["all_points_y"], p["all_points_x"])
        mask[rr, cc, i] = 1
    return mask.astype(bool)


def annotations_inside_image(info: dict) -> dict:
    """The thread's fix: adjust the annotations so that no polygon point lies outside the image."""
    def inside(p: dict) -> dict:
        return {**p, "all_points_x": [min(max(x, 0), info["width"] - 1) for x in p["all_points_x"]],
                "all_points_y": [min(max(y, 0), info["height"] - 1) for y in p["all_points_y"]]}

    return {**info, "polygons": [inside(p) for p in info["polygons"]]}


def masks_by_point_in_polygon(info: dict) -> np.ndarray:
    """Independent rasterizer: matplotlib's point-in-polygon test at every pixel centre of the
    image, border pixels included, for each polygon with its points moved onto the image."""
    from matplotlib.path import Path

    h, w = info["height"], info["width"]
    centres = np.stack(np.mgrid[:h, :w], -1).reshape(-1, 2).astype(float)
    layers = []
    for p in info["polygons"]:
        vertices = np.stack([np.clip(p["all_points_y"], 0, h - 1), np.clip(p["all_points_x"], 0, w - 1)], 1)
        path = Path(vertices.astype(float))
        # the sign of the radius that widens a path depends on its orientation: take both
        inside = path.contains_points(centres, radius=1e-9) | path.contains_points(centres, radius=-1e-9)
        layers.append(inside.reshape(h, w))
    return np.stack(layers, -1)


@case(
    id="mask_rcnn_polygon_outside_image",
    title="VIA polygon points outside the image: load_mask indexes past the mask and training logs errors",
    issues=["https://github.com/matterport/Mask_RCNN/issues/636"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash", "root_cause": "corrupt_data"},
    reference="the corrected annotations rasterized by matplotlib's point-in-polygon test at each pixel centre",
    reference_kind="implementation",
    requires=("skimage",),
    defect_class="annotation coordinates outside the image turned into out-of-range mask indices",
    mechanism="data loading",
    evidence={
        "reported": "Training the heads (Windows) on an own dataset segmented with the VGG Image Annotator, in "
                    "the balloon sample's polygon format, stopped with Error processing image messages listing the "
                    "image's polygons, some of whose y values exceed the 720-pixel frame height.",
        "diagnosis": "A participant who had hit the same found that the annotation tool let polygon points be "
                     "placed outside the image; the JSON should hold no y above the image height, and the error "
                     "message names the offending image (comment of the next day).",
        "fix": "The reporter confirmed, in a comment two days after the report, that some polygons lay outside "
               "the image and that adjusting them solved the problem; the issue is closed.",
        "model": "A 72x128 image record with three VIA polygons, one running past the bottom edge and one "
                 "touching x = width: load_mask raises IndexError; after moving the points onto the image the "
                 "masks equal an independent matplotlib point-in-polygon rasterization pixel for pixel.",
    },
)
class PolygonOutsideImage(ReproCase):
    expect_raises = (IndexError,)

    def inputs(self, ctx: CaseContext) -> dict:
        return via_annotations()

    def reference(self, ctx: CaseContext, info: dict) -> np.ndarray:
        return masks_by_point_in_polygon(info)

    def buggy(self, ctx: CaseContext, info: dict) -> np.ndarray:
        return load_mask(info)

    def fixed(self, ctx: CaseContext, info: dict) -> np.ndarray:
        return load_mask(annotations_inside_image(info))

    def compare(self, ctx: CaseContext, reference: np.ndarray, candidate: np.ndarray, info: dict) -> Comparison:
        return exact_check(candidate.astype(np.uint8), reference.astype(np.uint8), "mask pixels")
