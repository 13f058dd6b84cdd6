"""Data-loader workers replaying one random stream: identical augmentations across workers.

A dataset that creates its random generator once, in ``__init__``, hands every DataLoader
worker (forked from the main process) a copy of the same generator state. Each worker then
draws the same sequence of augmentation parameters, so with K workers every augmentation
appears K times per epoch and the effective augmentation diversity drops by K — training no
longer matches the original. (PyTorch ≥ 1.9 reseeds NumPy's *global* generator per worker, but
not a generator object the dataset owns; forked or spawned, each worker gets a copy of it.) The fix derives the generator in each worker from the
per-worker seed PyTorch provides.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

N_SAMPLES, N_WORKERS = 16, 2


class Augmented(Dataset):
    """Returns the augmentation parameters drawn for each sample (crop offset, flip, scale)."""

    def __init__(self, seed: int, per_worker: bool) -> None:
        self.seed = seed
        self.per_worker = per_worker
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return N_SAMPLES

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([self.rng.integers(0, 32), self.rng.integers(0, 32), self.rng.random() < 0.5,
                             self.rng.uniform(0.5, 1.5)], dtype=torch.float64)


def reseed_in_worker(worker_id: int) -> None:
    """The fix: a generator per worker from the worker's own seed (base seed + worker id)."""
    info = get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed)


def duplicate_draws(dataset: Augmented, workers: int) -> torch.Tensor:
    """How many samples of one epoch repeat an augmentation already drawn for another sample."""
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, shuffle=False,
                        worker_init_fn=reseed_in_worker if dataset.per_worker else None,
                        generator=torch.Generator().manual_seed(dataset.seed))
    draws = [tuple(batch[0].tolist()) for batch in loader]
    return torch.tensor([len(draws) - len(set(draws))], dtype=torch.float64)


@case(
    id="dataloader_worker_rng",
    title="Dataset-owned random generator copied into every DataLoader worker",
    issues=["https://github.com/phillipi/pix2pix/issues/116"],
    labels={"stage": "data_pipeline", "manifestation": "reproducibility", "impact": "lower_accuracy",
            "root_cause": "data_preprocessing"},
    reference="the same epoch loaded in one process (one stream: no repeated augmentation)",
    reference_kind="implementation",
    defect_class="random state shared across data-loader workers",
)
class DataloaderWorkerRng(ReproCase):
    def reference(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return duplicate_draws(Augmented(ctx.seed, per_worker=False), workers=0)

    def buggy(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return duplicate_draws(Augmented(ctx.seed, per_worker=False), workers=N_WORKERS)

    def fixed(self, ctx: CaseContext, inputs: None) -> torch.Tensor:
        return duplicate_draws(Augmented(ctx.seed, per_worker=True), workers=N_WORKERS)

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, inputs: None) -> Comparison:
        return exact_check(candidate, reference, "count of repeated augmentations")
