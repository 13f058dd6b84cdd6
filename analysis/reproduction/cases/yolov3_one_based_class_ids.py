"""Class ids written 1-based for a detector that expects 0-based ids.

The user's label files numbered three classes 1, 2, 3 while the model was configured for three
classes, whose ids are 0, 1, 2. Building the one-hot classification targets then indexes one
past the end of the class axis and training stops with an index error ("target classes exceed
model classes"); with more configured classes than used it would instead train every object as
its neighbouring class. The fix is in the data: ids are 0-based.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

N_CLASSES = 3


def class_targets(class_ids: np.ndarray, n_classes: int) -> torch.Tensor:
    """One-hot classification targets, built the way a YOLO loss builds them (scatter)."""
    ids = torch.as_tensor(class_ids, dtype=torch.long)
    return torch.zeros(len(ids), n_classes).scatter_(1, ids[:, None], 1.0)


def parse_labels(lines: list[str], one_based: bool) -> np.ndarray:
    """Class ids from 'cls cx cy w h' label lines; a 1-based file is shifted on reading."""
    ids = np.array([int(line.split()[0]) for line in lines])
    return ids - 1 if one_based else ids


@case(
    id="yolov3_one_based_class_ids",
    title="1-based class ids in label files overflow the 0-based class axis of the targets",
    issues=["https://github.com/ultralytics/yolov3/issues/678"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash", "root_cause": "data_preprocessing"},
    reference="one-hot targets from the intended 0-based class ids",
    reference_kind="implementation",
    defect_class="label index convention (0- vs 1-based)",
)
class OneBasedClassIds(ReproCase):
    expect_raises = (RuntimeError, IndexError)

    def inputs(self, ctx: CaseContext) -> dict:
        rng = np.random.default_rng(ctx.seed)
        true_ids = rng.integers(0, N_CLASSES, 40)
        true_ids[:3] = [0, 1, 2]
        lines = [f"{c + 1} {x:.3f} {y:.3f} 0.100 0.200" for c, x, y in zip(true_ids, rng.random(40), rng.random(40))]
        return {"true_ids": true_ids, "lines": lines}

    def reference(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return class_targets(inputs["true_ids"], N_CLASSES)

    def buggy(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return class_targets(parse_labels(inputs["lines"], one_based=False), N_CLASSES)

    def fixed(self, ctx: CaseContext, inputs: dict) -> torch.Tensor:
        return class_targets(parse_labels(inputs["lines"], one_based=True), N_CLASSES)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: dict) -> Comparison:
        return exact_check(candidate, reference, "target entries")
