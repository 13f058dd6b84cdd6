"""Defect inheritance (SeaM's RQ, after ReMoS): do fine-tuned models inherit the source's weaknesses?

Adversarial examples for the target task are crafted with L-infinity PGD against the *source*
model's feature extractor -- the penultimate features are driven toward one large value in one
feature and zero elsewhere -- and transferred to each fine-tuned model. The defect
inheritance rate (DIR) is the share of target test samples the fine-tuned model classifies
correctly when clean that become wrong under attack. Compared: standard fine-tuning (all
weights), SeaM fine-tuning (re-engineer, reset masked weights to zero, fine-tune everything) at
several prune thresholds, and training from scratch.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from analysis.reuse.data import Dataset, Split
from analysis.reuse.networks import Network, build
from analysis.reuse.seam import prune_to_thresholds
from analysis.reuse.training import Progress, fit, logits, quiet, seed_everything


def pgd_features(source: Network, x: torch.Tensor, eps: float, step: float, iters: int, seed: int,
                 big: float = 1000.0, batch_size: int = 256, feature: int | None = None) -> torch.Tensor:
    """L-infinity PGD (random start) on ``source.features``: minimise ``(f_k - big)^2 + 0.1 mean(f_rest^2)``.

    ReMoS and SeaM drive feature ``k = 0``. In a small ReLU network feature 0 can be dead (zero on
    every input, so no gradient); by default ``k`` is the feature with the largest mean on ``x``.
    """
    source.eval()
    for p in source.parameters():
        p.requires_grad_(False)
    if feature is None:
        with torch.no_grad():
            feature = int(torch.cat([source.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
                          .mean(0).argmax())
    keep = torch.ones(source.classifier.in_features, dtype=torch.bool)
    keep[feature] = False
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(x), batch_size):
        clean = x[start:start + batch_size]
        noise = (torch.rand(clean.shape, generator=generator) * 2 - 1) * eps
        adv = (clean + noise.to(clean.device)).clamp(0, 1)
        for _ in range(iters):
            adv.requires_grad_(True)
            f = source.features(adv)
            loss = ((f[:, feature] - big) ** 2 + 0.1 * (f[:, keep] ** 2).mean(1)).mean()
            (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv - step * grad.sign()
                adv = torch.min(torch.max(adv, clean - eps), clean + eps).clamp(0, 1)
        out.append(adv.detach())
    for p in source.parameters():
        p.requires_grad_(True)
    return torch.cat(out)


def defect_inheritance_rate(clean_pred: torch.Tensor, adv_pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of clean-correct samples that the attack turns wrong (NaN when none is clean-correct)."""
    correct = clean_pred == labels
    if not bool(correct.any()):
        return math.nan
    return float((adv_pred[correct] != labels[correct]).float().mean())


def _retarget(source: Network, num_classes: int) -> Network:
    model = copy.deepcopy(source)
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    return model


def standard_finetune(source: Network, data: Dataset, settings: dict[str, Any], seed: int,
                      device: torch.device | None = None, progress: Progress = quiet) -> Network:
    """A new output layer, then every weight fine-tuned."""
    seed_everything(seed)
    model = _retarget(source, 10)
    fit(model, data.train, data.val, settings["epochs"], seed, lr=settings["lr"], device=device,
        progress=progress, label="standard fine-tuning")
    return model


def seam_finetune(source: Network, data: Dataset, thresholds: list[float], settings: dict[str, Any], seed: int,
                  device: torch.device | None = None, progress: Progress = quiet) -> dict[float, tuple[Network, Any]]:
    """SeaM's three steps, per prune threshold: train the new output layer; learn masks until the pruned
    share reaches the threshold; zero the masked weights and fine-tune everything.

    Step 2 runs once for all thresholds (:func:`prune_to_thresholds`). Returns, per threshold,
    the fine-tuned model and the step-2 result (retention, stopping epoch, whether it was reached).
    """
    seed_everything(seed)
    model = _retarget(source, 10)
    fit(model, data.train, data.val, settings["head_epochs"], seed, lr=settings["lr_head"],
        params=list(model.classifier.parameters()), device=device, progress=progress, label="SeaM step 1 (head)")
    pruned = prune_to_thresholds(model, data.train, data.val, thresholds, settings["seam_epochs"], seed,
                                 alpha=settings["alpha"], lr_mask=settings["lr_mask"], lr_head=settings["lr_output"],
                                 batch_size=settings["mask_batch_size"], device=device, progress=progress,
                                 label="SeaM step 2 (masks)")
    out = {}
    for threshold, result in pruned.items():
        tuned = result.model.export()[0]  # the masked network with pruned weights set to zero
        fit(tuned, data.train, data.val, settings["epochs"], seed, lr=settings["lr"], device=device,
            progress=progress, label=f"SeaM step 3 (fine-tune, threshold {threshold})")
        out[threshold] = (tuned, result)
    return out


def scratch(arch_spec: dict[str, Any], data: Dataset, settings: dict[str, Any], seed: int,
            device: torch.device | None = None, progress: Progress = quiet) -> Network:
    seed_everything(seed)
    model = build(arch_spec["arch"], arch_spec["width"], arch_spec["blocks"], 10)
    fit(model, data.train, data.val, settings["scratch_epochs"], seed, lr=settings["lr_scratch"], device=device,
        progress=progress, label="from scratch")
    return model


def _score(model: Network, clean: Split, adv: torch.Tensor, device: torch.device | None) -> dict[str, float]:
    clean_pred = logits(model, clean, device).argmax(1)
    adv_pred = logits(model, Split(adv, clean.y), device).argmax(1)
    return {"accuracy": float((clean_pred == clean.y).float().mean()),
            "dir": defect_inheritance_rate(clean_pred, adv_pred, clean.y)}


def inherit_experiment(source: Network, spec: dict[str, Any], target: Dataset, settings: dict[str, Any], seed: int,
                       device: torch.device | None = None, progress: Progress = quiet) -> list[dict[str, Any]]:
    """Every fine-tuning method's clean accuracy and DIR on ``target``'s test split."""
    device = device or torch.device("cpu")
    source = source.to(device).eval()
    progress("crafting adversarial examples against the source features")
    adv = pgd_features(source, target.test.x.to(device), settings["eps"], settings["step"], settings["iters"], seed)
    rows = []
    model = standard_finetune(source, target, settings, seed, device, progress)
    rows.append({"method": "standard", "threshold": None, "retention": 1.0, **_score(model, target.test, adv, device)})
    for threshold, (model, result) in seam_finetune(source, target, settings["thresholds"], settings, seed, device,
                                                    progress).items():
        rows.append({"method": "seam", "threshold": threshold, "retention": result.retention,
                     "mask_epoch": result.epoch, "threshold_reached": result.reached,
                     **_score(model, target.test, adv, device)})
    model = scratch(spec, target, settings, seed, device, progress)
    rows.append({"method": "scratch", "threshold": None, "retention": None, **_score(model, target.test, adv, device)})
    return rows
