r"""Controlled bias amplification experiments (Hall et al., *A Systematic Study of Bias Amplification*).

The recipe turns a multi-class image dataset into a binary task with two groups whose
correlation with the label is set exactly by one number, :math:`\varepsilon\in[0, 1/2]`:

1. :func:`binarize_classes` marks a random half of the original classes *positive*;
2. :func:`assign_inversion` picks, within every original class of :math:`n` images, exactly
   :math:`\mathrm{round}(n(1/2-\varepsilon))` images to invert if the class is positive and
   :math:`\mathrm{round}(n(1/2+\varepsilon))` if it is negative; :func:`invert` flips the pixels.
   The group is "inverted or not": at :math:`\varepsilon=0` it says nothing about the label, at
   :math:`\varepsilon=1/2` it decides it;
3. for RQ6, :func:`overlay` mixes a *group image* into each *class image*,
   :math:`\eta\,I_\text{group} + (1-\eta)\,I_\text{class}`, so that :math:`\eta` sets how visible
   the group is relative to the class (:func:`assign_overlay_groups`, :func:`make_overlay_task`).

:func:`make_inversion_task` and :func:`make_overlay_task` return a :class:`Task` (tensors
``x``, ``y``, ``group``) that :func:`fairlib.training.train_and_evaluate` consumes.
:func:`mean_ci` summarises repeated runs as a mean and a 95% confidence interval.

Data: :func:`load_split` reads every dataset through :func:`fairlib.data.load_dataset`:
scikit-learn's 8×8 digits (the quick profile) and Fashion-MNIST, CIFAR-10 and CIFAR-100 (the
full profile), from where ``python -m data_scripts.fetch`` writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from fairlib._validation import integer

__all__ = [
    "Task",
    "binarize_classes",
    "binary_labels",
    "inversion_counts",
    "assign_inversion",
    "invert",
    "overlay",
    "assign_overlay_groups",
    "draw_group_images",
    "make_inversion_task",
    "make_overlay_task",
    "swap_roles",
    "mean_ci",
    "summarize",
    "load_split",
    "TASK_DATASETS",
    "FULL_DATASETS",
]

FULL_DATASETS = ("fashionmnist", "cifar10", "cifar100")
#: Every dataset :func:`load_split` reads (quick: digits; full: the paper's three).
TASK_DATASETS = ("digits", *FULL_DATASETS)


@dataclass
class Task:
    """A binary task with two groups: images ``x`` (N, C, H, W) float32, labels ``y`` and ``group`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: Any) -> "Task":
        index = torch.as_tensor(index)
        return Task(self.x[index], self.y[index], self.group[index])


# --------------------------------------------------------------------------- labels and groups
def _check_epsilon(epsilon: float) -> float:
    eps = float(epsilon)
    if not 0.0 <= eps <= 0.5:
        raise ValueError(f"epsilon: must lie in [0, 1/2], got {epsilon}")
    return eps


def binarize_classes(n_classes: int, seed: int) -> np.ndarray:
    """A random half of ``range(n_classes)``, sorted: the original classes that become positive.

    ``n_classes // 2`` classes are chosen; equal seeds give equal assignments. The paper
    averages every experiment over 20 such assignments.
    """
    n_classes = integer(n_classes, "n_classes", minimum=2)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(int(n_classes), size=int(n_classes) // 2, replace=False))


def binary_labels(fine_labels: Any, positive_classes: Any) -> np.ndarray:
    """1 where the original class is in ``positive_classes``, else 0 (int64)."""
    fine = np.asarray(fine_labels).reshape(-1)
    return np.isin(fine, np.asarray(positive_classes)).astype(np.int64)


def _round_half_up(x: float) -> int:
    # n * (1/2 - eps) is computed in floating point (10 * 0.2 = 2.0000000000000004): a tiny
    # tolerance keeps exact halves and integers where arithmetic says they are.
    return int(math.floor(x + 0.5 + 1e-9))


def inversion_counts(n: int, positive: bool, epsilon: float) -> int:
    r"""How many of a class's ``n`` images are inverted: round(n(1/2 − ε)) if positive, round(n(1/2 + ε)) if not.

    Halves round up (n = 5, ε = 0 inverts 3 in both kinds of class, so ε = 0 stays unbiased).
    """
    eps = _check_epsilon(epsilon)
    rate = 0.5 - eps if positive else 0.5 + eps
    return min(int(n), max(0, _round_half_up(n * rate)))


def assign_inversion(fine_labels: Any, positive_classes: Any, epsilon: float, seed: int) -> np.ndarray:
    r"""Which images to invert (a bool array), chosen at random within each original class.

    Parameters
    ----------
    fine_labels
        Shape ``(N,)``: the original class of every image.
    positive_classes
        The original classes that form the positive label (see :func:`binarize_classes`).
    epsilon
        Dataset bias in [0, 1/2]; :func:`inversion_counts` gives the exact count per class.
    seed
        Seed for the random choice. Use the same ε (not the same seed) for train and test.
    """
    fine = np.asarray(fine_labels).reshape(-1)
    if fine.size == 0:
        raise ValueError("fine_labels: is empty")
    eps = _check_epsilon(epsilon)
    positive = set(np.asarray(positive_classes).reshape(-1).tolist())
    rng = np.random.default_rng(seed)
    inverted = np.zeros(fine.size, dtype=bool)
    for c in np.unique(fine):
        members = np.flatnonzero(fine == c)
        k = inversion_counts(members.size, c.item() in positive, eps)
        inverted[rng.choice(members, size=k, replace=False)] = True
    return inverted


def invert(images: Any) -> Any:
    """Inverted images: ``255 − x`` for uint8, ``1 − x`` for floats in [0, 1] (numpy or torch)."""
    if isinstance(images, torch.Tensor):
        return 255 - images if images.dtype == torch.uint8 else 1.0 - images
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return (255 - arr).astype(np.uint8)
    if arr.dtype.kind in "iu":
        raise ValueError(f"images: integer images must be uint8 (0…255), got {arr.dtype}")
    return 1.0 - arr


def overlay(class_images: Any, group_images: Any, eta: float) -> Any:
    r"""The convex combination :math:`\eta\,I_\text{group} + (1-\eta)\,I_\text{class}` (paper, Eq. 5)."""
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta: must lie in [0, 1], got {eta}")
    if tuple(class_images.shape) != tuple(group_images.shape):
        raise ValueError(
            f"class_images/group_images: shapes differ, {tuple(class_images.shape)} vs {tuple(group_images.shape)}"
        )
    return eta * group_images + (1.0 - eta) * class_images


def assign_overlay_groups(labels: Any, epsilon: float, seed: int) -> np.ndarray:
    r"""Group of each example for the overlay task: 0 is group *a*, 1 is group *b*.

    A positive example goes to group *a* with probability 1/2 + ε (to *b* with 1/2 − ε); a
    negative one to *b* with probability 1/2 + ε.
    """
    y = np.asarray(labels).reshape(-1)
    eps = _check_epsilon(epsilon)
    rng = np.random.default_rng(seed)
    p_a = np.where(y == 1, 0.5 + eps, 0.5 - eps)
    return (rng.random(y.size) >= p_a).astype(np.int64)


def draw_group_images(groups: Any, pool_sizes: tuple[int, int], seed: int) -> np.ndarray:
    """For each example, an index into its group's pool of images, drawn without replacement.

    If a group needs more images than its pool holds, a fresh random permutation of the pool
    is appended (each image is reused as rarely as possible).
    """
    g = np.asarray(groups).reshape(-1)
    rng = np.random.default_rng(seed)
    out = np.zeros(g.size, dtype=np.int64)
    for k in (0, 1):
        where = np.flatnonzero(g == k)
        size = int(pool_sizes[k])
        if where.size and size < 1:
            raise ValueError(f"pool_sizes: group {k} needs images but its pool is empty")
        reps = -(-where.size // max(size, 1))
        order = np.concatenate([rng.permutation(size) for _ in range(max(reps, 0))]) if reps else np.zeros(0, int)
        out[where] = order[: where.size]
    return out


def _to_float_images(images: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim == 3:  # (N, H, W)
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise ValueError(f"images: expected (N, H, W), (N, H, W, C) or (N, C, H, W), got {tuple(x.shape)}")
    return x.contiguous()


def _standardize(x: torch.Tensor, stats_from: torch.Tensor | None) -> torch.Tensor:
    ref = x if stats_from is None else stats_from
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def make_inversion_task(
    images: Any,
    fine_labels: Any,
    positive_classes: Any,
    epsilon: float,
    seed: int,
    *,
    normalize_with: Any = None,
) -> Task:
    """Binary labels, inverted images and groups (1 = inverted) for one split.

    ``images`` are uint8 (0…255) or floats in [0, 1]. Images are standardised per channel with
    the mean and std of the *original* (non-inverted) ``normalize_with`` images (default: these
    images), as in the paper.
    """
    x = _to_float_images(images)
    fine = np.asarray(fine_labels).reshape(-1)
    if len(fine) != x.shape[0]:
        raise ValueError(f"images/fine_labels: {x.shape[0]} images but {len(fine)} labels")
    inv = assign_inversion(fine, positive_classes, epsilon, seed)
    mask = torch.as_tensor(inv)
    ref = None if normalize_with is None else _to_float_images(normalize_with)
    xs = torch.where(mask[:, None, None, None], invert(x), x)
    xs = _standardize(xs, x if ref is None else ref)
    return Task(xs, torch.as_tensor(binary_labels(fine, positive_classes)), mask.long())


def make_overlay_task(
    images: Any,
    fine_labels: Any,
    class_pair: tuple[int, int],
    group_pair: tuple[int, int],
    epsilon: float,
    eta: float,
    seed: int,
    *,
    normalize_with: Any = None,
) -> Task:
    """The RQ6 task: class images of ``class_pair`` (positive, negative) overlaid with group images.

    Group images come from the two original classes of ``group_pair`` (group *a*, group *b*),
    drawn without replacement (:func:`draw_group_images`) from the same split.
    """
    x = _to_float_images(images)
    fine = np.asarray(fine_labels).reshape(-1)
    if len(set(class_pair) | set(group_pair)) != 4:
        raise ValueError(f"class_pair/group_pair: need four distinct classes, got {class_pair} and {group_pair}")
    idx = np.flatnonzero(np.isin(fine, class_pair))
    y = (fine[idx] == class_pair[0]).astype(np.int64)
    groups = assign_overlay_groups(y, epsilon, seed)
    pools = [np.flatnonzero(fine == group_pair[0]), np.flatnonzero(fine == group_pair[1])]
    draw = draw_group_images(groups, (pools[0].size, pools[1].size), seed + 1)
    group_idx = np.where(groups == 0, pools[0][np.minimum(draw, pools[0].size - 1)],
                         pools[1][np.minimum(draw, pools[1].size - 1)])
    mixed = overlay(x[torch.as_tensor(idx)], x[torch.as_tensor(group_idx)], eta)
    ref = x if normalize_with is None else _to_float_images(normalize_with)
    return Task(_standardize(mixed, ref), torch.as_tensor(y), torch.as_tensor(groups))


def swap_roles(task: Task) -> Task:
    """The same images with class and group exchanged (RQ5's control experiment)."""
    return Task(task.x, task.group.clone(), task.y.clone())


# --------------------------------------------------------------------------- summaries
def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t confidence interval ``(mean, low, high)`` over repeated runs."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def summarize(frame: pd.DataFrame, by: Any, value: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per group of ``by``: ``mean``, ``low``, ``high`` (confidence interval) and ``n`` of ``value``."""
    rows = []
    for key, d in frame.groupby(by, sort=True):
        m, lo, hi = mean_ci(d[value], confidence)
        keys = key if isinstance(key, tuple) else (key,)
        names = by if isinstance(by, (list, tuple)) else [by]
        rows.append({**dict(zip(names, keys)), "mean": m, "low": lo, "high": hi, "n": int(d[value].notna().sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- data
def load_split(name: str, split: str, *, root: str | Path | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Images ``(N, C, H, W)`` uint8 and original class labels of one split, for the tasks above.

    ``name`` is ``digits`` (the quick profile: scikit-learn's digits, the course's one 75/25
    split), ``fashionmnist``, ``cifar10`` or ``cifar100`` (fine labels); ``split`` is ``train``
    or ``test``. Everything goes through :func:`fairlib.data.load_dataset`, so the data are read
    from where ``python -m data_scripts.fetch NAME`` writes them (``<data root>/<name>/``), and a
    missing dataset raises :class:`fairlib.data.DatasetNotFoundError` with that command.
    """
    from fairlib.data import image_tensor, load_dataset

    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in TASK_DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; choose one of {', '.join(TASK_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    dataset = load_dataset(key, split, root=root)
    labels = dataset.attributes["label"].cat.codes.to_numpy().astype(np.int64)
    return image_tensor(dataset), labels
