"""fairlib.amplification: inversion counts, overlay arithmetic, class binarisation, summaries, loaders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fairlib import amplification as A


def test_inversion_counts_hand_values():
    assert A.inversion_counts(10, True, 0.3) == 2  # round(10 * 0.2)
    assert A.inversion_counts(10, False, 0.3) == 8  # round(10 * 0.8)
    assert A.inversion_counts(10, True, 0.0) == 5
    assert A.inversion_counts(10, True, 0.5) == 0
    assert A.inversion_counts(10, False, 0.5) == 10
    assert A.inversion_counts(7, True, 0.1) == 3  # round(2.8)
    assert A.inversion_counts(7, False, 0.1) == 4  # round(4.2)
    assert A.inversion_counts(5, True, 0.0) == A.inversion_counts(5, False, 0.0) == 3  # halves round up


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 0.45, 0.5])
def test_assign_inversion_exact_per_class(eps):
    sizes = {0: 10, 1: 10, 2: 7, 3: 13}
    fine = np.concatenate([[c] * n for c, n in sizes.items()])
    positive = [0, 2]
    inv = A.assign_inversion(fine, positive, eps, seed=3)
    assert inv.dtype == bool and inv.shape == fine.shape
    for c, n in sizes.items():
        rate = 0.5 - eps if c in positive else 0.5 + eps
        assert inv[fine == c].sum() == int(np.floor(n * rate + 0.5 + 1e-9))
    # random within class, deterministic per seed
    assert np.array_equal(inv, A.assign_inversion(fine, positive, eps, seed=3))


def test_assign_inversion_hand_example_and_validation():
    fine = np.array([0] * 10 + [1] * 10)
    inv = A.assign_inversion(fine, [0], 0.3, seed=0)
    assert inv[:10].sum() == 2 and inv[10:].sum() == 8
    with pytest.raises(ValueError, match="epsilon"):
        A.assign_inversion(fine, [0], 0.6, seed=0)


def test_invert_twice_is_identity_and_values():
    u8 = np.array([[0, 10, 255]], dtype=np.uint8)
    assert A.invert(u8).tolist() == [[255, 245, 0]]
    assert np.array_equal(A.invert(A.invert(u8)), u8)
    f = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(A.invert(f), torch.tensor([1.0, 0.75, 0.0]))
    assert torch.equal(A.invert(A.invert(f)), f)
    t8 = torch.tensor([3, 200], dtype=torch.uint8)
    assert torch.equal(A.invert(A.invert(t8)), t8)


def test_overlay_arithmetic():
    cls = np.array([0.0, 1.0, 0.5])
    grp = np.array([1.0, 1.0, 0.0])
    assert np.allclose(A.overlay(cls, grp, 0.2), [0.2, 1.0, 0.4])
    assert np.allclose(A.overlay(cls, grp, 0.0), cls)
    assert np.allclose(A.overlay(cls, grp, 1.0), grp)
    with pytest.raises(ValueError, match="eta"):
        A.overlay(cls, grp, 1.5)


def test_overlay_groups_follow_epsilon_and_draws_without_replacement():
    y = np.array([1] * 4000 + [0] * 4000)
    g = A.assign_overlay_groups(y, 0.3, seed=1)
    assert abs((g[y == 1] == 0).mean() - 0.8) < 0.03  # positives to group a with 1/2 + eps
    assert abs((g[y == 0] == 1).mean() - 0.8) < 0.03
    groups = np.array([0, 0, 0, 1, 1])
    draw = A.draw_group_images(groups, (3, 5), seed=0)
    assert sorted(draw[groups == 0].tolist()) == [0, 1, 2]  # each image once
    assert len(set(draw[groups == 1].tolist())) == 2


def test_binarize_classes_half_and_deterministic():
    for n in (10, 100):
        pos = A.binarize_classes(n, seed=5)
        assert len(pos) == n // 2 and len(set(pos.tolist())) == n // 2
        assert np.array_equal(pos, A.binarize_classes(n, seed=5))
    assert any(not np.array_equal(A.binarize_classes(10, 0), A.binarize_classes(10, s)) for s in range(1, 5))
    assert A.binary_labels([0, 1, 2, 3], [1, 3]).tolist() == [0, 1, 0, 1]


def test_tasks_and_swap():
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8)
    fine = np.repeat(np.arange(4), 10)
    task = A.make_inversion_task(images, fine, [0, 1], 0.3, seed=0)
    assert task.x.shape == (40, 1, 6, 6) and task.group.sum() == 2 + 2 + 8 + 8
    swapped = A.swap_roles(task)
    assert torch.equal(swapped.y, task.group) and torch.equal(swapped.group, task.y)
    ov = A.make_overlay_task(images, fine, (0, 1), (2, 3), 0.2, 0.5, seed=0)
    assert len(ov) == 20 and set(ov.y.tolist()) == {0, 1}


def test_mean_ci():
    m, lo, hi = A.mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and np.isclose(hi - m, 4.302653 * 1 / np.sqrt(3), atol=1e-5)
    assert A.mean_ci([4.0]) == (4.0, 4.0, 4.0)


def test_digits_split_is_fixed_and_stratified():
    d = A.load_digits_split()
    assert d["train"][0].shape[1:] == (1, 8, 8)
    assert len(d["train"][1]) + len(d["test"][1]) == 1797
    assert np.bincount(d["test"][1]).min() >= 43  # 25% of each digit (174 eights → 43)
    assert A.load_digits_split() is d  # cached


# --------------------------------------------------------------------------- on-disk formats
def write_fashion_mnist(root, n=12):
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, n], dtype=">i4").tobytes() + labels.tobytes())


def write_cifar(root, name, n=12):
    rng = np.random.default_rng(1)
    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for f in files:
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(np.arange(n) % 10)}
            (base / f).write_bytes(pickle.dumps(entry))
        (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        for f in ("train", "test"):
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(np.arange(n) % 100)}
            (base / f).write_bytes(pickle.dumps(entry))
        (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))


@pytest.mark.parametrize("name", A.FULL_DATASETS)
def test_load_images_reads_torchvision_formats(tmp_path, name):
    if name == "fashionmnist":
        write_fashion_mnist(tmp_path)
    else:
        write_cifar(tmp_path, name)
    x, y = A.load_images(name, "train", tmp_path, verify=False)
    n_train = 60 if name == "cifar10" else 12  # CIFAR-10 has five training batches
    assert x.dtype == torch.uint8 and x.shape == ((12, 1, 28, 28) if name == "fashionmnist" else (n_train, 3, 32, 32))
    assert y.shape == (n_train,)
    xt, _ = A.load_images(name, "test", tmp_path, verify=False)
    assert len(xt) == 12


def test_load_images_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        A.load_images("cifar10", "train", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        A.load_images("imagenet", "train", tmp_path)
