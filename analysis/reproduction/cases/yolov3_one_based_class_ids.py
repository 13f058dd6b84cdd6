"""A COCO-to-Darknet label converter wrote COCO category ids, not 0-based class indices.

COCO numbers its categories from 1 and leaves gaps (there is no id 12); Darknet-style label
files need contiguous class indices from 0 matching the lines of the ``*.names`` file. Labels
converted with the raw category ids therefore name classes past the model's class count, and
building the targets stops at the repository's check that target classes do not exceed the
model's. The fix is in the converter: map the sorted category ids to indices 0..n-1.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

# the thread's 13 classes with their COCO category ids
CATEGORIES = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
              8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
              14: "parking meter"}
NAMES = list(CATEGORIES.values())  # the *.names file, one class per line
N_CLASSES = len(NAMES)


def convert(category_ids: np.ndarray, zero_based: bool) -> np.ndarray:
    """The converter's class column: raw COCO ids (bug) or contiguous 0-based indices (fix)."""
    if not zero_based:
        return category_ids.copy()
    index = {cid: i for i, cid in enumerate(sorted(CATEGORIES))}
    return np.array([index[c] for c in category_ids])


def build_targets(classes: np.ndarray) -> torch.Tensor:
    """The repository's target step: check the class range, then one-hot classification targets."""
    c = torch.as_tensor(classes, dtype=torch.long)
    assert c.max() < N_CLASSES, "Target classes exceed model classes"
    return torch.zeros(len(c), N_CLASSES).scatter_(1, c[:, None], 1.0)


@case(
    id="yolov3_one_based_class_ids",
    title="Labels converted with raw COCO category ids exceed the model's 0-based classes",
    issues=["https://github.com/ultralytics/yolov3/issues/678"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash", "root_cause": "data_preprocessing"},
    reference="one-hot targets indexed by each object's class name in the names file",
    reference_kind="implementation",
    defect_class="label index convention (COCO ids vs 0-based indices)",
    mechanism="data loading",
    evidence={
        "reported": "Training a 13-class custom dataset (cfg filters and names file edited accordingly) "
                    "stopped in build_targets at the assertion that target classes exceed model classes; "
                    "the labels came from the user's own COCO-JSON-to-Darknet converter.",
        "diagnosis": "The maintainer explained that class indices are zero-based and must stay below the "
                     "configured class count, and made the assertion message more detailed (commit 0dd0fa7, "
                     "early in the thread); the user then found the offending ids in the converted labels.",
        "fix": "The user fixed the converter so that it writes zero-indexed classes (his update a few "
               "comments later, in the converter's repository).",
        "model": "Objects of the thread's 13 COCO categories are converted with their raw category ids (1 to "
                 "14, with the gap at 12), which trips the class check; mapping the sorted ids to 0..12 "
                 "gives the targets obtained by looking each object's class name up in the names file.",
    },
)
class OneBasedClassIds(ReproCase):
    expect_raises = (AssertionError,)

    def inputs(self, ctx: CaseContext) -> np.ndarray:
        rng = np.random.default_rng(ctx.seed)
        ids = rng.choice(sorted(CATEGORIES), 40)
        ids[:2] = [1, 14]
        return ids

    def reference(self, ctx: CaseContext, category_ids: np.ndarray) -> torch.Tensor:
        targets = torch.zeros(len(category_ids), N_CLASSES)
        for row, cid in enumerate(category_ids):
            targets[row, NAMES.index(CATEGORIES[int(cid)])] = 1.0
        return targets

    def buggy(self, ctx: CaseContext, category_ids: np.ndarray) -> torch.Tensor:
        return build_targets(convert(category_ids, zero_based=False))

    def fixed(self, ctx: CaseContext, category_ids: np.ndarray) -> torch.Tensor:
        return build_targets(convert(category_ids, zero_based=True))

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: np.ndarray) -> Comparison:
        return exact_check(candidate, reference, "target entries")
