"""Two classes trained through the balloon sample's loader: every instance gets class id 1.

The balloon sample reads VGG Image Annotator (VIA) JSON and keeps only each region's polygon;
its ``load_mask`` returns the masks with ``np.ones`` as class ids, because the sample has a
single class. A dataset annotated with several classes and loaded the same way trains without
any error, but every instance is labelled as the first class, so the model never learns the
others. The maintainer's answer was to make ``load_mask`` return one class id per mask; the case takes
it from the VIA export, where each region's attributes name its class, when the dataset is
loaded.
"""

from __future__ import annotations

import json

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.cases.mask_rcnn_polygon_outside_image import load_mask
from analysis.reproduction.comparators import exact_check

CLASS_NAMES = ("balloon", "cake")
SIZES = {"party1.jpg": (48, 64), "party2.jpg": (40, 40), "party3.jpg": (64, 48)}


def via_export() -> str:
    """A VIA 1.x project export: three images, regions of both classes named in region_attributes."""
    def region(name: str, xs: list[int], ys: list[int]) -> dict:
        return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                "region_attributes": {"name": name}}

    images = {
        "party1.jpg": [region("balloon", [5, 20, 12], [4, 6, 30]), region("cake", [30, 60, 55, 32], [20, 22, 44, 40]),
                       region("balloon", [40, 50, 45], [2, 3, 15])],
        "party2.jpg": [region("cake", [2, 30, 20], [10, 12, 38])],
        "party3.jpg": [region("balloon", [4, 40, 22], [5, 8, 50]), region("cake", [10, 44, 30], [52, 54, 62])],
    }
    return json.dumps({f"{name}{100 + i}": {"filename": name, "size": 100 + i, "file_attributes": {},
                                            "regions": {str(k): r for k, r in enumerate(regions)}}
                       for i, (name, regions) in enumerate(images.items())})


def load_via(export: str, keep_class_names: bool) -> list[dict]:
    """BalloonDataset.load_balloon: one record per annotated image with its polygons; with
    ``keep_class_names`` (the maintainer's advice) also the class id of every polygon."""
    records = []
    for a in json.loads(export).values():
        if not a["regions"]:
            continue
        regions = list(a["regions"].values())
        height, width = SIZES[a["filename"]]
        record = {"id": a["filename"], "height": height, "width": width,
                  "polygons": [r["shape_attributes"] for r in regions]}
        if keep_class_names:
            record["class_ids"] = [CLASS_NAMES.index(r["region_attributes"]["name"]) + 1 for r in regions]
        records.append(record)
    return records


def load_mask_as_shipped(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """The sample's load_mask: masks, and an array of ones because the sample has one class."""
    mask = load_mask(record)
    return mask, np.ones([mask.shape[-1]], dtype=np.int32)


def load_mask_per_instance(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """load_mask after the fix: the class id recorded for each polygon, in mask order."""
    mask = load_mask(record)
    return mask, np.array(record["class_ids"], dtype=np.int32)


def training_labels(records: list[dict], loader) -> np.ndarray:  # noqa: ANN001 (a load_mask variant)
    """Image id, instance index and class id of every ground-truth instance the generator feeds."""
    rows = []
    for n, record in enumerate(records):
        mask, class_ids = loader(record)
        assert mask.shape[-1] == len(class_ids)
        rows += [(n, k, int(c)) for k, c in enumerate(class_ids)]
    return np.array(rows, dtype=np.int64)


def labels_from_export(export: str) -> np.ndarray:
    """Independent reading of the export: image order, region order, and the region's class name
    looked up in the class list (1-based, 0 being the background)."""
    lookup = {name: i for i, name in enumerate(("BG", *CLASS_NAMES))}
    images = [v for v in json.loads(export).values() if v["regions"]]
    return np.array([(n, int(k), lookup[r["region_attributes"]["name"]])
                     for n, image in enumerate(images) for k, r in sorted(image["regions"].items(), key=lambda kv: int(kv[0]))],
                    dtype=np.int64)


@case(
    id="mask_rcnn_balloon_single_class_ids",
    title="Several classes through the balloon sample's loader: load_mask labels every instance as class 1",
    issues=["https://github.com/matterport/Mask_RCNN/issues/372"],
    labels={"stage": "training", "manifestation": "evolutionary", "impact": "incorrect_functionality",
            "root_cause": "training_configuration"},
    reference="the class of every region read directly from the VIA export, looked up in the class list",
    reference_kind="implementation",
    requires=("skimage",),
    defect_class="single-class sample loader reused for multi-class annotations",
    mechanism="data loading",
    evidence={
        "reported": "After training the balloon, COCO and shapes samples and an own VIA-annotated dataset with "
                    "one class, the reporter could not train several classes: changing the dataset's loading "
                    "and load_mask functions did not work.",
        "diagnosis": "The maintainer, the same day, pointed to the balloon dataset's load_mask: it returns the "
                     "masks together with an array of ones as class ids, because the sample has a single class.",
        "fix": "In that answer: make load_mask return each mask's own class id (1 or 2 for two classes) instead "
               "of the ones; the rest of the answer, on where load_mask takes that from, is cut off in the stored "
               "copy we read; the issue is closed.",
        "model": "A VIA export of three images with balloon and cake regions, loaded as the sample does: the "
                 "instance labels are all 1; recording each region's class and returning it from load_mask "
                 "gives exactly the labels read independently from the export.",
    },
)
class BalloonSingleClassIds(ReproCase):
    def inputs(self, ctx: CaseContext) -> str:
        return via_export()

    def reference(self, ctx: CaseContext, export: str) -> np.ndarray:
        return labels_from_export(export)

    def buggy(self, ctx: CaseContext, export: str) -> np.ndarray:
        return training_labels(load_via(export, keep_class_names=False), load_mask_as_shipped)

    def fixed(self, ctx: CaseContext, export: str) -> np.ndarray:
        return training_labels(load_via(export, keep_class_names=True), load_mask_per_instance)

    def compare(self, ctx: CaseContext, reference: np.ndarray, candidate: np.ndarray, export: str) -> Comparison:
        return exact_check(candidate, reference, "instance labels")
