"""fairlib.data.image_tensor: one pass into a uint8 memory map, reused, never half-written."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fairlib.data import AttributeDataset, image_tensor, load_dataset


def _file_dataset(n: int, calls: list, *, side=lambda i: 6, fail_at: int | None = None) -> AttributeDataset:
    """A dataset read image by image (like the face datasets), counting its reads."""
    def read(i: int) -> torch.Tensor:
        if fail_at is not None and i == fail_at:
            raise OSError("simulated unreadable file")
        calls.append(i)
        return torch.full((3, side(i), side(i)), i % 256, dtype=torch.uint8)

    attrs = pd.DataFrame({"label": pd.Categorical([str(i % 2) for i in range(n)], categories=["0", "1"])})
    ds = AttributeDataset(attrs, read, name="fake", split="train")
    ds.cache_key = "fake-train-test"
    return ds


def test_one_pass_then_reused(tmp_path):
    calls: list[int] = []
    ds = _file_dataset(10, calls)
    x = image_tensor(ds, directory=tmp_path, batch_size=4)
    assert x.dtype == torch.uint8 and x.shape == (10, 3, 6, 6)
    assert [int(x[i, 0, 0, 0]) for i in range(10)] == list(range(10))
    assert sorted(calls) == list(range(10)), "each image decoded exactly once"
    calls.clear()
    again = image_tensor(ds, directory=tmp_path)
    assert calls == [] and torch.equal(again, x), "a later call reads the cache, not the files"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-train-test.json", "fake-train-test.u8"]


def test_failure_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError, match="simulated"):
        image_tensor(_file_dataset(10, [], fail_at=7), directory=tmp_path, batch_size=4)
    assert list(tmp_path.iterdir()) == []


def test_images_of_different_sizes_are_refused(tmp_path):
    ds = _file_dataset(6, [], side=lambda i: 6 if i < 4 else 8)
    with pytest.raises(ValueError, match="images differ in size.*pass size= to load_dataset"):
        image_tensor(ds, directory=tmp_path, batch_size=4)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_datasets_are_not_copied(tmp_path):
    ds = load_dataset("synthfaces", "train", n=8, size=16)
    assert image_tensor(ds, directory=tmp_path) is ds.images
    assert list(tmp_path.iterdir()) == []


def test_cache_key_names_dataset_split_and_options():
    a = load_dataset("synthfaces", "train", n=8, size=16)
    b = load_dataset("synthfaces", "train", n=8, size=32)
    c = load_dataset("synthfaces", "val", n=8, size=16)
    assert a.cache_key.startswith("synthfaces-train-") and len({a.cache_key, b.cache_key, c.cache_key}) == 3
    assert load_dataset("synthfaces", "train", n=8, size=16, transform=lambda t: t).cache_key == a.cache_key


def test_dataset_without_key_is_refused():
    attrs = pd.DataFrame({"label": pd.Categorical(["0"], categories=["0"])})
    ds = AttributeDataset(attrs, lambda i: torch.zeros(1, 2, 2, dtype=torch.uint8), name="x", split="train")
    with pytest.raises(ValueError, match="dataset: has no cache_key"):
        image_tensor(ds)
