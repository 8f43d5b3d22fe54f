"""fairlib.models: depths, widths, parameter counts and forward shapes."""

from __future__ import annotations

import numpy as np
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
    with pytest.raises(ValueError, match=r"name: unknown model 'vgg'; available: .*cifar_resnet.*torchvision.vgg16"):
        build_model("vgg")
    with pytest.raises(ValueError, match="width"):
        CifarResNet(depth=8, width=0)


def test_build_model_rejects_unknown_options_and_lists_the_accepted():
    with pytest.raises(ValueError, match=r"options: unknown option\(s\) \['widht'\] for 'cifar_resnet'.*'width'"):
        build_model("cifar_resnet", depth=8, widht=4)
    with pytest.raises(ValueError, match="weights: 'small_cnn' has no pretrained weights"):
        build_model("small_cnn", n_outputs=2, weights="IMAGENET1K_V1")


def test_build_model_seed_repeats_and_leaves_the_rng_alone():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = build_model("small_cnn", n_outputs=3, seed=7)
    b = build_model("small_cnn", n_outputs=3, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.preprocess is None and a(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_torchvision_backbone_has_its_preprocessing():
    model = build_model("torchvision.resnet18", num_classes=4, seed=0)
    assert model.input_size == 224 and model.fc.out_features == 4
    x = torch.full((1, 3, 32, 32), 0.5)
    pre = model.preprocess(x)
    assert pre.shape == (1, 3, 224, 224)
    # ImageNet normalisation of a 0.5 grey image: (0.5 - mean) / std per channel
    expected = [(0.5 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    assert pre[0, :, 0, 0].tolist() == pytest.approx(expected, abs=1e-5)


def test_spatial_resnet_through_build_model():
    model = build_model("spatial_resnet", num_outputs=5, image_size=24, width=4, hidden=7)
    assert model(torch.rand(2, 3, 24, 24)).shape == (2, 5) and model.input_size == 24


# --------------------------------------------------------------------------- pretrained backbones
@pytest.mark.parametrize("name", ["resnet50_in1k", "bit50_in21k", "clip_rn50", "moco_v2_rn50"])
def test_build_backbone_gives_features_head_and_its_own_preprocessing(name, monkeypatch):
    # random weights at the rehearsal's 64 px: nothing is downloaded
    from fairlib.models import BACKBONES, Backbone, build_backbone

    monkeypatch.setenv("FAIRLIB_WEIGHTS", "random")
    monkeypatch.setenv("FAIRLIB_SCALE", "rehearsal")
    monkeypatch.setenv("FAIRLIB_PROFILE", "full")
    spec = BACKBONES[name]
    model = build_backbone(name, n_outputs=5, seed=0)
    assert isinstance(model, Backbone) and model.input_size == 64 and model.pretraining == spec.pretraining
    x = model.preprocess(torch.zeros(2, 3, 32, 32))
    assert x.shape == (2, 3, 64, 64)
    # a black image becomes -mean / std in each channel: the weights' own normalisation
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-m / s for m, s in zip(spec.mean, spec.std)], rtol=1e-5)
    with torch.no_grad():
        assert model.body(x).flatten(1).shape == (2, spec.feature_dim)
        assert model(x).shape == (2, 5)
    a, b = build_backbone(name, n_outputs=5, seed=0), build_backbone(name, n_outputs=5, seed=0)
    assert torch.equal(a.fc.weight, b.fc.weight), "seeded"


def test_build_backbone_names_the_fix():
    from fairlib.models import build_backbone

    with pytest.raises(ValueError, match=r"unknown backbone 'vit'; available: \['resnet50_in1k', 'bit50_in21k'"):
        build_backbone("vit")


def test_build_backbone_without_timm_names_the_extra(monkeypatch):
    import sys

    from fairlib.models import build_backbone

    monkeypatch.setenv("FAIRLIB_WEIGHTS", "random")
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fairlib\[transfer\]"'):
        build_backbone("bit50_in21k")


def test_moco_checkpoint_keys_map_onto_torchvision_resnet50():
    # MoCo's checkpoints keep the query encoder under module.encoder_q. (and a key encoder and an
    # MLP head that the backbone drops); the remapped dict loads strictly into ResNet-50 without fc
    import torchvision

    from fairlib.models import _moco_state_dict

    net = torchvision.models.resnet50(weights=None)
    net.fc = torch.nn.Identity()
    reference = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    checkpoint = {"state_dict": {**{f"module.encoder_q.{k}": v for k, v in reference.items()},
                                 "module.encoder_q.fc.0.weight": torch.zeros(2048, 2048),
                                 "module.encoder_k.conv1.weight": torch.zeros(64, 3, 7, 7), "queue": torch.zeros(1)}}
    state = _moco_state_dict(checkpoint)
    assert set(state) == set(reference)
    net.load_state_dict(state)  # strict
    assert torch.equal(net.conv1.weight, reference["conv1.weight"])
    with pytest.raises(ValueError, match="no key starts with 'module.encoder_q.'"):
        _moco_state_dict({"state_dict": {"conv1.weight": torch.zeros(1)}})


def test_replace_head_handles_a_1x1_convolution_head_like_a_linear_one():
    # timm's BiT ends in head.fc = Conv2d(C, K, 1) on pooled features: the same map as a Linear
    from fairlib.transfer import replace_head

    conv_model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(8, 4, 1), torch.nn.Flatten(1))
    new = replace_head(conv_model, "1", 3)
    assert isinstance(new[1], torch.nn.Conv2d) and new[1].out_channels == 3 and new[1].in_channels == 8
    assert isinstance(conv_model[1], torch.nn.Conv2d) and conv_model[1].out_channels == 4, "the original is untouched"
    linear = torch.nn.Linear(8, 3)
    with torch.no_grad():
        linear.weight.copy_(new[1].weight.view(3, 8))
        linear.bias.copy_(new[1].bias)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(new(x), linear(x.mean(dim=(2, 3))))
    with pytest.raises(ValueError, match=r"linear layers: \['1'\]"):
        replace_head(conv_model, "0", 3)
