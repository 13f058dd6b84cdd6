"""The categories the classifier may predict: the study's own, with its bucket for rare ones.

The taxonomy (``taxonomy/data/jiang2024.yaml``) names more categories than the study's data
uses (the instrument's code error ``configuration``, root causes ``optimizer`` and
``evaluation``, impacts ``hang`` and ``data_corruption``...). A prediction in one of those can
never agree with a rater of the study, and the study itself counted rare categories in its
``low_frequency`` bucket (54 of 348 root-cause rows). A :class:`LabelSpace` is learned from a
label table (labels only, never text): per dimension, the categories the data uses; anything
else maps into ``low_frequency`` where the data has that bucket, and is dropped where it does
not. ``min_count`` also folds categories rarer than that into the bucket (configurable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

BUCKET = "low_frequency"


@dataclass
class LabelSpace:
    """Allowed categories per dimension, and the rare-category bucket where the data has one."""

    categories: dict[str, list[str]]
    bucket: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_labels(cls, labels: pd.DataFrame, dimensions: tuple[str, ...] | list[str],
                    min_count: int = 1) -> LabelSpace:
        """The space a label table uses (e.g. the study's 348 defects); categories below ``min_count`` fold into the bucket."""
        cats: dict[str, list[str]] = {}
        bucket: dict[str, bool] = {}
        for dim in dimensions:
            if dim not in labels:
                continue
            counts = labels[dim].dropna().astype(str).value_counts()
            has_bucket = BUCKET in counts.index
            kept = [c for c, n in counts.items() if n >= min_count or not has_bucket]
            cats[dim] = sorted(set(kept) | ({BUCKET} if has_bucket else set()))
            bucket[dim] = has_bucket
        return cls(cats, bucket)

    def map(self, dimension: str, label: str | None) -> str | None:
        """The label inside the space: itself, the bucket, or None where the dimension has no bucket."""
        if label is None or dimension not in self.categories:
            return label
        if label in self.categories[dimension]:
            return label
        return BUCKET if self.bucket.get(dimension) else None

    def to_dict(self) -> dict[str, Any]:
        return {"categories": self.categories, "bucket": self.bucket}
