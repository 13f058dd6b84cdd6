"""Edited label files are not re-read: the dataset keeps serving labels from a stale cache.

The loader cached the labels of a dataset the first time it was scanned and reused that cache
whenever it existed, so corrections to the ``*.txt`` label files never reached training. The
fix stores, beside the cached labels, a hash of the label and image files and rescans when the
hash no longer matches.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check


def write_labels(folder: Path, rows: list[list[list[float]]]) -> list[Path]:
    files = []
    for i, boxes in enumerate(rows):
        path = folder / f"img{i}.txt"
        path.write_text("".join(" ".join(f"{v:g}" for v in box) + "\n" for box in boxes))
        files.append(path)
    return files


def scan(files: list[Path]) -> list[np.ndarray]:
    return [np.array([[float(v) for v in line.split()] for line in f.read_text().splitlines()]) for f in files]


def files_hash(files: list[Path]) -> int:
    """The fix's cache key: the summed sizes of the files, as in the commit."""
    return sum(os.path.getsize(f) for f in files)


def cached_labels(files: list[Path], cache: Path, check_hash: bool) -> list[np.ndarray]:
    """The repository's loader: reuse ``cache`` when present (and, with the fix, still valid)."""
    if cache.exists():
        stored = pickle.loads(cache.read_bytes())
        if not check_hash or stored["hash"] == files_hash(files):
            return stored["labels"]
    labels = scan(files)
    cache.write_bytes(pickle.dumps({"labels": labels, "hash": files_hash(files)}))
    return labels


def first_labels(seed: int) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    return [[[0, *rng.uniform(0.1, 0.9, 4).round(3)] for _ in range(int(rng.integers(1, 4)))] for _ in range(6)]


def corrected(rows: list[list[list[float]]]) -> list[list[list[float]]]:
    """The user's correction: every box gets class id 12."""
    return [[[12, *box[1:]] for box in boxes] for boxes in rows]


def train_then_relabel(rows: list[list[list[float]]], check_hash: bool) -> list[np.ndarray]:
    """A first training run caches the labels; the user corrects the files and trains again."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_labels(folder, rows)
        cached_labels(files, folder / "labels.cache", check_hash)
        write_labels(folder, corrected(rows))
        return cached_labels(files, folder / "labels.cache", check_hash)


@case(
    id="yolov5_label_cache_stale",
    title="Corrected label files are ignored because a cached label set is reused without validation",
    issues=["https://github.com/ultralytics/yolov5/issues/324"],
    labels={"stage": "data_pipeline", "manifestation": "evolutionary", "impact": "incorrect_functionality",
            "root_cause": "data_preprocessing"},
    reference="the corrected label rows as written to the files (recorded)",
    reference_kind="recorded",
    defect_class="stale label cache",
    mechanism="data loading",
    evidence={
        "reported": "Training on a custom dataset (and on COCO) in the tutorial notebook learned nothing; the "
                    "ground-truth mosaic drawn by the repository showed boxes that did not belong to the "
                    "images once the dataset grew past about a thousand images.",
        "diagnosis": "The maintainer found that later edits to the label text files did not trigger a rescan: "
                     "previously cached shapes and label arrays were served, and suggested deleting the cache "
                     "files as a stopgap.",
        "fix": "Commit 520f5de (announced by the maintainer near the end of the thread) rescans images and "
               "labels together into one labels.cache with a hash of the files; the reporter confirmed it "
               "on two datasets.",
        "model": "Six label files are cached, their class ids then corrected; the unvalidated cache returns "
                 "the old class 0, the hashed cache rescans and returns the corrected rows.",
    },
)
class LabelCacheStale(ReproCase):
    def inputs(self, ctx: CaseContext) -> list:
        return first_labels(ctx.seed)

    def reference(self, ctx: CaseContext, rows: list) -> list:
        return corrected(rows)

    def buggy(self, ctx: CaseContext, rows: list) -> list:
        return train_then_relabel(rows, check_hash=False)

    def fixed(self, ctx: CaseContext, rows: list) -> list:
        return train_then_relabel(rows, check_hash=True)

    def compare(self, ctx: CaseContext, reference: list, candidate: list, rows: list) -> Comparison:
        stack = [np.vstack([np.asarray(b, dtype=float) for b in labels]) for labels in (candidate, reference)]
        return exact_check(*stack, "label values")
