"""Decomposition into per-class modules: channeling, voting, Jaccard, MwT metrics, a real decomposition."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from analysis.reuse.decompose import channel, compose, decompose, jaccard, module_scores, mwt_metrics, vote
from analysis.reuse.training import logits
from tests.reuse_helpers import digits, trained

SETTINGS = {"eps": 1.0, "share": 0.5, "confidence": 0.9, "negatives": 5, "tangle_share": 0.5, "depth": 2}


def test_vote_takes_the_single_yes_else_the_most_confident() -> None:
    scores = torch.tensor([[0.9, 0.2, 0.7, 0.1],   # module of class 5
                           [0.1, 0.4, 0.8, 0.3],   # module of class 7
                           [0.3, 0.45, 0.2, 0.2]])  # module of class 2
    # input 0: only class 5 says yes; 1: nobody -> most confident (class 2, 0.45);
    # 2: two say yes -> the more confident (class 7); 3: nobody -> class 7 (0.3)
    assert vote(scores, [5, 7, 2]).tolist() == [5, 2, 7, 7]


def test_channeling_keeps_the_class_node_and_averages_the_others() -> None:
    layer = nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 6.0]]))
        layer.bias.copy_(torch.tensor([1.0, 2.0, 4.0]))
    weight, bias = channel(layer, 1)
    assert weight.tolist() == [[0.0, 2.0], [2.5, 3.0]] and bias.tolist() == [2.0, 2.5]


def test_jaccard() -> None:
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0


def test_decomposed_modules_differ_and_compose_close_to_the_original() -> None:
    model, data = trained(), digits()
    modules = decompose(model, data.train, SETTINGS, seed=0)
    assert [m.cls for m in modules] == list(range(10))
    kept = torch.stack([m.kept().float().mean() for m in modules])
    assert bool((kept < 1).all()) and bool((kept > 0).all())  # concerns removed units, tangling kept some
    # the modules are class-specific: they keep different units (not all the same set) ...
    overlaps = [jaccard(modules[a].kept(), modules[b].kept()) for a in range(10) for b in range(a + 1, 10)]
    assert max(overlaps) < 1.0 and sum(overlaps) / len(overlaps) < 0.95
    # ... only in the last `depth` unit layers; the earlier ones stay whole
    assert all(bool(m.masks[0].all()) for m in modules)
    assert any(not bool(m.masks[-2].all()) for m in modules)  # some convolution channel goes: KRR < 1
    original = float((logits(model, data.test).argmax(1) == data.test.y).float().mean())
    composed = float((compose([(model, m) for m in modules], data.test.x) == data.test.y).float().mean())
    assert original > 0.6  # the tiny model learnt the digits ...
    assert composed > 0.5 and composed > original - 0.25  # ... and its modules, voting, recover most of it
    # a module says yes mostly on its own class
    own = module_scores(model, modules[0], data.test.x)
    assert float(own[data.test.y == 0].mean()) > float(own[data.test.y != 0].mean()) + 0.2
    # two-class reuse: modules 3 and 8 on the 3s and 8s
    pair = data.test.classes((3, 8), relabel=False)
    pred = compose([(model, modules[3]), (model, modules[8])], pair.x)
    assert set(pred.unique().tolist()) <= {3, 8} and float((pred == pair.y).float().mean()) > 0.7
    metrics = mwt_metrics(model, modules, data.test, per_class=5, seed=0)
    assert 0 < metrics["krr"] < 1 and 0 <= metrics["coupling"] <= 1 and 0 <= metrics["cohesion"] <= 1
    assert metrics["cohesion"] > metrics["coupling"]  # inputs of one class share more kernels
