"""The port for the `reeng compare` example: the reference's weights, converted as a
TensorFlow/Caffe port often does, with one kernel left spatially flipped (blocks.1.conv2)."""

import torch

from reference import build as build_reference


def build():
    model = build_reference()
    with torch.no_grad():
        model.blocks[1].conv2.weight.copy_(model.blocks[1].conv2.weight.flip(-1, -2))
    return model


def build_fixed():
    return build_reference()
