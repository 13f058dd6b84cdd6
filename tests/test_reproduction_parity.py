"""Preprocessing parity diagnoses and PyTorch-vs-ONNX Runtime export parity."""

import numpy as np
import pytest
import torch
from torch import nn

from analysis.reproduction.parity import export_parity, preprocessing_parity


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(0).random((2, 3, 8, 8))


def test_identical_and_channel_swap(pixels):
    assert preprocessing_parity(pixels, pixels).diagnosis == "identical"
    assert preprocessing_parity(pixels[:, ::-1], pixels).diagnosis == "channel order reversed (RGB vs BGR)"


def test_mean_std_difference_is_affine(pixels):
    other = (pixels - np.array([0.4, 0.5, 0.6])[None, :, None, None]) / 0.25
    result = preprocessing_parity(other, pixels)
    assert result.diagnosis.startswith("per-channel affine")
    assert result.channel_affine[0] == pytest.approx((4.0, -1.6))


def test_spatial_and_shape_differences(pixels):
    shifted = np.roll(pixels, 1, axis=3)
    assert preprocessing_parity(shifted, pixels).diagnosis.startswith("spatial")
    assert "shape" in preprocessing_parity(pixels[..., :4], pixels).diagnosis


def test_export_parity_records_settings_and_versions():
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(1, 3, 10, 10)
    parity = export_parity(model, (x,), opset=17)
    assert parity.settings["opset"] == 17 and parity.settings["exporter"] == "torchscript"
    assert set(parity.versions) == {"torch", "onnx", "onnxruntime"}
    assert parity.outputs[0]["max_abs"] < 1e-5
