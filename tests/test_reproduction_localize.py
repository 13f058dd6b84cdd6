"""Layer localization names the module where divergence is introduced."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from analysis.reproduction.localize import capture, localize, localize_models
from reeng.errors import ReengError


def _net() -> nn.Sequential:
    return nn.Sequential(OrderedDict([("a", nn.Linear(6, 6)), ("relu", nn.ReLU(inplace=True)),
                                      ("b", nn.Linear(6, 6)), ("c", nn.Linear(6, 3))]))


def _pair() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    ref = _net()
    cand = _net()
    cand.load_state_dict(ref.state_dict())
    return ref, cand, torch.randn(5, 6)


def test_identical_models_have_no_culprit():
    ref, cand, x = _pair()
    found = localize_models(ref, cand, x)
    assert found.culprit is None
    assert [d.name for d in found.layers] == ["a", "relu", "b", "c"]
    assert all(d.delta == 0 for d in found.layers)


def test_perturbed_layer_is_named_and_rise_follows_the_formula():
    ref, cand, x = _pair()
    with torch.no_grad():
        cand.b.bias += 0.5
    found = localize_models(ref, cand, x)
    assert found.culprit == "b"
    rows = {r["layer"]: r for r in found.table()}
    assert rows["b"]["delta_in"] == 0.0 and rows["b"]["delta"] == pytest.approx(0.5)
    c = rows["c"]
    assert c["rise"] == pytest.approx((c["delta"] - c["delta_in"]) / (c["delta_in"] + 1e-7))
    assert c["delta_in"] == pytest.approx(rows["b"]["delta"])


def test_inplace_activation_does_not_corrupt_capture():
    ref, _, x = _pair()
    rec = capture(ref, x)
    # "a" was recorded before ReLU(inplace) rewrote the tensor: it still has negatives
    assert (rec["a"].output < 0).any()
    assert (rec["relu"].output >= 0).all()


def test_a_partial_mapping_pairs_the_rest_by_default_and_reports_what_stays_unmatched():
    ref, cand, x = _pair()
    found = localize(capture(ref, x), capture(cand, x), mapping={"a": "a", "c": "c"})
    assert [d.name for d in found.layers] == ["a", "relu", "b", "c"] and found.unmatched_reference == []
    assert found.matched_by == "mapping, the rest by name"
    # the port's layers the mapping already paired are not paired again: "b" maps onto "a" here, and the
    # reference's own "a" finds no counterpart left
    found = localize(capture(ref, x), capture(cand, x), mapping={"b": "a", "c": "c"})
    assert {d.name: d.candidate_name for d in found.layers}["b"] == "a"
    assert "a" in found.unmatched_reference and "b" in found.unmatched_candidate


def test_a_mapping_naming_a_layer_neither_model_has_is_an_error():
    ref, cand, x = _pair()
    with pytest.raises(ReengError, match="reference layer.*does not have: nolayer"):
        localize(capture(ref, x), capture(cand, x), mapping={"nolayer": "a"})
    with pytest.raises(ReengError, match="port layer.*does not have: zz"):
        localize(capture(ref, x), capture(cand, x), mapping={"a": "zz"})


def test_shape_difference_is_infinite_divergence(tmp_path):
    torch.manual_seed(0)
    ref = nn.Sequential(OrderedDict([("a", nn.Linear(4, 4)), ("b", nn.Linear(4, 2))]))
    cand = nn.Sequential(OrderedDict([("a", nn.Linear(4, 3)), ("b", nn.Linear(3, 2))]))
    found = localize_models(ref, cand, torch.randn(2, 4))
    assert found.culprit == "a" and "shape" in found.layers[0].note
    path = found.plot(tmp_path / "loc.png")
    assert path.stat().st_size > 1000


class _AddsInPlace(nn.Module):
    """A forward that rewrites a recorded output with a functional in-place op."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y += 1
        return self.b(y)


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_functional_inplace_rewrite_keeps_the_producers_value(method):
    torch.manual_seed(0)
    model = _AddsInPlace()
    x = torch.randn(2, 3)
    rec = capture(model, x, method=method)
    assert rec.method == method
    expected = model.a(x)
    assert torch.equal(rec["a"].output, expected)  # not the value after `y += 1`
    added = [r for n, r in rec.items() if n in ("add", "add_")]
    assert len(added) == 1 and torch.allclose(added[0].output, expected + 1)
    assert list(rec)[-1] == "b"


