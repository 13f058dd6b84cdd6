"""Shared pieces of the model-reuse tests: a tiny dataset and a tiny trained CNN, built once per session.

Imported as ``reuse_helpers`` (pytest puts this folder on the path; a ``tests`` package in site-packages
-- ppi-python ships one -- can shadow ``tests.``). Everything here uses scikit-learn's digits (no mlxtend needed), a few hundred images and a
4-channel VGG, so the whole reuse test set stays within seconds.
"""

from __future__ import annotations

import functools

import torch

from analysis.reuse.data import Dataset, load_dataset
from analysis.reuse.networks import Network, build
from analysis.reuse.training import fit, seed_everything


@functools.lru_cache(maxsize=1)
def digits() -> Dataset:
    return load_dataset("digits", seed=0, limit=900)


@functools.lru_cache(maxsize=2)
def trained(arch: str = "vgg") -> Network:
    """A tiny network trained for a few epochs on the digits (well above chance: ~85-95%)."""
    torch.set_num_threads(1)
    seed_everything(0)
    model = build(arch, width=4, blocks=1, num_classes=10)
    data = digits()
    fit(model, data.train, data.val, epochs=6, seed=0, lr=1e-2)
    return model.eval()
