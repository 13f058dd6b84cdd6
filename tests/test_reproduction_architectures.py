"""Localization on real architectures: ResNet-, FPN- and transformer-style models in plain torch,
each ported with one injected defect; the culprit must be where the port introduces it."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analysis.reproduction.localize import capture, localize_models


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: one ReLU module called twice, ``out += identity``."""

    def __init__(self, c_in, c_out, stride=1, eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=eps)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out, eps=eps))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(8, 8, eps=eps), BasicBlock(8, 8, eps=eps))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, eps=eps), BasicBlock(16, 16, eps=eps))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FPN(nn.Module):
    """A two-level feature pyramid with a dict output; ``same_padding`` is TensorFlow's SAME for
    the stride-2 convolution (pad right/bottom only), ``swap`` concatenates in the other order."""

    def __init__(self, same_padding=False, swap=False):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.down = nn.Conv2d(8, 8, 3, 2, 0 if same_padding else 1)
        self.lateral = nn.Conv2d(8, 8, 1)
        self.fuse = nn.Conv2d(16, 8, 3, 1, 1)
        self.same_padding, self.swap = same_padding, swap

    def forward(self, x):
        c1 = F.relu(self.stem(x))
        c2 = F.relu(self.down(F.pad(c1, (0, 1, 0, 1)) if self.same_padding else c1))
        up = F.interpolate(c2, scale_factor=2.0, mode="nearest")
        lat = self.lateral(c1)
        p1 = self.fuse(torch.cat([lat, up] if self.swap else [up, lat], dim=1))
        return {"p1": p1, "p2": c2}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim, heads, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding, two transformer blocks, a (class token, tokens) tuple output."""

    def __init__(self, eps=1e-6, dim=16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(Block(dim, 2, eps), Block(dim, 2, eps))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens))
        return tokens[:, 0], tokens[:, 1:]


def _port(reference, candidate):
    candidate.load_state_dict(reference.state_dict())
    return reference.eval(), candidate.eval()


def _resnet_pair(**cand_kwargs):
    torch.manual_seed(0)
    ref = ResNet()
    for m in ref.modules():  # non-trivial running statistics, as a trained model has
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.005, 0.02)
    return _port(ref, ResNet(**cand_kwargs))


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_resnet_reused_relu_and_inplace_add_are_call_sites(method):
    ref, _ = _resnet_pair()
    rec = capture(ref, torch.randn(2, 3, 16, 16), method=method)
    assert rec.method == method
    names = list(rec)
    assert "layer1.0.relu" in names and "layer1.0.relu#2" in names  # one ReLU module, two calls
    add = next(n for n in names if n.startswith("layer1.0.add"))
    assert names.index("layer1.0.bn2") < names.index(add) < names.index("layer1.0.relu#2")
    assert rec[add].module == "layer1.0" and rec[add].kind == "function"
    assert any(n.startswith("flatten") for n in names) and any(n.startswith("adaptive_avg_pool2d") for n in names)
    # the in-place ReLU and `out += identity` did not rewrite what bn2 returned
    assert (rec["layer1.0.bn2"].output < 0).any()
    x = rec["layer1.0.relu#2"].inputs
    assert add in x


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_resnet_flipped_kernel_is_blamed_on_its_conv(method):
    ref, cand = _resnet_pair()
    with torch.no_grad():
        cand.layer1[1].conv2.weight.copy_(cand.layer1[1].conv2.weight.flip(-1, -2))  # a TF/Caffe kernel port
    found = localize_models(ref, cand, torch.randn(2, 3, 16, 16), method=method)
    assert found.culprit == "layer1.1.conv2" and found.culprit_module == "layer1.1.conv2"
    rows = {r["layer"]: r for r in found.table()}
    assert not rows["layer1.1.relu"]["diverges"] and rows["layer1.1.bn2"]["diverges"]
    assert not found.unmatched_reference and not found.unmatched_candidate


def test_resnet_batchnorm_epsilon_is_blamed_on_the_first_bn():
    ref, cand = _resnet_pair(eps=1e-3)  # Keras' BatchNormalization default
    found = localize_models(ref, cand, torch.randn(2, 3, 16, 16))
    assert found.culprit == "bn1"


def _fpn_pair(**cand_kwargs):
    torch.manual_seed(1)
    return _port(FPN(), FPN(**cand_kwargs))


def test_fpn_same_padding_port_is_blamed_on_the_strided_conv():
    ref, cand = _fpn_pair(same_padding=True)
    found = localize_models(ref, cand, torch.randn(1, 3, 16, 16))
    assert found.culprit == "down" and found.culprit_module == "down"
    assert found.unmatched_candidate == ["pad"]  # the port's extra operation, reported, not guessed


def test_fpn_swapped_channel_order_is_blamed_on_the_concatenation():
    ref, cand = _fpn_pair(swap=True)
    found = localize_models(ref, cand, torch.randn(1, 3, 16, 16))
    assert found.culprit == "cat" and found.culprit_module == ""  # the top-level forward's torch.cat
    rows = {r["layer"]: r for r in found.table()}
    assert not rows["interpolate"]["diverges"] and rows["fuse"]["diverges"]


def _vit_pair(**cand_kwargs):
    torch.manual_seed(2)
    return _port(ViT(), ViT(**cand_kwargs))


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_transformer_transposed_kernel_is_blamed_on_its_linear(method):
    ref, cand = _vit_pair()
    with torch.no_grad():  # a TF Dense kernel (in, out) copied without transposing
        cand.blocks[1].attn.proj.weight.copy_(cand.blocks[1].attn.proj.weight.T.clone())
    found = localize_models(ref, cand, torch.randn(2, 3, 16, 16), method=method)
    assert found.culprit == "blocks.1.attn.proj"
    assert sum(d.diverges for d in found.layers if d.name.startswith("blocks.0")) == 0


def test_transformer_layernorm_epsilon_is_blamed_on_the_first_norm():
    ref, cand = _vit_pair(eps=1e-3)  # Keras' LayerNormalization default vs 1e-6
    with torch.no_grad():
        for m in list(ref.modules()) + list(cand.modules()):
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(0.1)  # small activations make ε matter, as in a trained model's early layers
    found = localize_models(ref, cand, torch.randn(2, 3, 16, 16))
    assert found.culprit == "blocks.0.norm1"


def test_tuple_and_dict_outputs_and_untraceable_models_fall_back_to_hooks():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            y = self.a(x)
            if y.sum() > -1e9:  # data-dependent control flow: fx cannot trace it
                y = torch.relu(y)
            top = torch.max(y, dim=1)  # a (values, indices) tuple
            return {"out": self.b(y), "aux": (top.values, y * 2)}

    torch.manual_seed(3)
    ref = Gated()
    cand = Gated()
    cand.load_state_dict(ref.state_dict())
    with torch.no_grad():
        cand.a.bias[0] += 1.0
    rec = capture(ref, torch.randn(3, 4))
    assert rec.method == "hooks" and "fx tracing failed" in rec.fallback_reason
    assert list(rec)[:4] == ["a", "sum", "gt", "relu"]
    assert isinstance(rec["max"].output, list) and len(rec["max"].output) == 2
    found = localize_models(ref, cand, torch.randn(3, 4))
    assert found.culprit == "a"


def test_a_leaf_called_with_keywords_knows_its_inputs():
    class Scale(nn.Module):
        def forward(self, *, x):
            return x * 2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.scale = nn.Linear(3, 3), Scale()

        def forward(self, x):
            return self.scale(x=self.a(x))

    torch.manual_seed(4)
    ref, cand = Net(), Net()
    cand.load_state_dict(ref.state_dict())
    with torch.no_grad():
        cand.a.weight[0, 0] += 1.0
    found = localize_models(ref, cand, torch.randn(2, 3), method="hooks")
    rows = {r["layer"]: r for r in found.table()}
    assert found.culprit == "a" and rows["scale"]["delta_in"] == rows["a"]["delta"] > 0
