"""SeaM: the straight-through masks, re-engineering mechanics, baselines, targets, MACs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analysis.reuse.seam import (Binarize, MaskedLayer, Reengineered, Target, baseline_accuracy, nonzero_mac_ratio,
                                 parse_targets, prune_to_thresholds, reengineer, target_split)
from analysis.reuse.training import accuracy
from reeng.errors import ReengError
from tests.reuse_helpers import digits, trained


def test_binarize_forward_and_clipped_straight_through_gradient() -> None:
    scores = torch.tensor([-0.5, 0.0, 0.3, 2.0], requires_grad=True)
    out = Binarize.apply(scores)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    out.backward(torch.tensor([3.0, -0.2, -7.0, 0.5]))
    assert scores.grad.tolist() == pytest.approx([1.0, -0.2, -1.0, 0.5])  # hardtanh of the incoming gradient


def test_masked_linear_gradient_matches_the_chain_rule() -> None:
    torch.manual_seed(0)
    layer = MaskedLayer(nn.Linear(3, 2))
    with torch.no_grad():
        layer.weight_mask[0, 1] = -1.0  # one weight switched off
    x = torch.randn(4, 3)
    y = layer(x)
    w = layer.inner.weight * (layer.weight_mask > 0)
    assert torch.allclose(y, x @ w.T + layer.inner.bias)
    y.pow(2).sum().backward()
    grad_w = (2 * y).T @ x  # dL/d(W_eff)
    expected = F.hardtanh(grad_w * layer.inner.weight)  # through W_eff = W * B(S), then STE
    assert torch.allclose(layer.weight_mask.grad, expected, atol=1e-5)
    assert layer.inner.weight.grad is None  # the source weights are frozen


def test_reengineering_moves_masks_lowers_retention_and_keeps_source_weights() -> None:
    source, data = trained(), digits()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    target = Target("{1,4,7}", (1, 4, 7))
    train, _ = target_split(data.train, target, 0)
    val, _ = target_split(data.val, target, 0)
    result = reengineer(source, train, val, target.k, 0.0, epochs=4, seed=0, lr_mask=0.3, lr_head=0.05)
    masks = torch.cat([m.detach().flatten() for m in result.model.mask_parameters()])
    assert (masks != 1.0).float().mean() > 0.5  # the masks moved
    assert 0.0 < result.retention < 0.95  # and some weights were switched off
    assert result.retention == pytest.approx(float(result.model.retention().detach()))
    for key, value in source.state_dict().items():  # the source model is untouched ...
        assert torch.equal(value, before[key]), key
    inner = dict(result.model.source.named_parameters())  # ... and so are its copied weights
    assert torch.equal(inner["classifier.inner.weight"], before["classifier.weight"])
    bn = [m for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert torch.equal(bn.running_mean, before["body.1.running_mean"])  # BatchNorm frozen in eval mode
    # the head learnt something: well above the 1/3 chance level
    test, _ = target_split(data.test, target, 0)
    assert accuracy(result.model, test) > 0.6
    exported = result.model.export()
    assert torch.allclose(exported(test.x[:8]), result.model(test.x[:8]), atol=1e-5)


def test_prune_thresholds_stop_at_different_retention() -> None:
    source, data = trained(), digits()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    results = prune_to_thresholds(source, data.train, data.val, [0.8, 0.7], epochs=5, seed=0, alpha=2.0, lr_mask=0.1,
                                  lr_head=0.001, batch_size=32)
    low, high = results[0.7], results[0.8]
    assert low.reached and high.reached
    assert 1 - low.retention >= 0.7 and 1 - high.retention >= 0.8  # each stopped once its share was pruned ...
    assert low.epoch < high.epoch and high.retention < low.retention  # ... at a different epoch and retention
    assert [h["retention"] for h in low.history] == [h["retention"] for h in high.history][:low.epoch]  # one run
    low_masks = torch.cat([m.detach().flatten() for m in low.model.mask_parameters()]) > 0
    high_masks = torch.cat([m.detach().flatten() for m in high.model.mask_parameters()]) > 0
    assert float(low_masks.float().mean()) == pytest.approx(low.retention)
    assert bool((low_masks & ~high_masks).any())  # the higher threshold switched off more weights
    for key, value in source.state_dict().items():
        assert torch.equal(value, before[key]), key
    never = prune_to_thresholds(source, data.train, data.val, [0.99], epochs=1, seed=0, alpha=2.0, lr_mask=0.1,
                                lr_head=0.001)[0.99]
    assert not never.reached and never.epoch == 1  # an unreachable threshold keeps the last epoch


def test_nonzero_macs_count_switched_off_weights() -> None:
    model = Reengineered(trained(), 2).eval()
    x = digits().test.x[:2]
    assert nonzero_mac_ratio(model, x) == pytest.approx(1.0)
    with torch.no_grad():
        for layer in model.layers:
            if layer.weight_mask.dim() == 4:
                layer.weight_mask[:, :, :, 1] = -1.0  # one kernel column of three
            else:
                layer.weight_mask[:, ::2] = -1.0  # every other input of a linear layer
    ratio = nonzero_mac_ratio(model, x)
    assert 0.3 < ratio < 0.75


def test_baselines_score_argmax_over_all_classes_and_restricted_logits() -> None:
    target = Target("{1,2}", (1, 2))
    logits = torch.tensor([[0.0, 1.0, 0.5, 3.0],   # argmax 3 (outside the target); restricted -> 1
                           [0.0, 0.2, 0.9, 0.0]])  # argmax 2; restricted -> 2
    original = torch.tensor([1, 1])
    scores = baseline_accuracy(logits, original, target)
    assert scores == {"argmax_all": 0.0, "restricted": 0.5}
    ovr = baseline_accuracy(logits, torch.tensor([3, 2]), Target("3-vs-rest", (3,), True))
    assert ovr["argmax_all"] == ovr["restricted"] == 1.0


def test_one_vs_rest_targets_are_balanced() -> None:
    split, original = target_split(digits().train, Target("3-vs-rest", (3,), True), 0)
    assert int((split.y == 0).sum()) == int((split.y == 1).sum()) == int((original == 3).sum())
    assert set(original[split.y == 1].tolist()) <= set(range(10)) - {3}


def test_target_specs() -> None:
    names = [t.name for t in parse_targets(["default"])]
    assert names[:10] == [f"{c}-vs-rest" for c in range(10)] and names[10:] == ["{0,6,8,9}", "{1,4,7}", "{2,3,5}"]
    assert parse_targets(["2,5"])[0].classes == (2, 5)
    with pytest.raises(ReengError, match="unknown class 12"):
        parse_targets(["12-vs-rest"])
    with pytest.raises(ReengError, match="at least two classes"):
        parse_targets(["4"])
    with pytest.raises(ReengError, match="unknown class 10"):
        parse_targets(["1,10"])
