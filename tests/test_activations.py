"""fairlib.activations: presets on real torchvision architectures, downsampling, storage."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from fairlib.activations import (
    ActivationExtractor,
    ActivationStore,
    capture_activations,
    downsample,
    layer_preset,
    preset_for,
    resolve_layers,
    spatial_mean,
)


def test_downsample_subsample_hand_example():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    # k = ceil(5 / 2) = 3, starting at k // 2 = 1: rows/columns 1 and 4 (the authors' grid)
    out = downsample(x, max_size=2, mode="subsample")
    assert out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == [6.0, 9.0, 21.0, 24.0]


def test_downsample_avgpool_hand_example():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = downsample(x, max_size=2, mode="avgpool")
    # 2x2 blocks: mean(0,1,4,5)=2.5, mean(2,3,6,7)=4.5, mean(8,9,12,13)=10.5, 12.5
    assert out.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    # 5x5 to at most 2x2: k = 3, one 3x3 block (no padding), the last two rows/columns dropped
    assert downsample(torch.arange(25.0).view(1, 1, 5, 5), 2, "avgpool").flatten().tolist() == [6.0]


@pytest.mark.parametrize("h,w,expected", [(224, 224, (8, 8)), (56, 56, (8, 8)), (28, 28, (7, 7)),
                                          (17, 17, (6, 6)), (7, 7, (7, 7)), (147, 147, (8, 8)), (7, 9, (7, 4))])
def test_downsample_subsample_shapes(h, w, expected):
    assert downsample(torch.zeros(2, 3, h, w), 8, "subsample").shape[-2:] == expected


@pytest.mark.parametrize("h,expected", [(56, 8), (28, 7), (17, 5), (35, 7), (8, 8), (5, 5)])
def test_downsample_avgpool_shapes_as_keras_pooling(h, expected):
    assert downsample(torch.zeros(2, 3, h, h), 8, "avgpool").shape[-2:] == (expected, expected)


def test_downsample_avgpool_shapes_and_flat_passthrough():
    assert downsample(torch.zeros(2, 3, 17, 5), 8, "avgpool").shape == (2, 3, 5, 5)
    small = torch.randn(2, 3, 8, 6)
    assert downsample(small, 8, "avgpool") is small and downsample(small, 8, "subsample") is small
    flat = torch.randn(4, 10)
    assert downsample(flat, 8, "avgpool") is flat
    with pytest.raises(ValueError, match="mode"):
        downsample(flat, 8, "max")
    with pytest.raises(ValueError, match="max_size"):
        downsample(flat, 0)


def test_spatial_mean():
    x = torch.arange(8.0).view(1, 2, 2, 2)
    assert spatial_mean(x).tolist() == [[1.5, 5.5]]


def _channels(model, layers, size):
    with ActivationExtractor(model, layers, device="cpu") as ex:
        acts = ex(torch.zeros(1, 3, size, size))
    return {k: v.shape[1] for k, v in acts.items()}


def test_vgg16_preset_channels():
    model = torchvision.models.vgg16(weights=None)
    assert preset_for(model) == "vgg16"
    ch = _channels(model, None, 64)
    assert [ch[f"block{i}_pool"] for i in range(1, 6)] == [64, 128, 256, 512, 512]
    assert ch["fc1"] == 4096 and ch["predictions"] == 1000 and ch["input"] == 3
    assert len(ch) == 8  # layers 0..7 as in the paper


def test_resnet50_preset_channels():
    model = torchvision.models.resnet50(weights=None)
    assert preset_for(model) == "resnet50"
    preset = layer_preset("resnet50")
    assert len(preset) == 20 and list(preset)[15] == "conv5_block1_out"  # the paper's layer 15
    ch = _channels(model, None, 64)
    blocks = [v for k, v in ch.items() if k.endswith("_out")]
    assert blocks == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert ch["pool1_pool"] == 64 and ch["avg_pool"] == 2048


def test_inception_v3_preset_channels():
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    assert preset_for(model) == "inception_v3"
    assert list(layer_preset("inception_v3"))[9] == "mixed7"  # the paper's layer 9
    ch = _channels(model, None, 75)
    assert ch["max_pooling2d_1"] == 192
    assert [ch[f"mixed{i}"] for i in range(11)] == [256, 288, 288, 768, 768, 768, 768, 768,
                                                   1280, 2048, 2048]
    assert ch["avg_pool"] == 2048 and ch["predictions"] == 1000


def test_unknown_layer_lists_names():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match=r"unknown layer 'layer9'.*'input'.*layer1\.0"):
        resolve_layers(model, ["layer9"])
    vgg = torchvision.models.vgg16(weights=None)
    with pytest.raises(ValueError, match=r"block4_pool"):
        resolve_layers(vgg, ["block6_pool"])


def test_hooks_match_manual_forward_and_are_removed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(5, 3, 6, 6)
    model(x)
    with ActivationExtractor(model, ["input", "0", "3"], device="cpu") as ex:
        acts = ex(x)
    conv = model[0](x)
    # the conv output is captured before the in-place ReLU modifies it
    assert torch.allclose(acts["0"], conv) and (acts["0"] < 0).any()
    assert torch.allclose(acts["3"], model(x)) and torch.equal(acts["input"], x)
    assert not model[0]._forward_hooks


def test_capture_in_memory_and_memmap_agree(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    x = torch.rand(37, 3, 20, 20)
    layers = {"input": "input", "c1": "0", "c2": "2"}
    mem = capture_activations(model, x, layers, reductions=("subsample", "avgpool", "mean"),
                              batch_size=10, device="cpu")
    # writes the memory-mapped store reopened below
    capture_activations(model, x, layers, reductions=("subsample", "avgpool", "mean"),
                        batch_size=16, device="cpu", directory=tmp_path / "store")
    assert mem.get("c1", "subsample").shape == (37, 8, 7, 7)
    assert mem.get("c2", "avgpool").shape == (37, 4, 6, 6)
    with torch.no_grad():
        ref = model(x)
    np.testing.assert_allclose(mem.get("c2", "mean"), ref.mean(dim=(2, 3)).numpy(), atol=1e-5)
    reopened = ActivationStore.open(tmp_path / "store")
    for layer in layers:
        for r in ("subsample", "avgpool", "mean"):
            arr = reopened.get(layer, r)
            assert arr.dtype == np.float16 and isinstance(arr, np.memmap)
            np.testing.assert_allclose(arr, mem.get(layer, r), atol=2e-3, rtol=2e-3)
    assert not list((tmp_path / "store").glob("*.tmp"))


def test_capture_from_dataset_of_tuples():
    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.full((3, 4, 4), float(i)), {"g": i % 2}

    model = nn.Sequential(nn.Flatten())
    store = capture_activations(model, DS(), {"input": "input"}, reductions=("mean",), batch_size=4,
                                device="cpu")
    assert store["input"][:, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_failed_capture_leaves_no_temporary_file(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 6:
                raise OSError("unreadable image (simulated)")
            return torch.zeros(3, 8, 8)

    with pytest.raises(OSError, match="simulated"):
        capture_activations(model, Broken(), {"c": "0"}, batch_size=2, device="cpu", directory=tmp_path / "s")
    assert not list((tmp_path / "s").glob("*.tmp")) and not list((tmp_path / "s").glob("*.npy"))
