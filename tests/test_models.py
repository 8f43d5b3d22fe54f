"""fairlib.models: depths, widths, parameter counts and forward shapes."""

from __future__ import annotations

import pytest
import torch

from fairlib.models import VALID_DEPTHS, CifarResNet, SmallResNet, build_model, count_parameters


def test_depths_and_widths_grow_parameters():
    by_depth = [count_parameters(CifarResNet(depth=d, width=4)) for d in (8, 14, 20, 32)]
    assert by_depth == sorted(by_depth) and len(set(by_depth)) == 4
    by_width = [count_parameters(CifarResNet(depth=8, width=w)) for w in (4, 8, 16)]
    assert by_width == sorted(by_width)
    # conv weights scale with width²: doubling width roughly quadruples the count
    assert 3.5 < by_width[2] / by_width[1] < 4.1
    assert VALID_DEPTHS[0] == 8 and VALID_DEPTHS[-1] == 110


def test_resnet110_layer_count():
    model = CifarResNet(depth=110, width=16)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 110  # 109 3×3 convs plus the final linear layer
    assert 1.6e6 < count_parameters(model) < 1.8e6  # ResNet-110 has about 1.7M parameters


@pytest.mark.parametrize("depth", [7, 10, 100, 0])
def test_invalid_depth_names_valid_ones(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*8, 14, 20"):
        CifarResNet(depth=depth)


@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3)])
def test_forward_shapes(size, channels):
    x = torch.randn(5, channels, size, size)
    for model in (CifarResNet(depth=8, width=4, in_channels=channels),
                  SmallResNet(width=4, in_channels=channels),
                  SmallResNet(width=4, blocks=(1, 1), in_channels=channels)):
        assert model(x).shape == (5,)
    assert CifarResNet(depth=8, width=4, in_channels=channels, num_outputs=3)(x).shape == (5, 3)


def test_build_model():
    assert isinstance(build_model("resnet18", width=4), SmallResNet)
    assert isinstance(build_model("cifar_resnet", depth=8, width=4), CifarResNet)
    with pytest.raises(ValueError, match="arch"):
        build_model("vgg")
    with pytest.raises(ValueError, match="width"):
        CifarResNet(depth=8, width=0)
