"""Defect inheritance: DIR on known answers, and the feature-space PGD attack."""

from __future__ import annotations

import math

import torch

from analysis.reuse.inherit import defect_inheritance_rate, pgd_features
from tests.reuse_helpers import digits, trained


def test_dir_counts_clean_correct_samples_turned_wrong() -> None:
    labels = torch.tensor([0, 1, 2, 3, 4])
    clean = torch.tensor([0, 1, 2, 0, 4])   # 4 clean-correct (index 3 is wrong already)
    adv = torch.tensor([0, 2, 2, 3, 1])     # of those, 1 and 4 flip; index 3's change does not count
    assert defect_inheritance_rate(clean, adv, labels) == 0.5
    assert defect_inheritance_rate(clean, clean, labels) == 0.0
    assert math.isnan(defect_inheritance_rate(torch.tensor([1]), torch.tensor([1]), torch.tensor([0])))


def test_pgd_stays_in_the_ball_and_drives_feature_zero_up() -> None:
    model, x = trained(), digits().test.x[:32]
    with torch.no_grad():
        k = int(model.features(x).mean(0).argmax())
    adv = pgd_features(model, x, eps=0.1, step=0.02, iters=8, seed=0)
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        assert float(model.features(adv)[:, k].mean()) > 1.2 * float(model.features(x)[:, k].mean())
    assert all(p.requires_grad for p in model.parameters())  # the attack leaves the model as it was
    none = pgd_features(model, x, eps=0.0, step=0.02, iters=2, seed=0)
    assert torch.equal(none, x)
