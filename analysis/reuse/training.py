"""Seeds, devices, and the one training loop every experiment uses (epoch chosen on validation)."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.reuse.data import Split
from reeng.errors import ReengError

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that shows nothing."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present; ``cuda`` without CUDA is the user's error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReengError("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ReengError(f"unknown device {name!r} (use auto, cpu or cuda)")
    return torch.device(name)


def batches(split: Split, size: int, shuffle: bool, generator: torch.Generator | None = None,
            device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    for start in range(0, len(split), size):
        index = order[start:start + size]
        x, y = split.x[index], split.y[index]
        yield (x.to(device), y.to(device)) if device is not None else (x, y)


@torch.no_grad()
def logits(model: nn.Module, split: Split, device: torch.device | None = None, size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x).cpu() for x, _ in batches(split, size, False, device=device)])


def accuracy(model: nn.Module, split: Split, device: torch.device | None = None) -> float:
    return float((logits(model, split, device).argmax(1) == split.y).float().mean())


@dataclass
class Fit:
    """What a training run chose and how long it took."""

    epoch: int
    val_accuracy: float
    seconds: float


def fit(model: nn.Module, train: Split, val: Split, epochs: int, seed: int, lr: float = 1e-3,
        params: list[nn.Parameter] | None = None, batch_size: int = 64, device: torch.device | None = None,
        progress: Progress = quiet, label: str = "train") -> Fit:
    """Train with Adam and keep the weights of the epoch with the best validation accuracy."""
    started = time.perf_counter()
    device = device or torch.device("cpu")
    model.to(device)
    optimizer = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best_state, best_acc, best_epoch = copy.deepcopy(model.state_dict()), -1.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in batches(train, batch_size, True, generator, device):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        acc = accuracy(model, val, device)
        progress(f"{label}: epoch {epoch}/{epochs} val {acc:.1%}")
        if acc > best_acc:
            best_state, best_acc, best_epoch = copy.deepcopy(model.state_dict()), acc, epoch
    model.load_state_dict(best_state)
    model.eval()
    return Fit(best_epoch, best_acc, time.perf_counter() - started)