class _PositionTable(nn.Module):
    """A ViT-style learned position table added functionally, then a pre-norm MLP block."""

    def __init__(self, reversed_table: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 16)
        self.pos = nn.Parameter(torch.randn(1, 5, 16) * 0.02)
        if reversed_table:  # the port loads the table in reverse order
            self.pos.data = self.pos.data.flip(1)
        self.norm = nn.LayerNorm(16)
        self.mlp = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x) + self.pos
        return x + self.mlp(self.norm(x))


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_a_ported_parameter_used_functionally_blames_the_call_that_uses_it(method):
    x = torch.randn(2, 5, 8)
    found = localize_models(_PositionTable(), _PositionTable(reversed_table=True), x, method=method)
    rows = {d.name: d for d in found.layers}
    assert found.culprit == "add"  # not the LayerNorm after it, whose rise is larger
    assert rows["add"].delta_in == 0 and rows["add"].introduces
    assert rows["norm"].delta_in == rows["add"].delta


class _MaskedAttention(nn.Module):
    """Causal attention whose masked scores are filled with ``fill`` (-inf in the reference)."""

    def __init__(self, fill: float = float("-inf")) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fill = fill
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        mask = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        scores = (q @ k.transpose(-2, -1)).masked_fill(mask, self.fill)
        return self.proj(scores.softmax(-1) @ v)


def test_equal_infinities_are_no_divergence_and_a_changed_mask_fill_is_blamed():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8)
    same = localize_models(_MaskedAttention(), _MaskedAttention(), x)
    assert same.culprit is None
    assert all(d.delta == 0 and not d.note for d in same.layers)  # the -inf scores of both sides agree
    port = localize_models(_MaskedAttention(), _MaskedAttention(fill=0.0), x)  # the port masks with 0
    rows = {d.name: d for d in port.layers}
    assert rows["masked_fill"].delta == float("inf") and rows["masked_fill"].diverges
    assert port.culprit == "masked_fill"  # not the softmax after it


class _ClipsInPlace(nn.Sequential):
    """Detection-style post-processing: x1 clipped to the image width in place, through a view."""

    def __init__(self, width: float = 4.0) -> None:
        torch.manual_seed(0)
        super().__init__(OrderedDict([("box", nn.Linear(8, 4)), ("head", nn.Linear(4, 2))]))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes = self.box(x) * 3
        boxes[:, 0].clamp_(0, self.width)
        return self.head(boxes)


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_an_inplace_write_through_a_view_keeps_the_viewed_records_value(method):
    torch.manual_seed(3)
    x = torch.randn(6, 8) * 2
    model = _ClipsInPlace()
    rec = capture(model, x, method=method)
    assert torch.equal(rec["mul"].output, model.box(x) * 3)  # before the clamp wrote into it
    assert not rec["mul"].note
    found = localize_models(_ClipsInPlace(), _ClipsInPlace(width=2.0), x, method=method)  # the port clips at 2
    rows = {d.name: d for d in found.layers}
    assert rows["mul"].delta == 0 and not rows["mul"].diverges
    assert found.culprit == "clamp_"


class _DictHead(nn.Module):
    """A leaf module returning a dict built in ``order``."""

    def __init__(self, order: tuple[str, ...]) -> None:
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"boxes": x[:, :4] * 2, "scores": x[:, :4].sigmoid()}
        return {k: out[k] for k in self.order}


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_a_dict_output_built_in_another_order_is_no_divergence(method):
    def net(order: tuple[str, ...]) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(OrderedDict([("fc", nn.Linear(8, 8)), ("head", _DictHead(order))]))

    torch.manual_seed(1)
    found = localize_models(net(("boxes", "scores")), net(("scores", "boxes")), torch.randn(3, 8), method=method)
    assert found.culprit is None and all(d.delta == 0 for d in found.layers)
