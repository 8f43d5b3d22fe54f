"""fairlib.amplification: inversion counts, overlay arithmetic, class binarisation, summaries, loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from formats import N_PER_FILE, fetched

from fairlib import amplification as A
from fairlib.data import DatasetNotFoundError, load_dataset


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


def test_digits_split_is_the_registrys():
    x, y = A.load_split("digits", "train")
    xt, yt = A.load_split("digits", "test")
    assert x.dtype == torch.uint8 and x.shape == (1347, 1, 8, 8) and len(yt) == 450
    assert np.bincount(yt).min() >= 43  # 25% of each digit (174 eights -> 43)
    assert torch.equal(x, load_dataset("digits", "train").images), "the same split as load_dataset"


@pytest.mark.parametrize("name", A.FULL_DATASETS)
def test_load_split_reads_what_fetch_writes(tmp_path, name):
    root = tmp_path / "data"
    fetched(root, name)
    x, y = A.load_split(name, "train", root=root)
    n_train = 5 * N_PER_FILE if name == "cifar10" else N_PER_FILE  # CIFAR-10 has five training batches
    shape = (1, 28, 28) if name == "fashionmnist" else (3, 32, 32)
    assert x.dtype == torch.uint8 and x.shape == (n_train, *shape) and y.shape == (n_train,)
    assert y.tolist() == [i % (100 if name == "cifar100" else 10) for i in range(N_PER_FILE)] * (n_train // N_PER_FILE)
    xt, _ = A.load_split(name, "test", root=root)
    assert len(xt) == N_PER_FILE


def test_load_split_missing_names_the_fetch_command(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="python -m data_scripts.fetch cifar10"):
        A.load_split("cifar10", "train", root=tmp_path)
    with pytest.raises(ValueError, match="name: unknown dataset 'imagenet'; choose one of digits"):
        A.load_split("imagenet", "train")
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        A.load_split("digits", "val")
