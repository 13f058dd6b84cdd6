"""Weight porting: key rules, shape checks and a report of everything not loaded."""

import pytest
import torch
from torch import nn

from analysis.reproduction.porting import load_ported, map_keys, port_state_dict
from reeng.errors import ReengError


def test_map_keys_applies_rules_in_order():
    sd = {"module.features.gamma": torch.ones(2), "module.features.beta": torch.zeros(2)}
    out = map_keys(sd, [(r"^module\.", ""), (r"\.gamma$", ".weight"), (r"\.beta$", ".bias")])
    assert sorted(out) == ["features.bias", "features.weight"]


def test_map_keys_refuses_collisions():
    with pytest.raises(ReengError, match="both map to"):
        map_keys({"a.x": torch.ones(1), "b.x": torch.ones(1)}, [(r"^[ab]\.", "")])


def test_report_accounts_for_every_key():
    target = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)).state_dict()
    source = {"0.weight": torch.ones(4, 4), "0.bias": torch.ones(4), "1.weight": torch.ones(3, 4),
              "extra.weight": torch.ones(1)}
    fitted, report = port_state_dict(source, target, exclude=[r"^1\.bias$"])
    assert sorted(fitted) == ["0.bias", "0.weight"]
    assert report.mismatched == {"1.weight": ((3, 4), (2, 4))}
    assert report.unexpected == ["extra.weight"]
    assert report.excluded == ["1.bias"]
    assert report.missing == [] and not report.complete
    assert "1 shape-mismatched" in report.summary()


def test_load_ported_fails_loudly_unless_allowed():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    source = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("0.")}
    with pytest.raises(ReengError, match="incomplete"):
        load_ported(model, source)
    report = load_ported(model, {k: v + 1 for k, v in source.items()}, allow=[r"^1\."])
    assert report.missing == ["1.weight", "1.bias"]
    assert torch.equal(model[0].bias.detach(), source["0.bias"] + 1)
